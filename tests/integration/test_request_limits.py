"""The API process at its edge: bodies of form fields, huge or unfinished heads, stalled
connections and a full TEMP_DIR get a stable error and a closed connection, within a bound,
and leave nothing behind. (What the floods cost in memory is measured by bench/floods.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testkit.pages import encode, render_page
from testkit.rawhttp import (
    BOUNDARY,
    CLOSING,
    Conn,
    form_field,
    request_head,
    send_body,
    upload_head,
)
from testkit.stack import Stack
from tests.fulldisk import small_tmpfs
from tests.integration.conftest import files_under

pytestmark = pytest.mark.integration

MB = 1 << 20
# Bounds for "refused early": far above what the API needs, far below the flood.
CLOSE_WITHIN = 10.0


def _fields(total: int) -> Iterator[bytes]:
    count = total // len(form_field(0))
    for first in range(0, count, 64):
        yield b"".join(form_field(i) for i in range(first, min(count, first + 64)))


def _assert_refused(conn: Conn, status: int, code: str, flood_bytes: int) -> None:
    conn.wait(CLOSE_WITHIN)
    assert conn.answer() == f"{status} {code}", conn.reply[:400]
    assert b"connection: close" in conn.reply.lower()
    assert conn.closed_after is not None, "the API kept the connection open"
    assert conn.sent < flood_bytes / 4, f"{conn.sent} bytes taken before the answer"


@pytest.fixture
def quick(side_stack) -> Stack:
    """An API with one-second head and body timeouts."""
    stack = side_stack(HEADER_TIMEOUT_SECONDS="1", BODY_TIMEOUT_SECONDS="1")
    stack.start_api()
    return stack


def test_a_chunked_body_of_many_fields_is_refused_early(stack: Stack) -> None:
    conn = Conn(stack.port)
    conn.send(upload_head(None))
    send_body(conn, _fields(100 * MB), chunked=True)

    _assert_refused(conn, 413, "form_too_large", 100 * MB)
    assert "MAX_FORM_FIELDS" in conn.reply.decode()


def test_a_45_mb_body_of_fields_with_a_content_length_is_refused_early(stack: Stack) -> None:
    """Under the Content-Length check (MAX_UPLOAD_MB + the form budget): refused by count."""
    pieces = list(_fields(45 * MB))
    conn = Conn(stack.port)
    conn.send(upload_head(sum(map(len, pieces)) + len(CLOSING)))
    send_body(conn, pieces, chunked=False)

    _assert_refused(conn, 413, "form_too_large", 45 * MB)


def test_an_epilogue_after_the_file_is_refused_without_a_content_length(stack: Stack) -> None:
    """Bytes that are neither field nor file (the parser skips an epilogue) are bounded too:
    before, 300 MB of them were read to the end and the job accepted."""
    png = encode(render_page([("Hi", 20)], width=100))
    part = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="a"'
    conn = Conn(stack.port)
    conn.send(upload_head(None))
    send_body(
        conn,
        [part + b"\r\n\r\n" + png + b"\r\n" + CLOSING] + [b"e" * (256 << 10)] * 400,
        chunked=True,
    )

    _assert_refused(conn, 413, "form_too_large", 100 * MB)
    assert files_under(stack.base / "temp") == []


def test_a_part_without_a_name_is_refused_saying_so(stack: Stack) -> None:
    conn = Conn(stack.port)
    conn.send(upload_head(None))
    nameless = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; filename="a.png"\r\n\r\n'
    send_body(conn, [nameless] + [b"\x89PNG\r\n\x1a\n" * 32768] * 400, chunked=True)

    _assert_refused(conn, 400, "invalid_request", 100 * MB)
    message = conn.reply.decode()
    assert "has no name" in message and "''" not in message


def test_an_unfinished_huge_header_gets_431_and_a_closed_connection(stack: Stack) -> None:
    conn = Conn(stack.port)
    conn.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Fill: ")
    for _ in range(16 * MB // (64 << 10)):
        if not conn.send(b"a" * (64 << 10)):
            break

    _assert_refused(conn, 431, "headers_too_large", 16 * MB)
    assert httpx.get(f"{stack.url}/health", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("start", "answer"),
    [
        (b"", "closed, no answer"),  # idle: nothing of a request to answer
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n", "408 request_timeout"),
        (upload_head(MB) + b"--" + BOUNDARY + b"\r\n" + b"x" * 1024, "408 request_timeout"),
    ],
    ids=["idle", "half-sent-head", "half-sent-body"],
)
def test_a_stalled_connection_is_closed_after_its_timeout(
    quick: Stack, start: bytes, answer: str
) -> None:
    conn = Conn(quick.port)
    conn.send(start)
    conn.wait(CLOSE_WITHIN)

    assert conn.closed_after is not None and conn.closed_after >= 0.9
    assert conn.answer() == answer
    assert files_under(quick.base / "temp") == []


def test_a_head_sent_a_byte_at_a_time_is_bounded_in_total(quick: Stack) -> None:
    """Slowloris: each byte comes well within any gap limit; the head's deadline still ends it."""
    conn = Conn(quick.port)
    conn.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    while conn.send(b"a") and conn.closed_after is None:
        conn.wait(0.2)
        assert conn.sent < 200, "still open after 8 s of a byte per 0.2 s"

    assert conn.answer() == "408 request_timeout"


def test_keep_alive_and_a_slow_steady_upload_are_not_cut(quick: Stack) -> None:
    """The head timer runs only while a head is awaited, the body timer only between pieces:
    a second request 0.5 s after the first on one connection, and an upload sent in pieces
    0.5 s apart (1 s timeouts both), are answered."""
    conn = Conn(quick.port)
    conn.send(request_head("GET", "/health", {}))
    conn.wait(0.5)
    conn.sock.sendall(request_head("GET", "/health", {"Connection": "close"}))  # after the 1st
    conn.wait(CLOSE_WITHIN)
    assert conn.reply.count(b"HTTP/1.1 200") == 2

    png = encode(render_page([("Hi", 20)], width=100))
    part = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="a"'
    body = part + b"\r\n\r\n" + png + b"\r\n" + CLOSING
    upload = Conn(quick.port)
    upload.send(upload_head(len(body)))
    for first in range(0, len(body), len(body) // 3 + 1):
        upload.wait(0.5)
        upload.send(body[first : first + len(body) // 3 + 1])
    upload.wait(CLOSE_WITHIN)  # 202, then the keep-alive timer closes it
    assert upload.answer().startswith("202"), upload.reply[:300]


@pytest.fixture
def full_temp(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs as TEMP_DIR: a real full disk (root only)."""
    with small_tmpfs(tmp_path / "small-temp", size="2m") as mount:
        yield mount


def test_a_full_temp_dir_is_507_insufficient_storage_and_leaves_nothing(
    side_stack, full_temp: Path
) -> None:
    stack = side_stack(TEMP_DIR=str(full_temp))
    stack.start_api()
    big = b"\x89PNG\r\n\x1a\n" + bytes(3 * MB)  # more than the 2 MB the folder holds

    with httpx.Client(base_url=stack.url, timeout=30) as client:
        refused = client.post("/jobs", files={"file": ("big.png", big)})
        assert refused.status_code == 507, refused.text
        error = refused.json()["error"]
        assert error["code"] == "insufficient_storage"
        assert str(full_temp) not in error["message"]
        assert list(full_temp.iterdir()) == []
        # the space came back: a small upload is taken again
        png = encode(render_page([("Hi", 20)], width=100))
        assert client.post("/jobs", files={"file": ("a.png", png)}).status_code == 202
