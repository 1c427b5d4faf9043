"""Thousands of status streams opening at once leave the API able to answer /health.

Before, 3,000 streams opening together kept /health waiting 4-8 s: uvicorn started every
request at once (one turn of the event loop held thousands of first steps), forty threads
read the jobs' histories at once, and the collector's full passes walked the app's objects
too. The figures are measured by `python -m bench.stream_opening`; here only a generous bound.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from testkit.pages import encode, render_page
from testkit.stack import Stack

pytestmark = pytest.mark.integration

STREAMS = 3000
HEALTH_BOUND = 3.0  # seconds; measured 0.2-0.7 on a loaded 2-core box after, 5-8 before


def _enough_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2 * STREAMS + 1000:
        pytest.skip(f"{STREAMS} streams need {2 * STREAMS + 1000} files; the limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the API inherits it


class HealthProbe(threading.Thread):
    """GET /health on a new connection every 100 ms; the slowest answer, in seconds."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.slowest, self.count = port, 0.0, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.count += 1


async def _open_streams(port: int, jobs: list[str]) -> list[asyncio.StreamWriter]:
    async def first_message(job_id: str) -> asyncio.StreamWriter:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        while not (line := await reader.readline()).startswith(b"data: "):
            assert line, "the stream ended before its first message"
        return writer

    return await asyncio.wait_for(
        asyncio.gather(*(first_message(jobs[n % len(jobs)]) for n in range(STREAMS))), 240
    )


def test_health_answers_while_3000_streams_open(side_stack: Callable[..., Stack]) -> None:
    _enough_files()
    stack = side_stack()
    stack.start_api()
    png = encode(render_page([("Waiting", 30)], width=300))
    with httpx.Client(base_url=stack.url, timeout=30) as api:
        jobs = [
            api.post("/jobs", files={"file": (f"j{n}.png", png)}).json()["job_id"]
            for n in range(20)
        ]
    probe = HealthProbe(stack.port)
    probe.start()

    async def flood() -> None:
        writers = await _open_streams(stack.port, jobs)
        for writer in writers:
            writer.close()

    try:
        asyncio.run(flood())
    finally:
        probe.stop.set()
        probe.join(60)
    assert probe.count >= 5, "the streams opened before /health was asked"
    assert probe.slowest < HEALTH_BOUND, f"/health took {probe.slowest:.1f} s"
