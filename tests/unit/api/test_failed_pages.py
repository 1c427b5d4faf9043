"""Per-page outcomes through the API (no worker: the test plays it, as test_job_images.py):
the on_page_error option, progress.pages_failed, the result formats of a job with a failed
page, the status stream and /metrics."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pikepdf
import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from shared.error_codes import ErrorCode
from shared.jobs import Claim, JobStore, connect_redis, keys
from shared.results import Block, PageError, PageResult
from shared.settings import Settings
from shared.storage import JobFiles
from testkit.pages import bare_pdf, encode, render_page
from tests.failed_pages import record_pages
from worker.results import build_document, write_results


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"sync_wait_seconds": 0.2}))) as c:
        yield c


@pytest.fixture
def store(settings: Settings) -> JobStore:
    return JobStore(connect_redis(settings.redis_url), settings.job_ttl_seconds)


def _pdf(pages: int) -> bytes:
    images = [render_page([(f"Page {i}", 20)], width=200) for i in range(1, pages + 1)]
    return encode(images[0], "PDF", save_all=True, append_images=images[1:])


@pytest.mark.parametrize("route", ["/jobs", "/ocr"])
def test_on_page_error_is_stored_with_the_job(
    client: TestClient, store: JobStore, route: str
) -> None:
    response = client.post(
        route, files={"file": ("a.pdf", _pdf(2))}, data={"on_page_error": "fail"}
    )

    assert response.status_code == 202, response.text  # /ocr: not done within its wait
    record = store.require(response.json()["job_id"])
    assert record.options.on_page_error == "fail"


def test_on_page_error_defaults_to_continue(client: TestClient, store: JobStore) -> None:
    job_id = client.post("/jobs", files={"file": ("a.pdf", _pdf(1))}).json()["job_id"]

    assert store.require(job_id).options.on_page_error == "continue"


@pytest.mark.parametrize("route", ["/jobs", "/ocr"])
@pytest.mark.parametrize("value", ["skip", "", "FAIL"])
def test_a_bad_on_page_error_is_422_invalid_option_naming_it(
    client: TestClient, settings: Settings, route: str, value: str
) -> None:
    response = client.post(route, files={"file": ("a.pdf", _pdf(1))}, data={"on_page_error": value})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_option"
    assert error["message"].startswith("on_page_error:")
    assert "continue" in error["message"] and "fail" in error["message"]
    assert not any(p.is_file() for p in settings.temp_dir.rglob("*"))


@pytest.mark.parametrize("path", ["/jobs", "/ocr"])
def test_openapi_lists_on_page_error_with_its_values_and_description(
    client: TestClient, path: str
) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
    field = body["schema"]["properties"]["on_page_error"]

    assert field["enum"] == ["continue", "fail"] and field["default"] == "continue"
    assert "failed" in field["description"]
    progress = spec["components"]["schemas"]["Progress"]["properties"]
    assert "pages_failed" in progress and progress["pages_failed"]["default"] == 0
    page = spec["components"]["schemas"]["PageResult"]["properties"]
    assert "error" in page


def _succeed_with_a_failed_page(
    client: TestClient, store: JobStore, settings: Settings, redis_client: redis.Redis
) -> str:
    """Play the worker: page 2 of 3 failed, the job succeeded with pages_failed 1."""
    job_id = client.post("/jobs", files={"file": ("a.pdf", _pdf(3))}).json()["job_id"]
    assert store.claim(job_id, "w1:1", 30) is Claim.claimed
    record_pages(store, job_id, {1: None, 2: ErrorCode.pdf_corrupt, 3: None})
    block = Block(text="Page text", bbox=[10, 10, 190, 40], score=0.98)
    good = [
        PageResult(index=n, width=200, height=120, blocks=[block], text="Page text") for n in (1, 3)
    ]
    bad = PageResult(
        index=2,
        width=0,
        height=0,
        error=PageError(code=ErrorCode.pdf_corrupt, message="page 2: broken object 7 0 R"),
    )
    files = JobFiles(settings.temp_dir, settings.output_dir, job_id)
    write_results(files, build_document(job_id, "rapidocr", [good[0], bad, good[1]]))
    assert store.succeed(job_id)
    return job_id


def test_a_job_with_a_failed_page_shows_it_in_progress_and_results(
    client: TestClient, store: JobStore, settings: Settings, redis_client: redis.Redis
) -> None:
    job_id = _succeed_with_a_failed_page(client, store, settings, redis_client)

    view = client.get(f"/jobs/{job_id}").json()
    assert view["status"] == "succeeded"
    assert view["progress"] == {"pages_done": 3, "pages_total": 3, "pages_failed": 1}

    result = client.get(f"/jobs/{job_id}/result").json()
    assert [p["index"] for p in result["pages"]] == [1, 2, 3]
    assert result["pages"][1]["error"] == {
        "code": "pdf_corrupt",
        "message": "page 2: broken object 7 0 R",
    }
    assert result["pages"][1]["blocks"] == [] and result["pages"][0]["error"] is None
    text = client.get(f"/jobs/{job_id}/result?format=text").text
    assert text.split("\f") == [
        "Page text",
        "[page 2 could not be read: pdf_corrupt]",
        "Page text\n",
    ]
    markdown = client.get(f"/jobs/{job_id}/result?format=markdown").text
    assert "<!-- page 2 -->\n\n> Page 2 could not be read: `pdf_corrupt`" in markdown


def test_a_clean_job_shows_zero_failed_pages(client: TestClient) -> None:
    job_id = client.post("/jobs", files={"file": ("a.pdf", _pdf(1))}).json()["job_id"]

    assert client.get(f"/jobs/{job_id}").json()["progress"]["pages_failed"] == 0


def test_the_status_stream_carries_pages_failed(
    client: TestClient, store: JobStore, settings: Settings, redis_client: redis.Redis
) -> None:
    job_id = _succeed_with_a_failed_page(client, store, settings, redis_client)

    with client.stream("GET", f"/jobs/{job_id}/events") as response:
        body = "".join(response.iter_text())

    views = [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:")]
    assert views[-1]["status"] == "succeeded"
    assert views[-1]["progress"]["pages_failed"] == 1


def _scrape(client: TestClient) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if not sample.labels
    }


def test_metrics_show_the_failed_pages_counter(client: TestClient) -> None:
    assert "ocrq_pages_failed_total" in _scrape(client)


def test_metrics_count_the_failed_pages_the_job_package_counted(
    client: TestClient, redis_client: redis.Redis
) -> None:
    before = _scrape(client)["ocrq_pages_failed_total"]
    redis_client.hincrby(keys.COUNTERS, "pages_failed", 2)

    after = _scrape(client)
    assert after["ocrq_pages_failed_total"] - before == 2
    assert 'event="pages_failed"' not in client.get("/metrics").text  # not a job outcome


def test_a_failed_pages_picture_and_the_pdf_of_a_pdf_that_lies_about_its_pages(
    client: TestClient, store: JobStore, settings: Settings, redis_client: redis.Redis
) -> None:
    """A page tree whose /Count says 3 over one page: pages 2 and 3 could not be loaded. Their
    pictures answer 404 page_not_found saying why; the searchable PDF still has 3 pages."""
    upload = bare_pdf(3, size_pt=(300, 400))
    job_id = client.post("/jobs", files={"file": ("liar.pdf", upload)}).json()["job_id"]
    assert store.claim(job_id, "w1:1", 30) is Claim.claimed
    record_pages(store, job_id, {1: None, 2: ErrorCode.pdf_corrupt, 3: ErrorCode.pdf_corrupt})
    files = JobFiles(settings.temp_dir, settings.output_dir, job_id)
    files.keep_source()
    error = PageError(code=ErrorCode.pdf_corrupt, message="page cannot be loaded")
    pages = [PageResult(index=1, width=833, height=1111, dpi=200)] + [
        PageResult(index=n, width=0, height=0, error=error) for n in (2, 3)
    ]
    write_results(files, build_document(job_id, "rapidocr", pages))
    assert store.succeed(job_id)

    assert client.get(f"/jobs/{job_id}/pages/1/image").status_code == 200
    missing = client.get(f"/jobs/{job_id}/pages/2/image")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "page_not_found"
    assert (
        "could not be read (pdf_corrupt: page cannot be loaded)"
        in missing.json()["error"]["message"]
    )
    pdf = client.get(f"/jobs/{job_id}/result?format=pdf")
    assert pdf.status_code == 200
    with pikepdf.open(io.BytesIO(pdf.content)) as doc:
        assert len(doc.pages) == 3
