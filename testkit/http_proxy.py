"""A loopback HTTP/1.1 proxy in front of the API that counts requests and can misbehave.

It reads each request's head (so it counts and records every request, keep-alive or not) and
passes bytes through otherwise. For tests and benchmarks of how clients wait on jobs:
`cut_events` drops that many `GET .../events` connections inside their N-th message (a proxy
or restart cutting a stream mid-way); `hide_events` answers them 404 `not_found` itself, as an
older server without the route does.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter
from dataclasses import dataclass, field

from testkit.stack import free_port

_JOB_PATH = re.compile(r"^/jobs/[^/?]+")
_NOT_FOUND_BODY = b'{"error": {"code": "not_found", "message": "no such path"}}'
NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(_NOT_FOUND_BODY)}\r\n\r\n".encode()
    + _NOT_FOUND_BODY
)


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    path: str  # with the query
    headers: dict[str, str]  # names lower-case

    @property
    def kind(self) -> str:
        """`GET /jobs/{id}/events` and the like: the path with the job id taken out."""
        path = _JOB_PATH.sub("/jobs/{id}", self.path.split("?", 1)[0])
        return f"{self.method} {path}"


@dataclass
class CountingProxy:
    target_port: int
    cut_events: int = 0  # how many event streams to cut
    cut_in_message: int = 2  # ... inside which of their messages
    hide_events: bool = False
    port: int = field(default_factory=free_port)
    requests: list[ProxiedRequest] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counts(self) -> Counter[str]:
        return Counter(r.kind for r in list(self.requests))

    def __enter__(self) -> CountingProxy:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError("the proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.run(self._main(ready))  # which cancels the connections left at the end

    async def _main(self, ready: threading.Event) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        ready.set()
        await self._stop.wait()
        server.close()  # not wait_closed(): from 3.12 it waits for open streams to end

    async def _connection(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        cut = asyncio.Event()  # set when the request on the way is a stream to cut
        pumps = [
            asyncio.ensure_future(self._requests(client_r, up_w, client_w, cut)),
            asyncio.ensure_future(self._responses(up_r, client_w, cut)),
        ]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        for writer in (client_w, up_w):
            writer.close()

    async def _requests(
        self,
        reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        cut: asyncio.Event,
    ) -> None:
        """Client to API: each head parsed and recorded, then its Content-Length of body."""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            request = ProxiedRequest(method, path, headers)
            self.requests.append(request)
            if request.kind.endswith("/events") and self.hide_events:
                client.write(NOT_FOUND)
                await client.drain()
                continue
            if request.kind.endswith("/events") and self.cut_events > 0:
                self.cut_events -= 1
                cut.set()
            upstream.write(head)
            length = int(headers.get("content-length", "0"))
            while length > 0:
                chunk = await reader.read(min(length, 1 << 16))
                if not chunk:
                    return
                upstream.write(chunk)
                length -= len(chunk)
            await upstream.drain()

    async def _responses(
        self, reader: asyncio.StreamReader, client: asyncio.StreamWriter, cut: asyncio.Event
    ) -> None:
        """API to client, passed through; a stream to cut ends inside its N-th message."""
        seen = b""
        while chunk := await reader.read(1 << 16):
            if cut.is_set():
                seen += chunk
                at = -1
                for _ in range(self.cut_in_message):
                    at = seen.find(b"data:", at + 1)
                    if at < 0:
                        break
                if at >= 0:
                    client.write(chunk[: len(chunk) - (len(seen) - at - 8)])
                    await client.drain()
                    return  # the connection is dropped mid-message
            client.write(chunk)
            await client.drain()
