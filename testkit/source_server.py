"""A document server on loopback for `source_url` tests and benchmarks (http.server in a thread).

Paths:
- `/files/<name>`: the bytes registered under `name`, with a Content-Length;
- `/chunked/<name>`: the same, chunked (no Content-Length);
- `/endless`: a PNG signature, then zeros until the client hangs up (no Content-Length, the
  end of the body would be the connection's close);
- `/claims/<n>`: a Content-Length of `n`, and a few bytes sent before the connection closes;
- `/slow/<name>`: the bytes one small piece every `slow_pause` seconds;
- `/redirect?to=<url>`: 302 to `url`; `/redirects/<n>/<name>`: n hops, then `/files/<name>`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class SourceServer:
    host: str
    port: int
    documents: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)  # every path asked for, in order
    slow_pause: float = 0.5

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def add(self, name: str, data: bytes) -> str:
        """Serve `data` at /files/<name>; its URL."""
        self.documents[name] = data
        return self.url(f"files/{name}")


def _handler(server: SourceServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # quiet: tests read `requests`

        def do_GET(self) -> None:
            server.requests.append(self.path)
            parts = urlsplit(self.path)
            kind, _, rest = parts.path.lstrip("/").partition("/")
            try:
                if kind == "files":
                    self._send(server.documents[rest])
                elif kind == "chunked":
                    self._chunked(server.documents[rest])
                elif kind == "endless":
                    self._endless()
                elif kind == "claims":
                    self._claims(int(rest))
                elif kind == "slow":
                    self._slow(server.documents[rest])
                elif kind == "redirect":
                    self._redirect(parse_qs(parts.query)["to"][0])
                elif kind == "redirects":
                    hops, _, name = rest.partition("/")
                    left = int(hops)
                    target = f"/redirects/{left - 1}/{name}" if left > 1 else f"/files/{name}"
                    self._redirect(target)
                else:
                    self.send_error(404)
            except KeyError:
                self.send_error(404)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client cut us off: what the tests want of it

        def _send(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _chunked(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(data), 64 << 10):
                piece = data[start : start + (64 << 10)]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        def _endless(self) -> None:
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.wfile.write(PNG_SIGNATURE)
            block = bytes(64 << 10)
            while True:
                self.wfile.write(block)

        def _claims(self, declared: int) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(declared))
            self.end_headers()
            self.close_connection = True
            self.wfile.write(PNG_SIGNATURE + bytes(64))

        def _slow(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for start in range(0, len(data), 16):
                self.wfile.write(data[start : start + 16])
                self.wfile.flush()
                time.sleep(server.slow_pause)

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def serving_sources(host: str = "127.0.0.1") -> Iterator[SourceServer]:
    """A SourceServer on `host` on a free port for the block."""
    state = SourceServer(host, 0)
    httpd = ThreadingHTTPServer((host, 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, name="source-server", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
