"""Thousands of status streams opening at once: does the API still answer /health meanwhile,
and what does each open stream cost it in memory?

    .venv/bin/python -m bench.stream_opening [--streams 1000,3000] [--jobs 100]
        [--label after] [--api-root DIR]

For each count, a fresh `python -m api` (the code of --api-root, default this checkout; no
worker, so every job stays queued) on Redis db OCRQ_BENCH_DB (12) of OCRQ_TEST_REDIS_URL,
emptied first and at the end. `--jobs` jobs are queued, then that many
`GET /jobs/{id}/events` streams are opened all at once from raw asyncio sockets in this
process, while a separate process asks `GET /health` (a new connection each time, as a load
balancer's probe does) every 100 ms while they open (until each had its first message) and
again while they all close at once. RSS per stream
is the API's RSS with them all open (after 3 s of quiet) less its RSS before, over the count.
Each run's figures go to var/bench/stream-opening-<label>.json; the `stream-opening` section
of BENCHMARKS.md shows every label (run it with --label before on the old code to compare).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import socket
import time
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import redis

from bench.procs import cpu_seconds, memory_mb
from bench.report import labelled_runs, machine_line, markdown_table, update_section
from testkit.pages import encode, render_page
from testkit.stack import ROOT, Stack

SCRATCH = ROOT / "var" / "bench"
LABELS = ("before", "after")
PROBE_EVERY = 0.1
PROBE_TIMEOUT = 30.0
SETTLE = 3.0


def raise_file_limit() -> None:
    """Each stream is a socket here and in the API (which inherits this limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def probe_health(port: int, results: Connection) -> None:
    """In its own process (the opener's event loop must not delay it): `GET /health` on a new
    connection every PROBE_EVERY s until told to stop; sends back each probe's seconds to
    connect and to the whole answer (PROBE_TIMEOUT for none)."""
    request = b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    probes: list[tuple[float, float, float]] = []
    while not results.poll(PROBE_EVERY):
        started = time.monotonic()
        connected = answered = PROBE_TIMEOUT
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as sock:
                connected = time.monotonic() - started
                sock.sendall(request)
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
            if answer.startswith(b"HTTP/1.1 200"):
                answered = time.monotonic() - started
        except OSError:
            pass
        probes.append((started, connected, answered))
    results.send(probes)


async def open_stream(port: int, job_id: str, opened: asyncio.Event, hold: asyncio.Event) -> None:
    """One stream: its first message sets `opened`; it is read until `hold` is set."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        while line := await reader.readline():
            if line.startswith(b"data: "):
                opened.set()
                break
        else:
            raise ConnectionError(f"the stream of {job_id} ended before its first message")
        reading = asyncio.ensure_future(reader.read(65536))
        await hold.wait()
        reading.cancel()
    finally:
        writer.close()


async def open_all(port: int, jobs: list[str], count: int, pid: int, idle_rss: float) -> dict:
    hold = asyncio.Event()
    flags = [asyncio.Event() for _ in range(count)]
    started, cpu = time.monotonic(), cpu_seconds(pid)
    tasks = [
        asyncio.create_task(open_stream(port, jobs[n % len(jobs)], flags[n], hold))
        for n in range(count)
    ]
    waiting = asyncio.ensure_future(asyncio.gather(*(f.wait() for f in flags)))
    # a stream's task ends only once `hold` is set: one that ends sooner failed
    await asyncio.wait([waiting, *tasks], timeout=300, return_when=asyncio.FIRST_COMPLETED)
    if not waiting.done():
        hold.set()
        failed = [t.exception() for t in tasks if t.done()]
        raise RuntimeError(f"{len(failed)} streams failed ({failed[:1]}), or 300 s passed")
    opening, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu
    await asyncio.sleep(SETTLE)
    rss = memory_mb(pid)[0]
    closing = time.monotonic()
    hold.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(SETTLE)  # the API's side of the closes
    return {
        "started": started,
        "closing": closing,
        "open_seconds": opening,
        "cpu_ms_per_stream": cpu * 1000 / count,
        "rss": rss,
        "rss_per_stream_kb": (rss - idle_rss) * 1024 / count,
    }


def run_one(count: int, jobs_wanted: int, api_root: Path, redis_url: str) -> dict:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    base = SCRATCH / f"stream-opening-{count}-{time.strftime('%H%M%S')}"
    base.mkdir()
    stack = Stack(base=base, redis_url=redis_url, root=api_root)
    try:
        stack.start_api()
        assert stack.api is not None
        png = encode(render_page([("Waiting", 30)], width=300))
        with httpx.Client(base_url=stack.url, timeout=30) as api:
            jobs = [
                api.post("/jobs", files={"file": (f"j{n}.png", png)}).json()["job_id"]
                for n in range(jobs_wanted)
            ]
        time.sleep(SETTLE)
        idle_rss = memory_mb(stack.api.pid)[0]
        ours, theirs = multiprocessing.Pipe()
        prober = multiprocessing.get_context("spawn").Process(
            target=probe_health, args=(stack.port, theirs), daemon=True
        )
        prober.start()
        time.sleep(1)  # the prober's first answers, before any stream
        try:
            result = asyncio.run(open_all(stack.port, jobs, count, stack.api.pid, idle_rss))
        finally:
            ours.send("stop")
            probes = ours.recv()
            prober.join()
    finally:
        stack.stop()
        client.flushdb()
    started, opened = result["started"], result["started"] + result["open_seconds"]
    opening = sorted(answered for sent, _, answered in probes if started <= sent <= opened)
    closing = [answered for sent, _, answered in probes if sent >= result["closing"]]
    return {
        "streams": count,
        "idle_rss": idle_rss,
        **result,
        "probes": len(opening),
        "health_p50": opening[len(opening) // 2],
        "health_max": opening[-1],
        "health_over_1s": sum(1 for x in opening if x > 1.0),
        "connect_max": max(connected for sent, connected, _ in probes if started <= sent <= opened),
        "closing_health_max": max(closing),
    }


HEADING = "## Status streams opening at once (`python -m bench.stream_opening`)"


def render(results: dict[str, dict]) -> str:
    parts = [
        HEADING,
        "",
        "One API process, no worker, queued jobs; N `GET /jobs/{id}/events` streams opened at "
        "once from raw sockets on loopback while another process asks `GET /health` on a new "
        "connection every 100 ms while they open (until each had its first message), and "
        "again while they all close at once. *RSS per stream*: "
        f"the API's RSS with all N open ({SETTLE:g} s after the last opened) less its RSS "
        "before, over N. `before`: the code before issue 23's fixes (`--label before "
        "--api-root` of that checkout); `after`: with them.",
    ]
    for label, run in results.items():  # in LABELS' order
        parts += ["", f"**{label}** ({run['machine']}; load average {run['load']:.1f}):", ""]
        parts.append(
            markdown_table(
                [
                    "streams",
                    "all open after s",
                    "API CPU ms per stream",
                    "/health probes",
                    "p50 s",
                    "max s",
                    "over 1 s",
                    "of which connecting, max s",
                    "/health max s as they close",
                    "RSS before MB",
                    "RSS open MB",
                    "KB per stream",
                ],
                [
                    [
                        r["streams"],
                        f"{r['open_seconds']:.1f}",
                        f"{r.get('cpu_ms_per_stream', float('nan')):.2f}",
                        r["probes"],
                        f"{r['health_p50']:.3f}",
                        f"{r['health_max']:.2f}",
                        r["health_over_1s"],
                        f"{r.get('connect_max', float('nan')):.2f}",
                        f"{r.get('closing_health_max', float('nan')):.2f}",
                        f"{r['idle_rss']:.0f}",
                        f"{r['rss']:.0f}",
                        f"{r['rss_per_stream_kb']:.1f}",
                    ]
                    for r in run["rows"]
                ],
            )
        )
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1000,3000", help="counts, one API run each")
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--label", default="after", choices=LABELS)
    parser.add_argument("--api-root", type=Path, default=ROOT, help="checkout whose API runs")
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args()
    raise_file_limit()
    server = os.environ.get("OCRQ_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    redis_url = f"{server}/{os.environ.get('OCRQ_BENCH_DB', '12')}"
    rows = []
    for count in (int(c) for c in args.streams.split(",")):
        rows.append(run_one(count, args.jobs, args.api_root.resolve(), redis_url))
        print(rows[-1], flush=True)
    run = {"machine": machine_line(), "load": os.getloadavg()[0], "rows": rows}
    if args.no_write:
        print(render({args.label: run}))
        return
    text = render(labelled_runs("stream-opening", args.label, run, LABELS))
    print(text)
    update_section("stream-opening", text)


if __name__ == "__main__":
    main()
