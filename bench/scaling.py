"""Scaling: jobs/s through one Redis with 1, 2 and 4 worker processes, and Redis's cost per job.

    .venv/bin/python -m bench.scaling [--jobs 300] [--workers 1,2,4] [--redis-url URL]

For each worker count: one API (`python -m api`) and N supervised workers (`python -m worker`)
on an empty Redis db (flushed at start and end: give it a db of its own). The engine is the
cheapest real one: tesseract (OMP_THREAD_LIMIT=1) on a 320x133 PNG of one line, about 20-40 ms
of OCR, so the service's own costs show; no stand-in engine (the paddleocr-vl engine needs the
paddleocr package, absent from this venv). All JOBS are submitted at once from 8 concurrent
clients while the workers run; the bench polls each job's status straight from the job store
(one HGET, its own calls subtracted) until every job is terminal, then checks each result reads
its own text.

Redis operations per job are INFO commandstats deltas over that window divided by JOBS; they
include the background every process keeps up (heartbeats, orphan sweeps, BRPOP timeouts),
measured on its own while idle. Redis CPU per job (INFO cpu) gives where one Redis stops:
one core / that. Writes the `scaling` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import redis

from bench.procs import load_average
from bench.report import machine_line, markdown_table, update_section
from bench.servicekit import BenchStack, page_seconds_from_log
from shared.jobs import JobStore
from testkit.soak import render_inputs, soak_text

TERMINAL = ("succeeded", "failed", "canceled")
WORKER_ENV = {"OCR_ENGINE": "tesseract", "OCR_FALLBACK_ENGINES": "", "OMP_THREAD_LIMIT": "1"}
IDLE_SECONDS = 5.0


@dataclass
class RedisSnapshot:
    calls: Counter[str]
    cpu_seconds: float

    @classmethod
    def take(cls, client: redis.Redis) -> RedisSnapshot:
        stats = client.info("commandstats")
        calls: Counter[str] = Counter()
        for name, value in stats.items():
            calls[name.removeprefix("cmdstat_")] = int(value["calls"])
        cpu = client.info("cpu")
        return cls(calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]))

    def since(self, earlier: RedisSnapshot) -> tuple[Counter[str], float]:
        calls = Counter({k: v - earlier.calls.get(k, 0) for k, v in self.calls.items()})
        return +calls, self.cpu_seconds - earlier.cpu_seconds


@dataclass
class Run:
    workers: int
    jobs: int
    wall: float = 0.0
    submit_wall: float = 0.0
    succeeded: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    redis_cpu: float = 0.0
    idle_calls_per_second: float = 0.0
    idle_redis_cpu_per_second: float = 0.0
    load: float = 0.0
    worker_cpu: float = 0.0
    api_cpu: float = 0.0
    page_seconds: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.wall if self.wall else 0.0

    @property
    def redis_ms_per_job(self) -> float:
        """Redis CPU per job beyond its idle background (serverCron, heartbeats, BRPOPs)."""
        busy = self.redis_cpu - self.idle_redis_cpu_per_second * self.wall
        return 1000 * max(busy, 0.0) / self.jobs

    @property
    def calls_per_job(self) -> float:
        return sum(self.calls.values()) / self.jobs


async def _submit(url: str, inputs: list[bytes], clients: int) -> list[str]:
    ids: list[str | None] = [None] * len(inputs)
    numbers = iter(range(len(inputs)))

    async def client_task(client: httpx.AsyncClient) -> None:
        for n in numbers:
            response = await client.post("/jobs", files={"file": (f"s{n}.png", inputs[n])})
            response.raise_for_status()
            ids[n] = response.json()["job_id"]

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(client_task(client) for _ in range(clients)))
    return [i for i in ids if i is not None]


def _wait_terminal(store: JobStore, ids: list[str], deadline: float) -> tuple[dict, int]:
    """Each job's final status, polled 2x a second; (statuses, HGETs made)."""
    final: dict[str, str] = {}
    polls = 0
    while len(final) < len(ids) and time.monotonic() < deadline:
        for job_id in ids:
            if job_id in final:
                continue
            status = store.status(job_id)
            polls += 1
            if status is not None and status.value in TERMINAL:
                final[job_id] = status.value
        time.sleep(0.5)
    return final, polls


def run_one(redis_url: str, workers: int, inputs: list[bytes], clients: int) -> Run:
    run = Run(workers, len(inputs))
    stack = BenchStack.create(redis_url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, 3600)
    try:
        stack.start_api()
        names = stack.start_workers(workers, WORKER_ENV)
        idle = RedisSnapshot.take(client)
        time.sleep(IDLE_SECONDS)
        idle_calls, idle_cpu = RedisSnapshot.take(client).since(idle)
        run.idle_calls_per_second = (sum(idle_calls.values()) - 4) / IDLE_SECONDS  # our INFOs
        run.idle_redis_cpu_per_second = idle_cpu / IDLE_SECONDS
        run.load = load_average()
        worker_cpu, api_cpu = stack.worker_cpu(), stack.api_cpu()
        before = RedisSnapshot.take(client)
        started = time.monotonic()
        ids = asyncio.run(_submit(stack.url, inputs, clients))
        run.submit_wall = time.monotonic() - started
        final, polls = _wait_terminal(store, ids, started + 900)
        run.wall = time.monotonic() - started
        calls, run.redis_cpu = RedisSnapshot.take(client).since(before)
        calls["hget"] -= polls  # the bench's own
        calls["info"] -= 4
        run.calls = +calls
        run.worker_cpu = stack.worker_cpu() - worker_cpu
        run.api_cpu = stack.api_cpu() - api_cpu
        for name in names:
            run.page_seconds += page_seconds_from_log(stack.worker_log(name))
        with httpx.Client(base_url=stack.url, timeout=30) as api:
            for n, job_id in enumerate(ids):
                if final.get(job_id) != "succeeded":
                    run.problems.append(f"job {job_id}: {final.get(job_id, 'not terminal')}")
                    continue
                text = api.get(f"/jobs/{job_id}/result", params={"format": "text"}).text
                if " ".join(text.split()) != soak_text(n):
                    run.problems.append(f"job {job_id} reads {text.strip()!r}")
                else:
                    run.succeeded += 1
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        store.close()
        stack.close()
    return run


def _tables(runs: list[Run]) -> str:
    base = runs[0].jobs_per_second or 1.0
    rows = [
        [
            r.workers,
            f"{r.succeeded}/{r.jobs}",
            f"{r.wall:.1f}",
            f"{r.jobs_per_second:.1f}",
            f"{r.jobs_per_second / base:.2f}x",
            f"{r.calls_per_job:.1f}",
            f"{r.redis_ms_per_job:.2f}",
            f"{1000 * r.worker_cpu / r.jobs:.0f}",
            f"{1000 * r.api_cpu / r.jobs:.0f}",
            f"{1000 * statistics.median(r.page_seconds):.0f}" if r.page_seconds else "-",
            f"{r.idle_calls_per_second:.0f}",
            f"{r.load:.1f}",
        ]
        for r in runs
    ]
    main = markdown_table(
        [
            "workers",
            "succeeded",
            "wall s",
            "jobs/s",
            "vs 1",
            "Redis cmds/job",
            "Redis CPU ms/job",
            "worker CPU ms/job",
            "API CPU ms/job",
            "OCR ms/page (median)",
            "idle Redis cmds/s",
            "load avg",
        ],
        rows,
    )
    first = runs[0]
    top = [
        [name, f"{count / first.jobs:.2f}"] for name, count in first.calls.most_common(14) if count
    ]
    breakdown = markdown_table(["command", f"per job ({first.workers} worker)"], top)
    cost = statistics.median(r.redis_ms_per_job for r in runs)
    service = statistics.median(1000 * (r.worker_cpu + r.api_cpu) / r.jobs for r in runs)
    ceiling = 1000 / cost if cost else float("inf")
    return (
        f"{main}\n\nRedis commands per job, by command ({first.workers} worker):\n\n{breakdown}"
        f"\n\nRedis CPU per job (median of the rows, idle background taken out): {cost:.2f} ms, "
        f"so one Redis core stops near **{ceiling:.0f} jobs/s**; each worker adds only its "
        f"idle background (the idle column). The API and workers spend {service:.0f} ms of CPU "
        f"per job between them: on this machine's {os.cpu_count()} cores they stop near "
        f"{(os.cpu_count() or 1) * 1000 / (service + cost):.0f} jobs/s when nothing else runs."
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaling", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--workers", default="1,2,4", help="comma list of worker counts")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--redis-url",
        default=f"redis://127.0.0.1:6379/{os.environ.get('OCRQ_BENCH_DB', 5)}",
        help="an empty db of its own (flushed at start and end)",
    )
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    inputs = render_inputs(args.jobs)
    load = load_average()
    runs = []
    for workers in counts:
        print(f"scaling: {workers} worker(s), {args.jobs} jobs", file=sys.stderr)
        runs.append(run_one(args.redis_url, workers, inputs, args.clients))
        print(f"  {runs[-1].jobs_per_second:.1f} jobs/s", file=sys.stderr)
    tables = _tables(runs)
    print(tables)
    problems = [p for r in runs for p in r.problems]
    for problem in problems[:20]:
        print("  ", problem, file=sys.stderr)
    if not args.no_write:
        update_section(
            "scaling",
            "## Scaling: worker processes through one Redis (`python -m bench.scaling`)\n\n"
            f"{machine_line()}; load average {load:.1f} at the start (the machine is shared). "
            f"Per row: one API, N worker processes (`python -m worker`, OCR_ENGINE=tesseract, "
            f"OMP_THREAD_LIMIT=1), {args.jobs} jobs of one 320x133 PNG line each, submitted "
            f"from {args.clients} concurrent clients while the workers run; *wall* from the "
            "first POST to the last job terminal; every result read back as its own text. "
            "CPU is per job over that window (worker: supervisor and worker process; API: its "
            "process). Redis commands are INFO commandstats deltas over the window, the "
            "bench's own status reads subtracted, background included.\n\n" + tables,
        )
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
