"""An incremental parser of server-sent events (the WHATWG `text/event-stream` format).

Fed the response body in chunks as they arrive (split anywhere, even inside a UTF-8 character
or between CR and LF), it returns each message once its blank line came. It keeps what a
reconnect needs: the last event id (`id:`) and the reconnection delay (`retry:`).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_LINE_END = re.compile(r"\r\n|\r|\n")
# a line longer than this is a broken or hostile server, not a job's state
MAX_LINE_CHARS = 1 << 20


class EventStreamError(ValueError):
    """The stream is not a valid event stream (a line past MAX_LINE_CHARS)."""


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched message: its `event:` (default "message"), joined `data:` lines, and the
    last event id in force when it was dispatched ("" if the server never sent one)."""

    event: str
    data: str
    id: str


class EventStreamDecoder:
    """Bytes in, messages out; comments (`: keepalive`) and unknown fields are skipped."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False  # a BOM is dropped only at the very start
        self._skip_lf = False  # the last chunk ended in CR: a leading LF is its CRLF's end
        self._event = ""
        self._data: list[str] = []
        self.last_event_id = ""
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The messages that `chunk` completes, in order."""
        text = self._utf8.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._skip_lf and text:
            self._skip_lf = False
            text = text.removeprefix("\n")
        self._buffer += text
        messages: list[ServerSentEvent] = []
        start = 0
        for end in _LINE_END.finditer(self._buffer):
            if end.group() == "\r" and end.end() == len(self._buffer):
                self._skip_lf = True
            message = self._line(self._buffer[start : end.start()])
            if message is not None:
                messages.append(message)
            start = end.end()
        self._buffer = self._buffer[start:]
        if len(self._buffer) > MAX_LINE_CHARS:
            raise EventStreamError(f"an event stream line longer than {MAX_LINE_CHARS} chars")
        return messages

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keepalives
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None  # a blank line after only id:/retry:/event: dispatches nothing
        return ServerSentEvent(event or "message", "\n".join(data), self.last_event_id)
