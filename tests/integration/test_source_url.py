"""Documents by reference (`source_url`) through the real API and worker, from a real HTTP server
on loopback and a real S3 server (moto): a job by URL reads like an upload of the same bytes;
each way a fetch can fail ends its job with a stable code and leaves no file; a URL the service
may not read is refused at submit with nothing stored; Idempotency-Key and the CLI's manifest
work for it (quotas: tests/unit/worker/test_sources.py). The session stack allows 127.0.0.1/32
only (tests/integration/conftest.py), so a redirect to 127.0.0.2 shows the address check biting
on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testkit.pages import encode, normalize_lines, render_page
from testkit.s3server import S3Server
from testkit.source_server import SourceServer, serving_sources
from testkit.stack import Stack, wait_terminal
from tests.integration.conftest import SOURCE_BUCKET, files_under
from tests.integration.test_batch_cli import job_count, run_ocrq, write_pdf

pytestmark = pytest.mark.integration

LINES = [("Fetched by reference", 40), ("Invoice 7731", 32)]


@pytest.fixture(scope="module")
def sources() -> Iterator[SourceServer]:
    with serving_sources() as running:
        yield running


def _by_url(api: httpx.Client, url: str, **fields: str) -> httpx.Response:
    return api.post(
        "/jobs", files={"source_url": (None, url), **{k: (None, v) for k, v in fields.items()}}
    )


def _text(api: httpx.Client, job_id: str) -> list[str]:
    return normalize_lines(api.get(f"/jobs/{job_id}/result", params={"format": "text"}).text)


def test_a_job_by_url_reads_as_an_upload_of_the_same_file(
    api: httpx.Client, sources: SourceServer
) -> None:
    png = encode(render_page(LINES))
    url = sources.add("scan.png", png) + "?token=secret"
    by_url = _by_url(api, url)
    upload = api.post("/jobs", files={"file": ("scan.png", png)})
    assert by_url.status_code == 202 == upload.status_code, by_url.text
    job = wait_terminal(api, by_url.json()["job_id"])
    assert job["status"] == "succeeded", job
    assert job["source_url"] == sources.url("files/scan.png") + "?..."  # its query hidden
    assert wait_terminal(api, upload.json()["job_id"])["status"] == "succeeded"
    assert _text(api, job["job_id"]) == _text(api, upload.json()["job_id"])
    assert _text(api, job["job_id"]) == [line for line, _ in LINES]
    pdf = api.get(f"/jobs/{job['job_id']}/result/pdf")  # the fetched bytes kept as the source
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    # POST /ocr takes it too, and answers with the text
    sync = api.post(
        "/ocr", params={"format": "text"}, files={"source_url": (None, url)}, timeout=60
    )
    assert sync.status_code == 200, sync.text
    assert normalize_lines(sync.text) == [line for line, _ in LINES]


def test_an_idempotency_key_finds_the_job_of_the_same_url(
    api: httpx.Client, sources: SourceServer
) -> None:
    url = sources.add("same.png", encode(render_page(LINES)))
    headers = {"Idempotency-Key": "source-url-replay"}
    first = api.post("/jobs", headers=headers, files={"source_url": (None, url)})
    again = api.post("/jobs", headers=headers, files={"source_url": (None, url)})
    assert (first.status_code, again.status_code) == (202, 200), again.text
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api.post(
        "/jobs", headers=headers, files={"source_url": (None, sources.url("files/other.png"))}
    )
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert wait_terminal(api, first.json()["job_id"])["status"] == "succeeded"


def test_each_failed_fetch_ends_its_job_with_a_code_and_leaves_nothing(
    api: httpx.Client, stack: Stack, sources: SourceServer
) -> None:
    sources.add("page.html", b"<!doctype html><title>not a scan</title>")
    sources.add("slow.png", encode(render_page(LINES)))
    sources.slow_pause = 1.0
    with serving_sources("127.0.0.2") as elsewhere:
        elsewhere.add("secret.png", encode(render_page(LINES)))
        cases = {
            # a redirect into a refused address: metadata, or loopback outside 127.0.0.1/32
            "redirect?to=http://169.254.169.254/latest/meta-data/": "source_unreachable",
            f"redirect?to={elsewhere.url('files/secret.png')}": "source_unreachable",
            f"claims/{100 << 20}": "source_too_large",  # a Content-Length over MAX_UPLOAD_MB
            "endless": "source_too_large",  # no Content-Length: cut at the cap
            "slow/slow.png": "source_unreachable",  # past SOURCE_TIMEOUT_SECONDS
            "files/page.html": "unsupported_media_type",
            "files/missing.png": "source_unreachable",  # 404
        }
        submitted = {}
        for path, code in cases.items():
            answer = _by_url(api, sources.url(path))
            assert answer.status_code == 202, answer.text
            submitted[answer.json()["job_id"]] = (path, code)
        for job_id, (path, code) in submitted.items():
            job = wait_terminal(api, job_id, timeout=120)
            assert (job["status"], job["error"]["code"]) == ("failed", code), (path, job)
        assert elsewhere.requests == []  # never asked
    assert not any(job_id in str(p) for p in files_under(stack.base) for job_id in submitted)


def test_a_url_the_service_may_not_read_is_refused_at_submit(
    api: httpx.Client, stack: Stack, sources: SourceServer
) -> None:
    before, folders = job_count(stack), files_under(stack.base / "temp")
    png = encode(render_page(LINES))
    refused = {
        "https://10.20.30.40/scan.png": "invalid_source_url",  # private
        "https://169.254.169.254/latest": "invalid_source_url",  # metadata
        "http://127.0.0.2:9/scan.png": "invalid_source_url",  # loopback outside the allowed /32
        "ftp://127.0.0.1/scan.png": "invalid_source_url",
        "s3://any-bucket/scan.png": "invalid_source_url",  # SOURCE_S3_BUCKETS is empty
    }
    for url, code in refused.items():
        answer = _by_url(api, url)
        assert (answer.status_code, answer.json()["error"]["code"]) == (422, code), url
    both = api.post(
        "/jobs", files={"source_url": (None, sources.url("files/x.png")), "file": ("a.png", png)}
    )
    assert (both.status_code, both.json()["error"]["code"]) == (422, "file_and_source_url")
    first_file = api.post(
        "/jobs", files={"file": ("a.png", png), "source_url": (None, sources.url("files/x.png"))}
    )
    assert first_file.json()["error"]["code"] == "file_and_source_url"
    neither = api.post("/jobs", files={"language": (None, "en")})
    assert (neither.status_code, neither.json()["error"]["code"]) == (422, "file_missing")
    assert job_count(stack) == before
    # nothing new (an earlier test's job may still be removing its input)
    assert set(files_under(stack.base / "temp")) <= set(folders)


def test_the_cli_submits_the_urls_of_a_manifest(
    stack: Stack, sources: SourceServer, tmp_path: Path
) -> None:
    write_pdf(tmp_path / "two.pdf", [["First page of two"], ["Second page of two"]])
    one = sources.add("one.png", encode(render_page([("Manifest line one", 36)], width=640)))
    two = sources.add("two.pdf", (tmp_path / "two.pdf").read_bytes())
    manifest = tmp_path / "urls.txt"
    manifest.write_text(f"# scans of the day\n{one}\n\n{two}  # the contract\n")
    out = tmp_path / "out"
    result = run_ocrq(
        stack.url, "submit", "--manifest", str(manifest), "--out", str(out), "--format", "text"
    )
    assert result.returncode == 0, result.stderr
    host = "127.0.0.1"
    assert normalize_lines((out / host / "files" / "one.png.txt").read_text()) == [
        "Manifest line one"
    ]
    assert "Second page of two" in (out / host / "files" / "two.pdf.txt").read_text()
    again = run_ocrq(stack.url, "submit", "--manifest", str(manifest), "--out", str(out))
    assert again.returncode == 0, again.stderr  # the results are there: nothing submitted


def test_s3_sources_from_an_allowed_bucket_only(api: httpx.Client, s3_server: S3Server) -> None:
    """The worker reads an object of the allowed bucket and prefix with the service's own
    credentials; another bucket, or another prefix, is refused at submit."""
    client = s3_server.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=SOURCE_BUCKET)
    other = s3_server.new_bucket()
    png = encode(render_page(LINES))
    for bucket, key in (
        (SOURCE_BUCKET, "in/scan.png"),
        (SOURCE_BUCKET, "private/scan.png"),
        (other, "in/scan.png"),
    ):
        client.put_object(Bucket=bucket, Key=key, Body=png)
    job = _by_url(api, f"s3://{SOURCE_BUCKET}/in/scan.png").json()
    missing = _by_url(api, f"s3://{SOURCE_BUCKET}/in/none.png").json()
    assert wait_terminal(api, job["job_id"])["status"] == "succeeded"
    assert _text(api, job["job_id"]) == [line for line, _ in LINES]
    assert wait_terminal(api, missing["job_id"])["error"]["code"] == "source_unreachable"
    for url in (f"s3://{other}/in/scan.png", f"s3://{SOURCE_BUCKET}/private/scan.png"):
        refused = _by_url(api, url)
        assert refused.json()["error"]["code"] == "invalid_source_url", url
