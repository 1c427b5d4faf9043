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
"""

from __future__ import annotations

import asyncio
import json
import logging

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from api.errors import HTTP_STATUS, HeadersTooLarge, RequestTimeout
from shared.errors import ServiceError

log = logging.getLogger(__name__)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Set the limits with `guarded_protocol`; uvicorn makes one instance per connection."""

    max_head_bytes = 16384
    head_timeout = 10.0

    _head_timer: asyncio.TimerHandle | None = None
    _reading_head = False
    _head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._begin_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # llhttp is fed at most one read at a time: the head is over its limit by < one read
        super().data_received(data)
        if self._reading_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(
                    HeadersTooLarge(
                        f"the request line and headers pass {self.max_head_bytes} bytes "
                        "(MAX_HEADER_BYTES)"
                    )
                )

    # parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begin_head()

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.pipeline and not self.transport.is_closing():
            self._begin_head()  # the next request's head, behind uvicorn's keep-alive timer

    # the guard
    def _begin_head(self) -> None:
        if not self._reading_head:
            self._reading_head, self._head_bytes = True, 0
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _end_head(self) -> None:
        self._reading_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

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
        {"max_head_bytes": max_head_bytes, "head_timeout": head_timeout},
    )


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "?"
