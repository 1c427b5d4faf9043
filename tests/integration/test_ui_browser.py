"""The web page (/ui) in a real browser: Debian's Chromium driven through its chromium-driver
(Selenium; Selenium Manager is never asked, so nothing is downloaded) against the real stack.

A person's path: pick files in the page's file input, watch the jobs finish in the list, open
one, read the text beside the page picture, point at a line and see its box light up (and the
reverse), turn pages of a PDF, and get a readable error for a file the service refuses; give
a document by its address instead of a file.
Screenshots at desktop and phone width go to $OCRQ_ARTIFACTS_DIR/screenshots (CI keeps that
folder), else var/screenshots/. `scripts/ensure-system-deps.sh` installs chromium and
chromium-driver with apt when missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageFilter
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from testkit.pages import encode, render_page
from testkit.source_server import serving_sources
from testkit.stack import ROOT, Stack

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 1000)
PHONE = (390, 844)  # CSS pixels of a common phone; also what 200% zoom of 780 px gives
JOB_TIMEOUT = 90  # seconds: OCR of two small documents on a loaded machine

INVOICE = [("Invoice number 4711", 44), ("Total amount 250 EUR", 32), ("Paid in full", 32)]
# print blurred until RapidOCR misreads it and says so (scores about 0.85-0.9; clean 0.97+)
SMUDGED = ["Ixl1 rnm cl0O", "qgj 9yp QO0o"]
PDF_PAGES = [[("Chapter one begins here", 40)], [("Second page says goodbye", 40)]]


def invoice_page() -> Image.Image:
    """The invoice's clean lines, then two smudged ones the engine should be unsure of."""
    clean = render_page(INVOICE, width=900)
    smudged = [
        render_page([(text, 28)], width=900, margin=12).filter(ImageFilter.GaussianBlur(3.6))
        for text in SMUDGED
    ]
    page = Image.new("RGB", (900, clean.height + sum(s.height for s in smudged)), "white")
    page.paste(clean, (0, 0))
    y = clean.height
    for line in smudged:
        page.paste(line, (0, y))
        y += line.height
    return page


def screenshot_dir() -> Path:
    base = os.environ.get("OCRQ_ARTIFACTS_DIR")
    folder = Path(base) / "screenshots" if base else ROOT / "var" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    assert not missing, f"{missing} missing: run scripts/ensure-system-deps.sh (apt)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console: CSP reports
    # an explicit driver path: Selenium Manager (which would download) is skipped
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, timeout: float = 20):
    return WebDriverWait(driver, timeout, poll_frequency=0.1)


def job_item(driver: WebDriver, name: str) -> WebElement:
    for item in driver.find_elements(By.CSS_SELECTOR, "#jobs li.job"):
        if item.find_element(By.CLASS_NAME, "job-name").text == name:
            return item
    raise LookupError(name)


def wait_status(driver: WebDriver, name: str, statuses: set[str], timeout: float) -> WebElement:
    def settled(d: WebDriver) -> WebElement | bool:
        try:
            item = job_item(d, name)
        except LookupError:
            return False
        return item if item.get_attribute("data-status") in statuses else False

    try:
        return wait(driver, timeout).until(settled)
    except TimeoutException:
        items = [i.text for i in driver.find_elements(By.CSS_SELECTOR, "#jobs li.job")]
        raise AssertionError(f"{name} never reached {statuses}; the list shows {items}") from None


def classes(element: WebElement) -> list[str]:
    return (element.get_attribute("class") or "").split()


def is_lit(element: WebElement) -> bool:
    return "lit" in classes(element)


def no_sideways_scroll(driver: WebDriver) -> bool:
    return driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1"
    )


def csp_violations(driver: WebDriver) -> list[str]:
    """The console's Content-Security-Policy reports since the last call (the log is drained)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]


def open_viewer(driver: WebDriver, item: WebElement) -> None:
    item.find_element(By.CLASS_NAME, "job-open").click()
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#lines li[data-line]"))
    wait(driver).until(
        lambda d: d.execute_script(
            "const i = document.getElementById('page-img'); return i.complete && i.naturalWidth"
        )
    )


def test_upload_watch_read_and_check_in_chromium(
    browser: WebDriver, stack: Stack, tmp_path: Path
) -> None:
    shots = screenshot_dir()
    invoice = tmp_path / "invoice.png"
    invoice.write_bytes(encode(invoice_page()))
    report = tmp_path / "report.pdf"
    images = [render_page(lines, width=900) for lines in PDF_PAGES]
    report.write_bytes(
        encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=100)
    )
    browser.set_window_size(*DESKTOP)
    page = httpx.get(f"{stack.url}/ui/", timeout=10)
    assert "script-src 'self';" in page.headers["content-security-policy"]  # no inline script
    csp_violations(browser)
    browser.get(f"{stack.url}/ui")  # the index's link: redirected to /ui/

    # two files at once through the page's own file input (what a drop or a pick gives)
    browser.find_element(By.ID, "files").send_keys(f"{invoice}\n{report}")
    done = wait_status(browser, "invoice.png", {"succeeded", "failed"}, JOB_TIMEOUT)
    assert done.get_attribute("data-status") == "succeeded", done.text
    assert "Done" in done.find_element(By.CLASS_NAME, "job-status").text
    pdf_item = wait_status(browser, "report.pdf", {"succeeded", "failed"}, JOB_TIMEOUT)
    assert "2 pages" in pdf_item.text, pdf_item.text
    # the list followed each job's event stream to its end (no polling fallback)
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
    )
    for item in (done, pdf_item):
        job = item.get_attribute("data-job-id")
        assert any(url.endswith(f"/jobs/{job}/events") for url in fetched), fetched
        assert not any(f"/jobs/{job}?wait" in url for url in fetched), fetched

    # open the image's job: the recognized text beside the page picture
    open_viewer(browser, job_item(browser, "invoice.png"))
    lines = browser.find_elements(By.CSS_SELECTOR, "#lines li[data-line]")
    shown = " ".join(line.text for line in lines).lower()
    for word in ("invoice", "4711", "total", "250", "paid"):
        assert word in shown, shown
    boxes = browser.find_elements(By.CSS_SELECTOR, "#boxes rect")
    assert len(boxes) == len(lines) >= 3

    # lines the engine scored under UI_LOW_SCORE are marked, on the text and on the page
    job_id = done.get_attribute("data-job-id")
    result = httpx.get(f"{stack.url}/jobs/{job_id}/result", timeout=10).json()
    scores = [block["score"] for block in result["pages"][0]["blocks"]]
    low = [score is not None and score < 0.9 for score in scores]
    assert ["low" in classes(line) for line in lines] == low
    assert ["low" in classes(box) for box in boxes] == low
    assert any(low), scores  # the smudged lines
    assert all("sure" in line.text for line, marked in zip(lines, low, strict=True) if marked)

    # hovering a line lights its box (and only its box), pointing at a box lights its line
    target = next(i for i, line in enumerate(lines) if "4711" in line.text)
    ActionChains(browser).move_to_element(lines[target]).perform()
    wait(browser, 5).until(lambda d: is_lit(boxes[target]))
    assert [is_lit(box) for box in boxes].count(True) == 1
    # the lit box sits where the line is on the picture: the first third of the page's height
    picture = browser.find_element(By.ID, "page-img").rect
    box = boxes[target].rect
    assert picture["y"] <= box["y"] < picture["y"] + picture["height"] / 3, (picture, box)
    assert box["width"] > picture["width"] / 5
    browser.save_screenshot(str(shots / "ui-desktop.png"))
    other = (target + 1) % len(lines)
    ActionChains(browser).move_to_element(boxes[other]).perform()
    wait(browser, 5).until(lambda d: is_lit(lines[other]))
    assert not is_lit(lines[target])
    # keyboard: focusing a line lights its box too
    browser.execute_script("arguments[0].focus()", lines[target])
    wait(browser, 5).until(lambda d: is_lit(boxes[target]))

    # the PDF: page pictures rendered by the service, page by page
    open_viewer(browser, job_item(browser, "report.pdf"))
    assert "chapter" in browser.find_element(By.ID, "lines").text.lower()
    assert browser.find_element(By.ID, "page-prev").get_attribute("disabled")
    browser.find_element(By.ID, "page-next").click()
    wait(browser).until(lambda d: "2 of 2" in d.find_element(By.ID, "page-label").text)
    wait(browser).until(lambda d: "goodbye" in d.find_element(By.ID, "lines").text.lower())

    # a file the service refuses: words a person understands, not a bare code
    notes = tmp_path / "notes.txt"
    notes.write_text("just some words, not a scan\n")
    browser.find_element(By.ID, "files").send_keys(str(notes))
    refused = wait_status(browser, "notes.txt", {"rejected"}, 20)
    error = refused.find_element(By.CLASS_NAME, "job-error").text
    assert "not supported" in error and "PDF or an image" in error, error
    assert "Not accepted" in refused.text

    # phone width: one column, nothing wider than the screen
    browser.set_window_size(*PHONE)
    wait(browser, 5).until(no_sideways_scroll)
    browser.save_screenshot(str(shots / "ui-phone-list.png"))
    open_viewer(browser, job_item(browser, "invoice.png"))
    assert no_sideways_scroll(browser)
    browser.save_screenshot(str(shots / "ui-phone-viewer.png"))
    for name in ("ui-desktop.png", "ui-phone-list.png", "ui-phone-viewer.png"):
        assert (shots / name).stat().st_size > 10_000, name
    # the whole visit under the page's Content-Security-Policy: nothing refused
    assert csp_violations(browser) == []


@pytest.mark.parametrize(("path", "shown"), [("/docs", ".swagger-ui .info"), ("/redoc", "h1")])
def test_the_api_docs_still_render_under_the_security_headers(
    browser: WebDriver, stack: Stack, path: str, shown: str
) -> None:
    headers = httpx.get(stack.url + path, timeout=10).headers
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    csp_violations(browser)

    browser.get(stack.url + path)

    wait(browser).until(
        lambda d: any("ocrq" in e.text for e in d.find_elements(By.CSS_SELECTOR, shown))
    )
    assert csp_violations(browser) == []


def test_api_key_kept_in_the_tab_and_cancel_in_chromium(
    browser: WebDriver, side_stack, tmp_path: Path
) -> None:
    """A server with API_KEYS and no worker: the page asks for the key, says so in words when
    it is missing, keeps it in sessionStorage only, and cancels the job that waits."""
    key = "ui-test-key-0001"
    server: Stack = side_stack(API_KEYS=key)
    server.start_api()
    scan = tmp_path / "scan.png"
    scan.write_bytes(encode(render_page(INVOICE[:1], width=600)))
    browser.set_window_size(*DESKTOP)
    browser.get(f"{server.url}/ui/")

    key_box = browser.find_element(By.ID, "api-key")
    wait(browser, 10).until(lambda d: key_box.is_displayed())
    browser.find_element(By.ID, "files").send_keys(str(scan))
    refused = wait_status(browser, "scan.png", {"rejected"}, 20)
    assert "valid API key" in refused.find_element(By.CLASS_NAME, "job-error").text
    refused.find_element(By.CLASS_NAME, "job-remove").click()

    key_box.send_keys(key)
    browser.find_element(By.ID, "files").send_keys(str(scan))
    queued = wait_status(browser, "scan.png", {"queued"}, 20)  # no worker: it waits
    assert "Waiting in the queue" in queued.text
    stored = browser.execute_script(
        "return [sessionStorage.getItem('ocrq.apiKey'), localStorage.length]"
    )
    assert stored == [key, 0]
    queued.find_element(By.CLASS_NAME, "job-cancel").click()
    canceled = wait_status(browser, "scan.png", {"canceled"}, 20)
    assert "Canceled" in canceled.text
    job_id = canceled.get_attribute("data-job-id")
    headers = {"Authorization": f"Bearer {key}"}
    record = httpx.get(f"{server.url}/jobs/{job_id}", headers=headers, timeout=10).json()
    assert record["status"] == "canceled"


def test_the_keys_usage_today_and_its_quota_in_chromium(
    browser: WebDriver, side_stack, tmp_path: Path
) -> None:
    """A key with a name and pages_per_day=2, no worker: the page shows the key's usage of
    today once the key is entered, counts each accepted file, and says in words why a file
    that would pass the quota was not accepted."""
    key = "ui-quota-key-0002"
    keys = tmp_path / "api-keys"
    keys.write_text(f"{key} name=front-desk pages_per_day=2\n")
    server: Stack = side_stack(API_KEYS_FILE=str(keys))
    server.start_api()
    scan = tmp_path / "scan.png"
    scan.write_bytes(encode(render_page(INVOICE[:1], width=600)))
    booklet = tmp_path / "booklet.pdf"
    pages = [render_page(lines, width=600) for lines in PDF_PAGES]
    pages[0].save(booklet, "PDF", save_all=True, append_images=pages[1:], resolution=100.0)
    browser.set_window_size(*DESKTOP)
    browser.get(f"{server.url}/ui/")

    usage = browser.find_element(By.ID, "usage")
    key_box = browser.find_element(By.ID, "api-key")
    wait(browser, 10).until(lambda d: key_box.is_displayed())
    assert not usage.is_displayed()  # no key yet: nothing to show
    key_box.send_keys(key)
    wait(browser, 10).until(lambda d: usage.is_displayed() and "front-desk" in usage.text)
    assert "0 jobs and 0 pages submitted of 2 a day" in usage.text

    browser.find_element(By.ID, "files").send_keys(str(scan))
    wait_status(browser, "scan.png", {"queued"}, 20)
    wait(browser, 10).until(lambda d: "1 job and 1 pages submitted of 2 a day" in usage.text)
    assert "1 queued or running" in usage.text

    browser.find_element(By.ID, "files").send_keys(str(booklet))  # 1 + 2 pages > 2 a day
    refused = wait_status(browser, "booklet.pdf", {"rejected"}, 20)
    words = refused.find_element(By.CLASS_NAME, "job-error").text
    assert "reached one of its limits" in words and "pages_per_day=2" in words
    assert key not in words
    assert "1 job and 1 pages submitted" in usage.text  # the refusal counted nothing
    browser.save_screenshot(str(screenshot_dir() / "ui-usage-quota.png"))


def test_a_page_that_could_not_be_read_says_why_in_chromium(
    browser: WebDriver, side_stack, tmp_path: Path
) -> None:
    """A server with no worker; the test plays it: page 2 of the PDF could not be read. The
    list says so, and the viewer shows why where that page's text would be."""

    from shared.error_codes import ErrorCode
    from shared.jobs import Claim, JobStore, connect_redis
    from shared.results import Block, PageError, PageResult
    from shared.storage import JobFiles
    from tests.conftest import UNIT_REDIS_URL
    from tests.failed_pages import record_pages
    from worker.results import build_document, write_results

    server: Stack = side_stack()
    server.start_api()
    document = tmp_path / "two.pdf"
    pages = [render_page(lines, width=900) for lines in PDF_PAGES]
    pages[0].save(document, "PDF", save_all=True, append_images=pages[1:], resolution=100.0)
    browser.set_window_size(*DESKTOP)
    browser.get(f"{server.url}/ui/")
    browser.find_element(By.ID, "files").send_keys(str(document))
    queued = wait_status(browser, "two.pdf", {"queued"}, 20)
    job_id = queued.get_attribute("data-job-id")

    store = JobStore(connect_redis(UNIT_REDIS_URL), 3600)
    assert store.claim(job_id, "w1:1", 60) is Claim.claimed
    record_pages(store, job_id, {1: None, 2: ErrorCode.pdf_corrupt})
    files = JobFiles(server.base / "temp", server.base / "output", job_id)
    files.keep_source()
    block = Block(text="Chapter one begins here", bbox=[40, 40, 700, 90], score=0.99)
    read = PageResult(index=1, width=900, height=pages[0].height, dpi=100, blocks=[block])
    error = PageError(code=ErrorCode.pdf_corrupt, message="page 2: broken object 7 0 R")
    failed = PageResult(index=2, width=0, height=0, error=error)
    write_results(files, build_document(job_id, "rapidocr", [read, failed]))
    assert store.succeed(job_id)

    done = wait_status(browser, "two.pdf", {"succeeded"}, 20)
    assert "2 pages, 1 could not be read" in done.find_element(By.CLASS_NAME, "job-status").text
    done.find_element(By.CLASS_NAME, "job-open").click()
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#lines li[data-line]"))
    browser.find_element(By.ID, "page-next").click()
    why = wait(browser).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#lines li.page-error") or False
    )[0]
    assert "This page could not be read." in why.text
    assert "The PDF is damaged" in why.text  # the code in a person's words
    assert "(pdf_corrupt: page 2: broken object 7 0 R)" in why.text
    assert browser.find_element(By.ID, "page-caption").text == "Page 2: could not be read"
    assert browser.find_element(By.ID, "page-label").text == "Page 2 of 2"
    assert browser.find_element(By.ID, "viewer-error").get_attribute("hidden") is not None
    browser.find_element(By.ID, "page-prev").click()
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#lines li[data-line]"))
    assert "Chapter one begins here" in browser.find_element(By.ID, "lines").text
    assert csp_violations(browser) == []


def test_a_document_by_its_address_in_chromium(browser: WebDriver, stack: Stack) -> None:
    """The page's address field sends `source_url`: the service fetches the document from a
    server on loopback (the session stack allows 127.0.0.1), the job is named by the address's
    last part and reads like an upload; an address the service refuses, or one it cannot
    fetch, says so in words."""
    with serving_sources() as sources:
        url = sources.add("ledger-by-url.png", encode(render_page(INVOICE[:2], width=700)))
        browser.set_window_size(*DESKTOP)
        browser.get(f"{stack.url}/ui/")
        field = browser.find_element(By.ID, "source-url")
        field.send_keys(url + "?token=secret", Keys.ENTER)  # Enter submits the address
        done = wait_status(browser, "ledger-by-url.png", {"succeeded", "failed"}, JOB_TIMEOUT)
        assert done.get_attribute("data-status") == "succeeded", done.text
        assert field.get_attribute("value") == ""  # taken: ready for the next address
        assert "/files/ledger-by-url.png" in sources.requests[0]  # the worker fetched it
        job_id = done.get_attribute("data-job-id")
        record = httpx.get(f"{stack.url}/jobs/{job_id}", timeout=10).json()
        assert record["source_url"] == sources.url("files/ledger-by-url.png") + "?..."
        open_viewer(browser, done)
        shown = browser.find_element(By.ID, "lines").text.lower()
        assert "invoice" in shown and "4711" in shown, shown

        # refused at submit (no such scheme): the job is not accepted, and says why
        field.send_keys("ftp://127.0.0.1/refused.pdf")
        browser.find_element(By.ID, "source-read").click()
        refused = wait_status(browser, "refused.pdf", {"rejected"}, 20)
        error = refused.find_element(By.CLASS_NAME, "job-error").text
        assert "not allowed or not valid" in error, error

        # accepted, then the fetch fails (404): the job fails with words for it
        field.send_keys(sources.url("files/gone.pdf"), Keys.ENTER)
        gone = wait_status(browser, "gone.pdf", {"failed"}, JOB_TIMEOUT)
        assert "could not be fetched" in gone.find_element(By.CLASS_NAME, "job-error").text

        browser.set_window_size(*PHONE)
        browser.execute_script("window.scrollTo(0, 0)")
        wait(browser, 5).until(no_sideways_scroll)
        browser.save_screenshot(str(screenshot_dir() / "ui-phone-address.png"))
    assert csp_violations(browser) == []
