"""Hostile and broken uploads against the real stack: a clear 4xx at upload or a failed job
with a stable code, never a dead worker, never a file outside TEMP_DIR/OUTPUT_DIR."""

from __future__ import annotations

import io
import os
import socket
import struct
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from shared.jobs import WorkerRegistry
from shared.storage import SOURCES_DIR
from testkit.pages import INVOICE_LINES, bare_pdf, encode, render_page
from testkit.stack import Stack, wait_terminal
from tests.integration.conftest import INTEGRATION_REDIS_URL

pytestmark = pytest.mark.integration

BOUNDARY = b"PoisonBoundary7MA4YWxk"


def bomb_png(side: int = 30_000) -> bytes:
    """A real 1-bit PNG of side x side white pixels: about 110 KB that decode to 900 MP."""
    row = b"\x00" + bytes((side + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row * 1000) for _ in range(side // 1000)) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def zip_file() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("document.pdf", b"%PDF-1.4 inside a zip")
    return buffer.getvalue()


def multipart(filename: bytes, data: bytes) -> bytes:
    """A multipart body written by hand: the file name's bytes go out exactly as given."""
    return (
        b"--" + BOUNDARY + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
        b"--" + BOUNDARY + b"--\r\n"
    )


def post_raw(api: httpx.Client, body: bytes) -> httpx.Response:
    content_type = b"multipart/form-data; boundary=" + BOUNDARY
    return api.post("/jobs", content=body, headers={"Content-Type": content_type.decode()})


PNG = encode(render_page(INVOICE_LINES))
JPEG = encode(render_page(INVOICE_LINES), "JPEG", quality=90)


def snapshot(root: Path) -> set[Path]:
    """Every file and folder under the stack's base but the logs. A folder the API removes
    while it is walked (a refused upload's clean-up racing the check) is skipped, not an
    error: os.walk ignores a scandir that fails, where Path.rglob raises."""
    found = set()
    for folder, dirs, files in os.walk(root):
        found.update(Path(folder) / name for name in [*dirs, *files])
    return {p for p in found if p.suffix != ".log"}


@pytest.fixture
def guarded(stack: Stack) -> Iterator[set[Path]]:
    """The worker process must be the same one afterwards (no crash, no restart), and
    nothing may appear outside TEMP_DIR/OUTPUT_DIR (nor in the processes' TMPDIR)."""
    registry = WorkerRegistry(redis.Redis.from_url(INTEGRATION_REDIS_URL, decode_responses=True))
    before = registry.get("test-worker-0")
    assert before is not None
    files_before = snapshot(stack.base)
    yield files_before
    after = registry.get("test-worker-0")
    assert after is not None and after.pid == before.pid, "the worker process was replaced"
    assert all(w.poll() is None for w in stack.workers)
    new = snapshot(stack.base) - files_before
    temp, output = stack.base / "temp", stack.base / "output"
    outside = [p for p in new if not (p.is_relative_to(temp) or p.is_relative_to(output))]
    assert outside == []
    assert list((stack.base / "tmp").iterdir()) == []


def assert_rejected_without_trace(
    response: httpx.Response, status: int, code: str, stack: Stack, before: set[Path]
) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert [p for p in snapshot(stack.base / "temp") - before if p.is_file()] == []


def assert_failed_cleanly(api: httpx.Client, response: httpx.Response, code: str) -> dict:
    assert response.status_code == 202, response.text
    final = wait_terminal(api, response.json()["job_id"], timeout=60)
    assert final["status"] == "failed", final
    assert final["error"]["code"] == code
    return final


def test_decompression_bomb_fails_with_image_too_large(
    stack: Stack, api: httpx.Client, guarded: set[Path]
) -> None:
    bomb = bomb_png()
    assert len(bomb) < 200_000
    response = api.post("/jobs", files={"file": ("bomb.png", bomb)})
    final = assert_failed_cleanly(api, response, "image_too_large")
    assert str(stack.base) not in final["error"]["message"]


def test_truncated_jpeg_fails_with_invalid_image_and_no_server_path(
    stack: Stack, api: httpx.Client, guarded: set[Path]
) -> None:
    for cut in (JPEG[: len(JPEG) // 2], JPEG[:40]):
        response = api.post("/jobs", files={"file": ("cut.jpg", cut)})
        final = assert_failed_cleanly(api, response, "invalid_image")
        message = final["error"]["message"]
        assert str(stack.base) not in message and "/temp/" not in message, message


def test_million_page_pdf_is_refused_at_upload(
    stack: Stack, api: httpx.Client, guarded: set[Path]
) -> None:
    response = api.post("/jobs", files={"file": ("huge.pdf", bare_pdf(1_000_000))})
    assert_rejected_without_trace(response, 422, "too_many_pages", stack, guarded)
    assert "1000000 pages" in response.json()["error"]["message"]


def test_pdf_claiming_more_pages_than_it_has_fails_cleanly_with_on_page_error_fail(
    stack: Stack, api: httpx.Client, guarded: set[Path]
) -> None:
    form = {"on_page_error": "fail"}
    response = api.post("/jobs", files={"file": ("liar.pdf", bare_pdf(3))}, data=form)
    assert_failed_cleanly(api, response, "pdf_corrupt")


def test_pdf_claiming_more_pages_than_it_has_fails_only_the_missing_pages(
    stack: Stack, api: httpx.Client
) -> None:
    response = api.post("/jobs", files={"file": ("liar.pdf", bare_pdf(3))})
    final = wait_terminal(api, response.json()["job_id"])
    assert final["status"] == "succeeded", final
    document = api.get(f"/jobs/{final['job_id']}/result").json()
    assert [(p["index"], (p["error"] or {}).get("code")) for p in document["pages"]] == [
        (1, None),
        (2, "pdf_corrupt"),
        (3, "pdf_corrupt"),
    ]


def test_pdf_page_of_200_by_200_inches_fails_before_rendering(
    stack: Stack, api: httpx.Client, guarded: set[Path]
) -> None:
    response = api.post("/jobs", files={"file": ("poster.pdf", bare_pdf(1, (14400, 14400)))})
    assert_failed_cleanly(api, response, "image_too_large")


def test_zip_renamed_pdf_is_415(stack: Stack, api: httpx.Client, guarded: set[Path]) -> None:
    response = api.post("/jobs", files={"file": ("report.pdf", zip_file(), "application/pdf")})
    assert_rejected_without_trace(response, 415, "unsupported_media_type", stack, guarded)


def test_empty_file_is_400(stack: Stack, api: httpx.Client, guarded: set[Path]) -> None:
    response = api.post("/jobs", files={"file": ("empty.png", b"")})
    assert_rejected_without_trace(response, 400, "empty_file", stack, guarded)


def test_oversized_body_behind_a_small_content_length_is_never_stored(
    stack: Stack, api: httpx.Client, guarded: set[Path]
) -> None:
    """Content-Length says 4 KB, 60 MB follow: the API takes 4 KB, which end mid-file (a
    cut upload, refused), and the bytes after them are no HTTP request (uvicorn's 400)."""
    jobs = redis.Redis.from_url(INTEGRATION_REDIS_URL)
    jobs_before = len(list(jobs.scan_iter("ocrq:job:*")))
    head = multipart(b"a.png", PNG)[: -len(b"\r\n--" + BOUNDARY + b"--\r\n")]
    request = (
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n"
        b"Content-Type: multipart/form-data; boundary=" + BOUNDARY + b"\r\n\r\n" + head
    )
    sent = 0
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        try:
            sock.sendall(request)
            chunk = bytes(1 << 20)
            while sent < 60 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            reply = sock.recv(4096)
        except ConnectionResetError:
            reply = b""
    assert reply.startswith(b"HTTP/1.1 400"), reply[:300]

    # That 400 is uvicorn's, for the bytes after the 4 KB; the route may still be refusing the
    # cut upload in its thread then, so its clean-up is waited for (bounded), not raced.
    def left() -> list[Path]:
        return [p for p in snapshot(stack.base / "temp") - guarded if p.is_file()]

    deadline = time.monotonic() + 10
    while left() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left() == []
    assert len(list(jobs.scan_iter("ocrq:job:*"))) == jobs_before  # no job from the 4 KB
    assert api.get("/health").status_code == 200
    # the same cut on a well-behaved connection gets the API's own answer
    response = post_raw(api, head[:4096])
    assert_rejected_without_trace(response, 400, "invalid_request", stack, guarded)
    assert "closing boundary" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "filename",
    [
        b"../../../../etc/cron.d/evil\x00.png",
        b"..%2f..%2f/x\\..\\..\\y.png",
        b"\xff\xfe\xc3(\x80.png",
    ],
    ids=["dotdot-nul", "encoded-dotdot", "not-utf8"],
)
def test_hostile_file_names_are_only_metadata(
    stack: Stack, api: httpx.Client, guarded: set[Path], filename: bytes
) -> None:
    response = post_raw(api, multipart(filename, PNG))
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert wait_terminal(api, job_id)["status"] == "succeeded"
    new = snapshot(stack.base) - guarded
    # the job's own folders only: its upload, its result, and its kept source (format=pdf)
    kept = stack.base / "output" / SOURCES_DIR
    assert {p.relative_to(stack.base).parts[:2] for p in new if not p.is_relative_to(kept)} <= {
        ("temp", job_id),
        ("output", job_id),
    }
    assert {p.relative_to(kept).parts[:1] for p in new if p.is_relative_to(kept)} <= {(), (job_id,)}


def test_a_normal_job_still_succeeds_afterwards(
    stack: Stack, api: httpx.Client, guarded: set[Path]
) -> None:
    response = api.post("/jobs", files={"file": ("ok.jpg", JPEG)})
    assert response.status_code == 202
    assert wait_terminal(api, response.json()["job_id"])["status"] == "succeeded"
