"""Part 3, submit path: `POST /jobs` latency with 1 MB PNGs and no worker, clients in a closed
loop (capacity) or paced (an offered load); API CPU per job and API memory."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import sys
import time
from pathlib import Path

import httpx

from bench.pages import noisy_png
from bench.procs import load_average, memory_mb
from bench.service.results import Results, log
from bench.servicekit import BenchStack, multipart


def run_submit(
    redis_url: str,
    requests: dict[int, int],
    paced_seconds: float,
    res: Results,
    paced_rates: tuple[float, ...] = (1.0, 2.0, 3.0),
) -> None:
    res.loads["submit"] = load_average()
    stack = BenchStack.create(redis_url)
    bodies = [
        multipart(noisy_png(1.0, seed=n), f"noise{n}.png", {"language": "en"}) for n in range(4)
    ]
    res.submit_memory["upload_bytes"] = len(bodies[0][0])
    try:
        stack.start_api()
        assert stack.api is not None
        pid = stack.api.pid
        time.sleep(1)
        res.submit_memory["rest_rss"] = memory_mb(pid)[0]
        for clients, total in requests.items():
            stack.flush()
            log(f"submit: {clients} clients, {total} x 1 MB")
            row = asyncio.run(_submit_load(stack, bodies, clients, total, pid))
            res.submit.append(row)
            log(f"  {row['jobs_per_second']:.0f} jobs/s, p99 {row['p99'] * 1000:.0f} ms")
        clients = max(requests)
        for rate in paced_rates:
            stack.flush()
            log(f"submit: {clients} clients, {rate:g} uploads/s each, {paced_seconds} s")
            row = asyncio.run(_submit_load(stack, bodies, clients, 0, pid, paced_seconds, rate))
            res.submit.append(row)
            log(f"  {row['jobs_per_second']:.0f} jobs/s, p99 {row['p99'] * 1000:.0f} ms")
        stack.flush()
        time.sleep(1)
        res.submit_memory["after_rss"], res.submit_memory["peak_rss"] = memory_mb(pid)
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.close()


async def _submit_load(
    stack: BenchStack,
    bodies: list[tuple[bytes, str]],
    clients: int,
    total: int,
    pid: int,
    paced_seconds: float = 0.0,
    rate: float = 1.0,
) -> dict:
    """`total` uploads by `clients` in a closed loop (each sends its next when answered), or
    with `paced_seconds`: each client sends `rate` uploads a second (random phase) for that
    long; an upload answered late is followed at once, without catching up on missed slots.
    """
    latencies: list[float] = []
    peak_rss = 0.0

    async with contextlib.AsyncExitStack() as exits:
        # one AsyncClient (one connection) per client: a single client pooling 50 connections
        # spends as much CPU per upload as the API itself (BENCHMARKS.md, service findings)
        pool = [
            await exits.enter_async_context(httpx.AsyncClient(base_url=stack.url, timeout=120))
            for _ in range(clients)
        ]

        async def post(n: int, k: int) -> float:
            body, content_type = bodies[n % len(bodies)]
            started = time.perf_counter()
            response = await pool[k].post(
                "/jobs", content=body, headers={"content-type": content_type}
            )
            if response.status_code != 202:
                raise RuntimeError(f"POST /jobs: {response.status_code} {response.text[:200]}")
            return time.perf_counter() - started

        # open every connection (and warm the API's code paths) outside the measurement
        await asyncio.gather(*(post(k, k) for k in range(clients)))
        stack.flush()
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM from now on
        todo = iter(range(total))
        done = asyncio.Event()
        sent = itertools.count()

        async def one_client(k: int) -> None:
            for n in todo:
                latencies.append(await post(n, k))

        async def paced_client(k: int) -> None:
            interval = 1.0 / rate
            next_at = time.perf_counter() + random.random() * interval
            while next_at < started + paced_seconds:
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                latencies.append(await post(next(sent), k))
                next_at = max(next_at + interval, time.perf_counter())

        async def sample_rss() -> None:
            nonlocal peak_rss
            while not done.is_set():
                peak_rss = max(peak_rss, memory_mb(pid)[0])
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample_rss())
        api_cpu, client_cpu = stack.api_cpu(), time.process_time()
        started = time.perf_counter()
        client_task = paced_client if paced_seconds else one_client
        await asyncio.gather(*(client_task(k) for k in range(clients)))
        wall = time.perf_counter() - started
        api_cpu, client_cpu = stack.api_cpu() - api_cpu, time.process_time() - client_cpu
        done.set()
        await sampler
    latencies.sort()
    return {
        "clients": clients,
        "mode": f"{rate:g}/s each" if paced_seconds else "closed loop",
        "offered": clients * rate if paced_seconds else None,
        "requests": len(latencies),
        "jobs_per_second": len(latencies) / wall,
        "p50": _percentile(latencies, 50),
        "p99": _percentile(latencies, 99),
        "max": latencies[-1],
        "api_cpu_ms": api_cpu / len(latencies) * 1000,
        "client_cpu_ms": client_cpu / len(latencies) * 1000,
        "peak_rss": max(peak_rss, memory_mb(pid)[1]),
    }


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]
