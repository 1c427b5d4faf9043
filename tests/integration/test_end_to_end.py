"""Upload -> job id at once -> warm worker -> poll -> result, through real processes."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from testkit.pages import INVOICE_LINES, encode, normalize_lines, render_page
from testkit.stack import Stack, wait_terminal
from tests.integration.conftest import files_under

pytestmark = pytest.mark.integration

PAGES = {
    "invoice.png": (INVOICE_LINES, "PNG"),
    "memo.jpg": (
        [("Meeting moved to room 305", 40), ("Call 555 0199 before 17:30", 26)],
        "JPEG",
    ),
    "receipt.webp": ([("Coffee 3.20", 36), ("Bagel 2.75", 36), ("Total 5.95", 24)], "WEBP"),
}


def test_worker_reports_warm_engine_in_ready(stack: Stack, api: httpx.Client) -> None:
    body = api.get("/ready").json()
    assert body["status"] == "ok" and body["engines_warm"] is True
    worker = body["worker_details"][0]
    assert (worker["engine"], worker["device"]) == ("rapidocr", "cpu")
    assert worker["warmup_seconds"] > 0
    log = (stack.base / "test-worker-0.log").read_text()
    assert "engine warm in" in log and "TEMP_DIR=" in log and "onnxruntime" in log


@pytest.mark.parametrize("name", sorted(PAGES))
def test_upload_poll_and_read_back_text(api: httpx.Client, name: str) -> None:
    lines, fmt = PAGES[name]
    data = encode(render_page(lines), fmt, **({"quality": 95} if fmt != "PNG" else {}))

    started = time.perf_counter()
    accepted = api.post("/jobs", files={"file": (name, data)})
    accept_seconds = time.perf_counter() - started

    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert accepted.headers["location"] == f"/jobs/{job_id}"
    assert accept_seconds < 5  # answered before any OCR could finish; speed lives in bench/
    final = wait_terminal(api, job_id)
    assert final["status"] == "succeeded", final
    assert final["progress"] == {"pages_done": 1, "pages_total": 1, "pages_failed": 0}
    assert final["started_at"] <= final["finished_at"]

    text = api.get(f"/jobs/{job_id}/result", params={"format": "text"})
    assert text.headers["content-type"].startswith("text/plain")
    assert normalize_lines(text.text) == [t for t, _ in lines]
    document = api.get(f"/jobs/{job_id}/result").json()
    assert document["job_id"] == job_id and document["engine"] == "rapidocr"
    assert [b["text"] for b in document["pages"][0]["blocks"]] == [t for t, _ in lines]
    markdown = api.get(f"/jobs/{job_id}/result", params={"format": "markdown"})
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert lines[0][0] in markdown.text


def test_broken_image_fails_the_job_and_the_worker_lives_on(
    stack: Stack, api: httpx.Client
) -> None:
    png = encode(render_page(INVOICE_LINES))
    broken = api.post("/jobs", files={"file": ("cut.png", png[:300])}).json()["job_id"]
    good = api.post("/jobs", files={"file": ("ok.png", png)}).json()["job_id"]

    failed = wait_terminal(api, broken)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "invalid_image"
    assert api.get(f"/jobs/{broken}/result").json()["error"]["code"] == "job_failed"
    assert wait_terminal(api, good)["status"] == "succeeded"
    assert all(w.poll() is None for w in stack.workers)


def test_bad_uploads_rejected_by_the_running_api(stack: Stack, api: httpx.Client) -> None:
    cases = {
        "empty_file": b"",
        "unsupported_media_type": b"%!PS-Adobe-3.0 not supported",
    }
    for code, payload in cases.items():
        response = api.post("/jobs", files={"file": ("x.png", payload)})
        assert response.status_code in (400, 415)
        assert response.json()["error"]["code"] == code
    assert api.get(f"/jobs/{'0' * 32}").status_code == 404
    assert [p for p in files_under(stack.base / "temp") if p.name != "input"] == []


def test_oversized_chunked_upload_is_cut_off_early(stack: Stack) -> None:
    """Raw socket, no Content-Length: the API answers 413 before the body is all sent."""
    limit = 50 * 1024 * 1024  # MAX_UPLOAD_MB default
    head = (
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=BB\r\n\r\n"
    )
    part = b'--BB\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    part += b"\x89PNG\r\n\x1a\n" + bytes(64)
    sent = 0
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(part), part))
        chunk = bytes(1 << 20)
        try:
            while sent < 2 * limit:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"file_too_large" in reply
    assert sent < 2 * limit
