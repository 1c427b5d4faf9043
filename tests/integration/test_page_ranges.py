"""Pages are the unit of work: one long PDF read by two real worker processes at once, range by
range (PAGE_RANGE_SIZE=3), its files in a bucket (moto) shared by processes that share no
folder. A broken page fails alone (or fails the job with on_page_error=fail), a worker killed
mid-document costs at most its range, and a cancel stops every range."""

from __future__ import annotations

import io
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from pypdf import PdfReader, PdfWriter

from shared.jobs import WorkerRegistry
from testkit.pages import encode, normalize_lines, render_page
from testkit.s3server import S3Server
from testkit.stack import WARM_TIMEOUT, Stack, wait_terminal
from tests.conftest import TEST_DBS, TEST_REDIS_URL

pytestmark = pytest.mark.integration

RANGES_DB = TEST_DBS["ranges"]
RANGE_SIZE = 3
WORKERS = ("range-worker-a", "range-worker-b")
PREFIX = "ranges"


def _own_dirs(base: Path, name: str) -> dict[str, str]:
    return {"TEMP_DIR": str(base / name / "temp"), "OUTPUT_DIR": str(base / name / "output")}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[Stack]:
    """The API and two rapidocr workers on db RANGES_DB, job files in a bucket of their own."""
    url = f"{TEST_REDIS_URL}/{RANGES_DB}"
    redis.Redis.from_url(url).flushdb()
    base = tmp_path_factory.mktemp("ranges")
    env = {
        **s3_server.env(s3_server.new_bucket(), PREFIX),
        "PAGE_RANGE_SIZE": str(RANGE_SIZE),
        "JOB_LEASE_SECONDS": "4",
        "ORPHAN_SWEEP_SECONDS": "0.5",
        "OCR_FALLBACK_ENGINES": "",  # rapidocr alone: one engine to warm per worker
        "RAPIDOCR_THREADS": "1",
    }
    running = Stack(base=base, redis_url=url, extra_env=env)
    running.extra_env.update(_own_dirs(base, "api"))
    try:
        running.start_api()
        for name in WORKERS:
            running.start_worker(wait_warm=False, name=name, env=_own_dirs(base, name))
        for name in WORKERS:
            running.wait_for(lambda name=name: running.worker_warm(name), timeout=2 * WARM_TIMEOUT)
        yield running
    except BaseException:
        print(running.logs())
        raise
    finally:
        running.stop()


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def _line(n: int) -> str:
    return f"Ledger page {n} total {n * 37}"


def ledger_pdf(pages: int, broken: int | None = None) -> bytes:
    """`pages` small pages of text; page `broken` (if any) has a MediaBox of 200 x 200 inches:
    past MAX_IMAGE_PIXELS at any dpi the tests use, so it fails `image_too_large` alone."""
    images = [render_page([(_line(n), 30)], width=700) for n in range(1, pages + 1)]
    pdf = encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=100)
    if broken is None:
        return pdf
    writer = PdfWriter()
    for number, page in enumerate(PdfReader(io.BytesIO(pdf)).pages, start=1):
        if number == broken:
            writer.add_blank_page(14_400, 14_400)
        else:
            writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _submit(api: httpx.Client, pdf: bytes, **form: str) -> str:
    answer = api.post("/jobs", files={"file": ("ledger.pdf", pdf)}, data=form)
    assert answer.status_code == 202, answer.text
    return answer.json()["job_id"]


def _pages_read(stack: Stack, job_id: str) -> dict[str, Counter[int]]:
    """Per worker: how many times each page of the job was read (its log line per page)."""
    pattern = re.compile(rf"job={job_id}(?: range \d+)? page (\d+) \(")
    return {
        name: Counter(int(n) for n in pattern.findall((stack.base / f"{name}.log").read_text()))
        for name in WORKERS
    }


def _child_pid(stack: Stack, name: str) -> int:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    beat = WorkerRegistry(client).get(name)
    assert beat is not None
    return beat.pid


def test_two_workers_read_one_document_and_a_broken_page_fails_alone(
    stack: Stack, api: httpx.Client
) -> None:
    job_id = _submit(api, ledger_pdf(12, broken=7))

    final = wait_terminal(api, job_id, timeout=180)
    assert final["status"] == "succeeded", (final, stack.logs())
    record = redis.Redis.from_url(stack.redis_url, decode_responses=True).hgetall(
        f"ocrq:job:{job_id}"
    )
    assert (record["pages_done"], record["pages_failed"], record["ranges"]) == ("12", "1", "4")

    document = api.get(f"/jobs/{job_id}/result").json()
    assert [p["index"] for p in document["pages"]] == list(range(1, 13))
    broken = document["pages"][6]
    assert broken["error"]["code"] == "image_too_large" and broken["blocks"] == []
    for page in document["pages"]:
        if page["index"] != 7:
            assert page["error"] is None
            assert normalize_lines(page["text"]) == [_line(page["index"])]
    text = api.get(f"/jobs/{job_id}/result", params={"format": "text"}).text
    assert _line(12) in text and _line(1) in text
    markdown = api.get(f"/jobs/{job_id}/result", params={"format": "markdown"}).text
    assert markdown.index(_line(1)) < markdown.index(_line(12))

    read = _pages_read(stack, job_id)
    assert all(read.values()), f"one worker read every page: {read}"
    assert sum(read.values(), Counter()) == Counter(range(1, 13))  # each page read once

    # each page's own event: its number and outcome, counted once
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    pages = [f for _, f in client.xrange(f"ocrq:events:{job_id}") if f.get("page")]
    assert sorted(int(f["page"]) for f in pages) == list(range(1, 13))
    assert [f["code"] for f in pages if f["outcome"] == "failed"] == ["image_too_large"]


def test_on_page_error_fail_fails_the_job_with_the_broken_pages_code(
    stack: Stack, api: httpx.Client
) -> None:
    job_id = _submit(api, ledger_pdf(12, broken=7), on_page_error="fail")

    final = wait_terminal(api, job_id, timeout=180)
    assert final["status"] == "failed", final
    assert final["error"]["code"] == "image_too_large"


def test_a_worker_killed_mid_document_costs_at_most_its_range(
    stack: Stack, api: httpx.Client
) -> None:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    for name in WORKERS:  # both warm (a previous test may have restarted one)
        stack.wait_for(lambda name=name: stack.worker_warm(name), timeout=2 * WARM_TIMEOUT)
    job_id = _submit(api, ledger_pdf(18))

    # a range in the middle of its pages: kill the process that holds it
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        read = sum(_pages_read(stack, job_id).values(), Counter())
        for part in range(6):
            holder = client.get(f"ocrq:lease:{job_id}/{part}")
            first = part * RANGE_SIZE + 1
            if holder and read[first] and not read[first + RANGE_SIZE - 1]:
                victim = holder
                break
        time.sleep(0.05)
    assert victim is not None, stack.logs()
    name, pid = victim.rsplit(":", 1)
    os.kill(int(pid), signal.SIGKILL)

    final = wait_terminal(api, job_id, timeout=240)
    assert final["status"] == "succeeded", (final, stack.logs())
    document = api.get(f"/jobs/{job_id}/result").json()
    assert [normalize_lines(p["text"]) for p in document["pages"]] == [
        [_line(n)] for n in range(1, 19)
    ]
    read = sum(_pages_read(stack, job_id).values(), Counter())
    twice = sum(count - 1 for count in read.values())
    print(f"killed {name} mid-range: {twice} page(s) read twice (range size {RANGE_SIZE})")
    assert set(read) == set(range(1, 19))
    assert twice <= RANGE_SIZE
    assert client.hget(f"ocrq:job:{job_id}", "attempts") == "1"  # the job itself ran once


def test_cancel_mid_range_stops_every_range(stack: Stack, api: httpx.Client) -> None:
    for name in WORKERS:
        stack.wait_for(lambda name=name: stack.worker_warm(name), timeout=2 * WARM_TIMEOUT)
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    job_id = _submit(api, ledger_pdf(18))
    stack.wait_for(lambda: int(client.hget(f"ocrq:job:{job_id}", "pages_done") or 0) >= 2, 120)

    assert api.delete(f"/jobs/{job_id}").status_code in (200, 202, 204)
    assert wait_terminal(api, job_id)["status"] == "canceled"
    # every range stops before its next page: no lease of the job's ranges is left
    stack.wait_for(lambda: not any(client.exists(f"ocrq:lease:{job_id}/{k}") for k in range(6)), 60)
    read = sum(_pages_read(stack, job_id).values(), Counter())
    assert sum(read.values()) < 18, read
    # and the workers go on: a next job succeeds
    after = _submit(api, ledger_pdf(2))
    assert wait_terminal(api, after, timeout=120)["status"] == "succeeded"
