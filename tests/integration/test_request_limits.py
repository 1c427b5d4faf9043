"""The API process at its edge: bodies of form fields, huge or unfinished heads, stalled
connections and a full TEMP_DIR get a stable error and a closed connection, within a bound,
and leave nothing behind. (What the floods cost in memory is measured by bench/floods.py.)"""

from __future__ import annotations

import time
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
from tests.conftest import UNIT_REDIS_URL, service_fixture
from tests.fulldisk import small_tmpfs
from tests.integration.conftest import files_under

pytestmark = pytest.mark.integration

MB = 1 << 20
KB = 1 << 10
MAX_HEADER_BYTES = 16384  # the default
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


@service_fixture(scope="module")
def lone_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API process alone (no worker), for what is refused before any route runs."""
    stack = Stack(base=tmp_path_factory.mktemp("lone-api"), redis_url=UNIT_REDIS_URL)
    try:
        stack.start_api()
        yield stack
    finally:
        stack.stop()


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


def _head(size: int, path: str = "/health", **headers: str) -> bytes:
    """A request head of exactly `size` bytes (an X-Fill header makes up the rest)."""
    head = request_head("GET" if path == "/health" else "POST", path, {**headers, "X-Fill": ""})
    return head[:-4] + b"a" * (size - len(head)) + b"\r\n\r\n"


@pytest.mark.parametrize("size", [17 * KB, 64 * KB, 120 * KB])
def test_a_whole_head_over_the_limit_in_one_send_gets_431(lone_api: Stack, size: int) -> None:
    """Before, a head that came in one read was parsed whole and served (17-120 KB: 200)."""
    conn = Conn(lone_api.port)
    conn.send(_head(size))

    _assert_refused(conn, 431, "headers_too_large", MB)
    assert b"HTTP/1.1 200" not in conn.reply


def test_a_head_at_the_limit_is_served_and_one_byte_more_is_not(lone_api: Stack) -> None:
    at_limit = Conn(lone_api.port)
    at_limit.send(_head(MAX_HEADER_BYTES, Connection="close"))
    at_limit.wait(CLOSE_WITHIN)
    assert at_limit.answer() == "200", at_limit.reply[:300]

    over = Conn(lone_api.port)
    over.send(_head(MAX_HEADER_BYTES + 1, Connection="close"))
    _assert_refused(over, 431, "headers_too_large", MB)


def test_a_head_over_the_limit_sent_in_pieces_gets_431(lone_api: Stack) -> None:
    conn = Conn(lone_api.port)
    head = _head(40 * KB)
    for first in range(0, len(head), 4 * KB):
        conn.send(head[first : first + 4 * KB])
        time.sleep(0.02)  # each piece its own read

    _assert_refused(conn, 431, "headers_too_large", MB)


def test_a_head_whose_blank_line_straddles_two_reads_is_told_from_its_body(
    lone_api: Stack,
) -> None:
    """The body after a head under the limit is no part of the head, wherever the reads cut."""
    head = _head(8 * KB, **{"Content-Length": str(32 * KB), "Connection": "close"})
    conn = Conn(lone_api.port)
    for piece in (head[:-1], head[-1:] + b"b" * (16 * KB), b"b" * (16 * KB)):
        conn.send(piece)
        time.sleep(0.05)  # each piece its own read
    conn.wait(CLOSE_WITHIN)

    assert conn.answer() == "200", conn.reply[:300]


def test_a_head_over_the_limit_that_ends_with_its_body_gets_431(lone_api: Stack) -> None:
    """Head and body in one send: the upload route never sees it, nothing is written."""
    png = encode(render_page([("Hi", 20)], width=100))
    part = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="a"'
    body = part + b"\r\n\r\n" + png + b"\r\n" + CLOSING
    head = _head(
        64 * KB,
        "/jobs",
        **{"Content-Type": f"multipart/form-data; boundary={BOUNDARY.decode()}"},
        **{"Content-Length": str(len(body))},
    )
    conn = Conn(lone_api.port)
    conn.send(head + body)

    _assert_refused(conn, 431, "headers_too_large", MB)
    assert files_under(lone_api.base / "temp") == []


@pytest.mark.parametrize(
    "before",
    [b"\r\n\r\n", request_head("GET", "/", {})],
    ids=["blank-lines-first", "pipelined-after-a-request"],
)
def test_a_head_over_the_limit_behind_other_bytes_of_its_read_gets_431(
    lone_api: Stack, before: bytes
) -> None:
    """Blank lines before a request line are skipped, a pipelined request follows another's
    end: a huge head there is refused too, and never served (the first request's answer may
    be cut by the close)."""
    conn = Conn(lone_api.port)
    conn.send(before + _head(64 * KB))
    conn.wait(CLOSE_WITHIN)

    assert b"HTTP/1.1 431" in conn.reply, conn.reply[:600]
    assert b'"headers_too_large"' in conn.reply
    assert b'{"status":"ok"}' not in conn.reply  # /health, behind the huge head, never ran
    assert conn.closed_after is not None


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
