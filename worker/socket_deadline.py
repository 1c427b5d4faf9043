"""A total time limit on one HTTP exchange (httpx): read timeouts bound each wait, not the
whole; this cuts the socket once the exchange has taken too long, so a peer trickling bytes
inside the read timeout is stopped too. Used by the webhook sender and the source fetcher."""

from __future__ import annotations

import contextlib
import socket
import threading


class SocketDeadline:
    """Shuts the attempt's socket down once `seconds` passed since the connection opened, so a
    receiver trickling bytes inside the read timeout is cut off too."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._timer: threading.Timer | None = None

    def trace(self, name: str, info: dict) -> None:
        # httpcore's trace hook: the TCP stream, right after it connected
        if name == "connection.connect_tcp.complete" and info.get("return_value") is not None:
            sock = info["return_value"].get_extra_info("socket")
            if sock is not None:
                self._timer = threading.Timer(self.seconds, self._cut, args=(sock,))
                self._timer.daemon = True
                self._timer.start()

    def _cut(self, sock: socket.socket) -> None:
        self.fired = True
        with contextlib.suppress(OSError):  # closed already
            sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
