"""What waiting clients cost one API process: open status streams, ?wait long-polls and
POST /ocr requests, all on the API's one event hub.

    .venv/bin/python -m bench.streams [--jobs 200] [--streams 1000] [--waits 200] [--ocr 100]

Starts `python -m api` alone (no worker: every job stays queued) on Redis db OCRQ_BENCH_DB
(12) of OCRQ_TEST_REDIS_URL, emptied first and at the end. Queues `--jobs` jobs, then opens
`--streams` GET /jobs/{id}/events streams spread over them, `--waits` GET /jobs/{id}?wait=60
and `--ocr` POST /ocr requests (SYNC_WAIT_SECONDS=300), from raw asyncio sockets in this
process. It reads the API's RSS, threads, CPU while idle and Redis' connected clients before
and with them open, then cancels jobs one by one and times each event's fan-out: from the
job's `finished_at` (the cancel's write in Redis) to each stream's and waiter's receipt.
Writes the `streams` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import redis

from bench.procs import cpu_seconds, memory_mb
from bench.report import machine_line, markdown_table, update_section
from bench.servicekit import multipart
from testkit.pages import encode, render_page
from testkit.stack import Stack

IDLE_SECONDS = 10.0


class Waiter:
    """One open request on a raw socket; `lines` are what came of its body."""

    def __init__(self, kind: str, job_id: str | None) -> None:
        self.kind = kind
        self.job_id = job_id
        self.first = asyncio.Event()  # the first message / the head of the answer came
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, port: int, request: bytes) -> None:
        reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.write(request)
        await self.writer.drain()
        length = None
        while (line := await reader.readline()) not in (b"\r\n", b""):  # the head
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if length is not None:  # one JSON answer (?wait, /ocr)
            self.first.set()
            self._seen(await reader.readexactly(length))
            return
        while line := await reader.readline():  # the stream, chunk by chunk
            if line.startswith(b"data: "):
                self.first.set()
                self._seen(line[6:])

    def _seen(self, body: bytes) -> None:
        job = json.loads(body)
        if job.get("status") == "canceled" and not self.done.done():
            finished = datetime.fromisoformat(job["finished_at"]).timestamp()
            self.done.set_result(time.time() - finished)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.task is not None:
            self.task.cancel()


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def ocr_request(png: bytes, n: int) -> bytes:
    body, content_type = multipart(png, f"ocr{n}.png", {})
    head = (
        f"POST /ocr HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def snapshot(pid: int, client: redis.Redis) -> dict[str, float]:
    """RSS, threads, Redis clients, and the API's CPU share over IDLE_SECONDS of quiet."""
    before = cpu_seconds(pid)
    time.sleep(IDLE_SECONDS)
    return {
        "rss": memory_mb(pid)[0],
        "threads": threads(pid),
        "redis_clients": int(client.info("clients")["connected_clients"]),
        "cpu": (cpu_seconds(pid) - before) / IDLE_SECONDS * 100,
    }


async def open_all(port: int, waiters: list[tuple[Waiter, bytes]]) -> float:
    started = time.monotonic()
    for waiter, request in waiters:
        waiter.task = asyncio.create_task(waiter.run(port, request))
    await asyncio.wait_for(asyncio.gather(*(w.first.wait() for w, _ in waiters)), 300)
    return time.monotonic() - started


async def measure(args: argparse.Namespace, stack: Stack, client: redis.Redis) -> dict:
    assert stack.api is not None
    pid, port = stack.api.pid, stack.port
    png = encode(render_page([("Waiting", 30)], width=300))
    with httpx.Client(base_url=stack.url, timeout=30) as api:
        jobs = [
            api.post("/jobs", files={"file": (f"j{n}.png", png)}).json()["job_id"]
            for n in range(args.jobs)
        ]
        idle = await asyncio.to_thread(snapshot, pid, client)

        streams = [
            (Waiter("stream", jobs[n % len(jobs)]), get(f"/jobs/{jobs[n % len(jobs)]}/events"))
            for n in range(args.streams)
        ]
        open_streams = await open_all(port, streams)
        waits = [
            (Waiter("wait", jobs[n % len(jobs)]), get(f"/jobs/{jobs[n % len(jobs)]}?wait=60"))
            for n in range(args.waits)
        ]
        ocrs = [(Waiter("ocr", None), ocr_request(png, n)) for n in range(args.ocr)]
        for waiter, request in [*waits, *ocrs]:
            waiter.task = asyncio.create_task(waiter.run(port, request))
        await asyncio.sleep(3)  # the uploads in, every request waiting
        assert not any(w.first.is_set() for w, _ in [*waits, *ocrs])  # all still waiting
        held = await asyncio.to_thread(snapshot, pid, client)

        # fan-out: cancel jobs one at a time; every stream and waiter on it gets the end
        canceled = jobs[: args.cancel]
        latencies: list[float] = []
        for job_id in canceled:
            watching = [w for w, _ in [*streams, *waits] if w.job_id == job_id]
            assert api.delete(f"/jobs/{job_id}").status_code == 200
            latencies += await asyncio.wait_for(asyncio.gather(*(w.done for w in watching)), 30)
        for waiter, _ in [*streams, *waits, *ocrs]:
            waiter.close()
    return {
        "idle": idle,
        "held": held,
        "open_seconds": open_streams,
        "latencies": sorted(latencies),
        "fanout": len(latencies) / max(len(canceled), 1),
    }


def report(args: argparse.Namespace, result: dict) -> str:
    idle, held = result["idle"], result["held"]
    lat = result["latencies"]
    held_requests = args.streams + args.waits + args.ocr

    def ms(q: float) -> str:
        return f"{lat[min(len(lat) - 1, int(q * len(lat)))] * 1000:.1f}"

    rows = [
        ["RSS of the API process (MB)", f"{idle['rss']:.1f}", f"{held['rss']:.1f}"],
        ["threads of the API process", idle["threads"], held["threads"]],
        ["Redis connected clients (whole server)", idle["redis_clients"], held["redis_clients"]],
        [
            f"API CPU while idle ({IDLE_SECONDS:g} s, % of one core)",
            f"{idle['cpu']:.1f}",
            f"{held['cpu']:.1f}",
        ],
    ]
    per = (held["rss"] - idle["rss"]) * 1024 / held_requests
    return f"""
## Waiting clients: status streams, ?wait and POST /ocr (`python -m bench.streams`)

{machine_line()}; load average {os.getloadavg()[0]:.1f} (a shared machine).
One API process, no worker: {args.jobs} queued jobs; then {args.streams} open
`GET /jobs/{{id}}/events` streams ({args.streams // args.jobs} per job), {args.waits}
`GET /jobs/{{id}}?wait=60` and {args.ocr} `POST /ocr` (SYNC_WAIT_SECONDS=300) waiting at once,
from raw sockets in the benchmark's process.

{markdown_table(["", f"{args.jobs} queued jobs", f"+ {held_requests} waiting requests"], rows)}

- {held_requests} waiting requests cost about {per:.1f} KB of RSS
  each, and neither a thread nor a Redis connection of its own: each is an asyncio queue on
  the API's one event hub, whose single XREAD BLOCK connection reads every job's events. The
  threads and connections that came with them belong to the API's pools (the thread pool of 40
  for the short Redis reads as a request starts and as its job ends; the Redis and broker
  connection pools behind those reads and the /ocr submissions): bounded by the pools, however
  many requests wait.
- All {args.streams} streams had their first message {result["open_seconds"]:.1f} s after the
  first one opened.
- Fan-out: {args.cancel} jobs canceled one by one, each event reaching {result["fanout"]:.0f}
  waiters (its streams and long-polls): from the job's `finished_at` (written in Redis) to
  receipt, p50 {ms(0.5)} ms, p95 {ms(0.95)} ms, max {lat[-1] * 1000:.1f} ms ({len(lat)}
  deliveries).
"""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--waits", type=int, default=200)
    parser.add_argument("--ocr", type=int, default=100)
    parser.add_argument("--cancel", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args()
    server = os.environ.get("OCRQ_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    redis_url = f"{server}/{os.environ.get('OCRQ_BENCH_DB', '12')}"
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    base = Path(tempfile.mkdtemp(prefix="ocrq-bench-streams-"))
    stack = Stack(base=base, redis_url=redis_url, extra_env={"SYNC_WAIT_SECONDS": "300"})
    try:
        stack.start_api()
        result = asyncio.run(measure(args, stack, client))
    finally:
        stack.stop()
        client.flushdb()
    text = report(args, result)
    print(text)
    if not args.no_write:
        update_section("streams", text)


if __name__ == "__main__":
    main()
