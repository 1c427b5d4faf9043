"""Raw HTTP/1.1 over a socket, for what httpx will not send: unfinished heads, stalled bodies,
floods. A thread reads the answer and notes when the server closes the connection."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

BOUNDARY = b"FloodBoundary"
FIELD = 4096


@dataclass
class Conn:
    """One raw connection; a thread reads what the API answers and when it closes."""

    port: int
    opened: float = field(default_factory=time.monotonic)
    reply: bytes = b""
    closed_after: float | None = None
    sent: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.reply += chunk
        except OSError:
            pass
        self.closed_after = time.monotonic() - self.opened

    @property
    def done(self) -> bool:
        """The API answered or closed: a sender stops here."""
        return bool(self.reply) or self.closed_after is not None

    def send(self, data: bytes) -> bool:
        if self.done:
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.sent += len(data)
        return True

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.closed_after is None and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.sock.close()

    def answer(self) -> str:
        status = re.match(rb"HTTP/1\.1 (\d+)", self.reply)
        if not status:
            return "closed, no answer" if self.closed_after is not None else "no answer"
        code = re.search(rb'"code": ?"([a-z_]+)"', self.reply)
        return f"{status[1].decode()} {code[1].decode() if code else ''}".strip()


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def upload_head(length: int | None) -> bytes:
    size = {"Content-Length": str(length)} if length else {"Transfer-Encoding": "chunked"}
    return request_head(
        "POST",
        "/jobs",
        {"Content-Type": f"multipart/form-data; boundary={BOUNDARY.decode()}", **size},
    )


def form_field(index: int) -> bytes:
    """A 4 KB form field with its own name (a dict keyed by name keeps every one)."""
    disposition = f'Content-Disposition: form-data; name="f{index:09d}"'.encode()
    return b"--" + BOUNDARY + b"\r\n" + disposition + b"\r\n\r\n" + b"v" * FIELD + b"\r\n"


CLOSING = b"--" + BOUNDARY + b"--\r\n"


def chunk(piece: bytes) -> bytes:
    """`piece` as one chunk of a Transfer-Encoding: chunked body."""
    return b"%x\r\n" % len(piece) + piece + b"\r\n"


def send_body(conn: Conn, pieces: Iterable[bytes], chunked: bool) -> None:
    """Send until the API answers or closes; a body it let through gets its closing boundary."""
    for piece in pieces:
        if not conn.send(chunk(piece) if chunked else piece):
            break
    else:
        conn.send(chunk(CLOSING) + b"0\r\n\r\n" if chunked else CLOSING)
    conn.wait(60)
