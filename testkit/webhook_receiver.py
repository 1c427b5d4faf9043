"""A webhook receiver on loopback for tests and benchmarks: records every POST and answers as
scripted (fail, recover, redirect, answer slowly or hugely, hang).

    with WebhookReceiver(["500", "500", "200"]) as hooks:   # fails twice, then recovers
        ... submit with callback_url=hooks.url ...
        calls = hooks.wait_for(3)

With `secret=` (whsec_... or key bytes) it is a receiver that verifies, as users' do, with the
standardwebhooks library: a delivery it refuses is answered 401 (whatever the script says) and
recorded with `verified=False`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# What the receiver may do with one request:
#   "<status>"  answer that status (e.g. "200", "500", "429", "404")
#   "429:<s>"   429 with Retry-After: <s>
#   "redirect"  302 to /elsewhere
#   "slow"      headers at once, then one body byte every 0.3 s for 60 s
#   "hang"      read the request, answer nothing for 60 s
#   "huge"      200 with a 64 MB body


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    behaviour: str
    verified: bool | None = None  # None: the receiver checks no signature

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    script: list[str] = field(default_factory=list)  # one behaviour per request, then "200"
    calls: list[Call] = field(default_factory=list)
    cut_off: list[str] = field(default_factory=list)  # behaviours whose client hung up early
    secret: str | bytes | None = None  # verify each POST with standardwebhooks

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # quiet: the calls are recorded

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = dict(self.headers.items())
                behaviour = receiver._next()
                verified = receiver._verify(headers, body)
                if verified is False:
                    behaviour = "401"
                with receiver._lock:
                    receiver.calls.append(
                        Call(self.path, headers, body, time.time(), behaviour, verified)
                    )
                    receiver._lock.notify_all()
                try:
                    receiver._answer(self, behaviour)
                except (BrokenPipeError, ConnectionResetError):
                    with receiver._lock:
                        receiver.cut_off.append(behaviour)
                        receiver._lock.notify_all()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ocr"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _verify(self, headers: dict[str, str], body: bytes) -> bool | None:
        if self.secret is None:
            return None
        from standardwebhooks import Webhook, WebhookVerificationError  # a dev extra

        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            return False
        return True

    def _next(self) -> str:
        with self._lock:
            return self.script.pop(0) if self.script else "200"

    def _answer(self, handler: BaseHTTPRequestHandler, behaviour: str) -> None:
        out = handler.wfile
        if behaviour == "redirect":
            handler.send_response(302)
            handler.send_header("Location", "/elsewhere")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif behaviour == "slow":
            out.write(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n")
            for _ in range(200):
                out.write(b".")
                out.flush()
                time.sleep(0.3)
        elif behaviour == "hang":
            time.sleep(60)
        elif behaviour == "huge":
            size = 64 << 20
            out.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
            chunk = b"x" * (1 << 16)
            for _ in range(size // len(chunk)):
                out.write(chunk)
        else:
            status, _, retry_after = behaviour.partition(":")
            handler.send_response(int(status))
            if retry_after:
                handler.send_header("Retry-After", retry_after)
            handler.send_header("Content-Length", "2")
            handler.end_headers()
            out.write(b"ok")
        out.flush()

    def wait_for(self, count: int, timeout: float = 30) -> list[Call]:
        """Until `count` calls arrived; all calls so far."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.calls) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.calls)} of {count} webhook calls came")
                self._lock.wait(left)
            return list(self.calls)
