"""uvicorn's httptools protocol with a bound on the request head: its size and its time.

uvicorn bounds neither with httptools (h11 caps the head at 16 KB but has no timer either):
llhttp hands a header over only once it is complete, so httptools keeps a half-sent one in
memory however long it grows, and a connection that sends nothing, or a byte now and then, is
kept open for good (the keep-alive timer runs only between requests). Here each request's
head (request line + headers) must fit in `max_head_bytes` (else 431 `headers_too_large`) and
arrive within `head_timeout` seconds of the connection opening or of the last response
(else 408 `request_timeout`, or no answer when not a byte of it came); either way the
connection is closed. The body's own gaps are
bounded by the upload route (api/uploads.py).

The size is counted twice, as the parser would otherwise see a whole head in one go (one read
of uvloop's is up to 256 KB): each read's bytes up to the blank line that ends the head (all of
them when it does not end there) are counted *before* the parser is fed, so a head in one read,
in many, or ending in the read that brings its body is refused unparsed; and what the parser
hands over (URL, headers) is counted before a request starts, for a head that begins behind
other bytes of a read (a pipelined request after another's body).

A request whose head passed then starts through the server's RequestAdmission
(api/request_admission.py): a few per event-loop turn, /health first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from api.errors import HTTP_STATUS, HeadersTooLarge, RequestTimeout
from api.request_admission import RequestAdmission
from shared.errors import ServiceError

log = logging.getLogger(__name__)

_HEAD_END = b"\r\n\r\n"
_REQUEST_START = re.compile(rb"[^\r\n]")  # llhttp skips blank lines before a request line


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Set the limits with `guarded_protocol`; uvicorn makes one instance per connection."""

    max_head_bytes = 16384
    head_timeout = 10.0
    admission = RequestAdmission()  # one per server: guarded_protocol makes its own

    _head_timer: asyncio.TimerHandle | None = None
    _reading_head = False
    _head_bytes = 0  # of the awaited head, from the reads (before the parser)
    _head_tail = b""  # its last 3 bytes: the blank line may straddle two reads
    _parsed_head = 0  # of the current request's head, as the parser hands it over

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._begin_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head and not self.transport.is_closing():
            self._head_bytes += self._head_part(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse_head()
                return  # the parser never sees it
        super().data_received(data)

    def _head_part(self, data: bytes) -> int:
        """How many bytes of `data` belong to the awaited head: up to its blank line, or all."""
        start = 0
        if not self._head_bytes:  # blank lines before the request line are no head yet
            first = _REQUEST_START.search(data)
            if first is None:
                return 0
            start = first.start()
        keep = len(_HEAD_END) - 1
        tail = self._head_tail
        end = (tail + data[:keep]).find(_HEAD_END) if tail else -1
        if end >= 0:  # the blank line began in the previous read
            return end + len(_HEAD_END) - len(tail)
        end = data.find(_HEAD_END, start)
        if end >= 0:
            return end + len(_HEAD_END) - start
        self._head_tail = (
            data[-keep:] if len(data) - start >= keep else (tail + data[start:])[-keep:]
        )
        return len(data) - start

    # parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed_head = 0
        self._begin_head()

    def on_url(self, url: bytes) -> None:
        self._parsed_head += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed_head += len(name) + len(value) + 3  # "name:value\r\n", at least
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self.transport.is_closing():
            return  # refused earlier in this read: start nothing of it
        if self._parsed_head > self.max_head_bytes:
            self._refuse_head()
            return
        self._end_head()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self.transport.is_closing():
            super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        """A few requests start per loop turn (api/request_admission.py); one whose client
        left while it waited is not started."""

        def start() -> None:
            if not self.transport.is_closing():
                super(GuardedHttpToolsProtocol, self)._start_asgi_task(cycle, app)

        self.admission.start(self.loop, cycle.scope["path"], start)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.pipeline and not self.transport.is_closing():
            self._begin_head()  # the next request's head, behind uvicorn's keep-alive timer

    # the guard
    def _begin_head(self) -> None:
        if not self._reading_head:
            self._reading_head, self._head_bytes, self._head_tail = True, 0, b""
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _end_head(self) -> None:
        self._reading_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse_head(self) -> None:
        self._refuse(
            HeadersTooLarge(
                f"the request line and headers pass {self.max_head_bytes} bytes (MAX_HEADER_BYTES)"
            )
        )

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._reading_head or self.transport.is_closing():
            return
        if not self._head_bytes:
            # not a byte of a request: close without an answer, which a keep-alive client
            # could take for the answer to a request it is sending meanwhile
            self._end_head()
            self.transport.close()
            return
        self._refuse(
            RequestTimeout(
                f"the request line and headers did not arrive within {self.head_timeout:g} s "
                "(HEADER_TIMEOUT_SECONDS)"
            )
        )

    def _refuse(self, error: ServiceError) -> None:
        """Answer with the JSON error and close, whatever the parser had of the request."""
        self._end_head()
        log.info("connection from %s refused: %s", _peer(self.client), error.message)
        body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
        head = [STATUS_LINE[HTTP_STATUS[error.code]]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def guarded_protocol(max_head_bytes: int, head_timeout: float) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn.Config(http=...), with these limits."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "max_head_bytes": max_head_bytes,
            "head_timeout": head_timeout,
            "admission": RequestAdmission(),
        },
    )


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "?"
