"""Scaling: jobs/s through one Redis (and one bucket) with 1, 2 and 4 worker processes.

    .venv/bin/python -m bench.scaling [--jobs 300] [--workers 1,2,4] [--storage local,s3]
                                      [--redis-url URL]

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
one core / that.

`--storage` names the backends, each run with every worker count: `local` (one shared
TEMP_DIR/OUTPUT_DIR) and `s3` (STORAGE_URL=s3://, a fresh bucket per row on moto's server on
loopback, testkit/s3server.py; the API and each worker get folders of their own, so every
file goes through the bucket). S3 requests per job are counted from moto's access log (one
line per request) over the same window, by HTTP method. Writes the `scaling` section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from bench.procs import load_average
from bench.report import machine_line, markdown_table, update_section
from bench.servicekit import SCRATCH, BenchStack, page_seconds_from_log
from shared.jobs import JobStore
from testkit.s3server import S3Server, running_s3_server
from testkit.soak import render_inputs, soak_text

TERMINAL = ("succeeded", "failed", "canceled")
WORKER_ENV = {"OCR_ENGINE": "tesseract", "OCR_FALLBACK_ENGINES": "", "OMP_THREAD_LIMIT": "1"}
IDLE_SECONDS = 5.0
STORAGES = ("local", "s3")
S3_PREFIX = "bench"


@dataclass
class S3Log:
    """Requests to one bucket in moto's access log (werkzeug's: `"GET /bucket/key HTTP/1.1"`)."""

    path: Path
    bucket: str

    def methods(self) -> Counter[str]:
        """Requests by kind: an object's GET/PUT/HEAD/..., LIST and DeleteObjects (bucket's)."""
        text = self.path.read_text(errors="replace") if self.path.exists() else ""
        pattern = rf'"([A-Z]+) /{re.escape(self.bucket)}(/[^ ?]+)?(\?[^ ]*)? HTTP'
        kinds: Counter[str] = Counter()
        for method, key, query in re.findall(pattern, text):
            if not key and method == "GET" and "uploads" not in query:
                kinds["LIST"] += 1
            elif not key and method == "POST" and "delete" in query:
                kinds["DeleteObjects"] += 1
            else:
                kinds[method if key else f"{method} bucket"] += 1
        return kinds


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
    storage: str = "local"
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
    s3_requests: Counter[str] = field(default_factory=Counter)
    idle_s3_per_second: float = 0.0
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

    @property
    def s3_per_job(self) -> str:
        if self.storage != "s3":
            return "-"
        return f"{sum(self.s3_requests.values()) / self.jobs:.1f}"


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


def _settled(log: S3Log, quiet: float = 1.0, limit: float = 10.0) -> Counter[str]:
    """The bucket's requests once none came for `quiet` s: a worker removes a job's upload
    just after its record says succeeded, and those DELETEs belong to the job."""
    deadline = time.monotonic() + limit
    seen = log.methods()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = log.methods()
        if now == seen:
            break
        seen = now
    return seen


def _own_dirs(base: Path, name: str) -> dict[str, str]:
    return {"TEMP_DIR": str(base / name / "temp"), "OUTPUT_DIR": str(base / name / "output")}


def run_one(
    redis_url: str,
    workers: int,
    inputs: list[bytes],
    clients: int,
    s3: S3Server | None = None,
    s3_log: Path | None = None,
) -> Run:
    """One row. With `s3`: a new bucket, and folders of its own for the API and each worker."""
    run = Run(workers, len(inputs), "s3" if s3 else "local")
    bucket_log: S3Log | None = None
    if s3 is not None:
        assert s3_log is not None
        bucket = s3.new_bucket()
        bucket_log = S3Log(s3_log, bucket)
        stack = BenchStack.create(redis_url, s3.env(bucket, S3_PREFIX))
        stack.extra_env.update(_own_dirs(stack.base, "api"))
    else:
        stack = BenchStack.create(redis_url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, 3600)
    try:
        stack.start_api()
        names = []
        for n in range(workers):
            env = {**WORKER_ENV, **(_own_dirs(stack.base, f"worker-{n}") if s3 else {})}
            names.append(stack.spawn_worker(env)[0])
        for name in names:
            stack.wait_for(lambda n=name: stack.worker_warm(n), timeout=300)
        idle = RedisSnapshot.take(client)
        idle_s3 = bucket_log.methods() if bucket_log else Counter()
        time.sleep(IDLE_SECONDS)
        idle_calls, idle_cpu = RedisSnapshot.take(client).since(idle)
        run.idle_calls_per_second = (sum(idle_calls.values()) - 4) / IDLE_SECONDS  # our INFOs
        run.idle_redis_cpu_per_second = idle_cpu / IDLE_SECONDS
        if bucket_log:
            idle_s3 = bucket_log.methods() - idle_s3
            run.idle_s3_per_second = sum(idle_s3.values()) / IDLE_SECONDS
        run.load = load_average()
        worker_cpu, api_cpu = stack.worker_cpu(), stack.api_cpu()
        before = RedisSnapshot.take(client)
        s3_before = bucket_log.methods() if bucket_log else Counter()
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
        if bucket_log:
            run.s3_requests = _settled(bucket_log) - s3_before
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
    base = {}
    for r in runs:
        base.setdefault(r.storage, r.jobs_per_second or 1.0)
    rows = [
        [
            r.storage,
            r.workers,
            f"{r.succeeded}/{r.jobs}",
            f"{r.wall:.1f}",
            f"{r.jobs_per_second:.1f}",
            f"{r.jobs_per_second / base[r.storage]:.2f}x",
            f"{r.calls_per_job:.1f}",
            f"{r.redis_ms_per_job:.2f}",
            r.s3_per_job,
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
            "storage",
            "workers",
            "succeeded",
            "wall s",
            "jobs/s",
            "vs 1 (same storage)",
            "Redis cmds/job",
            "Redis CPU ms/job",
            "S3 requests/job",
            "worker CPU ms/job",
            "API CPU ms/job",
            "OCR ms/page (median)",
            "idle Redis cmds/s",
            "load avg",
        ],
        rows,
    )
    firsts = {}
    for r in runs:
        firsts.setdefault(r.storage, r)
    names = []
    for r in firsts.values():
        names += [n for n, count in r.calls.most_common(14) if count and n not in names]
    top = [[n, *(f"{r.calls[n] / r.jobs:.2f}" for r in firsts.values())] for n in names]
    heads = [f"per job ({r.storage}, {r.workers} worker)" for r in firsts.values()]
    breakdown = markdown_table(["command", *heads], top)
    text = f"{main}\n\nRedis commands per job, by command:\n\n{breakdown}"
    s3_runs = [r for r in runs if r.storage == "s3"]
    if s3_runs:
        methods = sorted({m for r in s3_runs for m in r.s3_requests})
        s3_rows = [
            [r.workers, *(f"{r.s3_requests[m] / r.jobs:.2f}" for m in methods), r.s3_per_job]
            for r in s3_runs
        ]
        s3_table = markdown_table(["workers", *methods, "total"], s3_rows)
        idle = max(r.idle_s3_per_second for r in s3_runs)
        text += (
            "\n\nS3 requests per job, by kind (moto's access log, the bucket of the row; an "
            "object's GET/PUT/HEAD, a LIST of keys, a DeleteObjects batch; copies count as PUT; "
            "the removal of each upload, just after its job succeeded, included; "
            f"idle, the stack made at most {idle:.1f} requests/s):\n\n{s3_table}"
        )
    cost = statistics.median(r.redis_ms_per_job for r in runs)
    service = statistics.median(1000 * (r.worker_cpu + r.api_cpu) / r.jobs for r in runs)
    ceiling = 1000 / cost if cost else float("inf")
    return (
        f"{text}\n\nRedis CPU per job (median of the rows, idle background taken out): "
        f"{cost:.2f} ms, so one Redis core stops near **{ceiling:.0f} jobs/s**; each worker "
        f"adds only its idle background (the idle column). The API and workers spend "
        f"{service:.0f} ms of CPU per job between them (median of the rows): on this machine's "
        f"{os.cpu_count()} cores they stop near "
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
        "--storage",
        default=",".join(STORAGES),
        help="comma list of backends, each run with every worker count: local, s3 (moto)",
    )
    parser.add_argument(
        "--redis-url",
        default=f"redis://127.0.0.1:6379/{os.environ.get('OCRQ_BENCH_DB', 5)}",
        help="an empty db of its own (flushed at start and end)",
    )
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    storages = [s.strip() for s in args.storage.split(",") if s.strip()]
    if not storages or set(storages) - set(STORAGES):
        parser.error(f"--storage: a comma list of {', '.join(STORAGES)}")
    inputs = render_inputs(args.jobs)
    load = load_average()
    runs = []
    with ExitStack() as servers:
        s3, s3_log = None, None
        if "s3" in storages:
            moto_dir = SCRATCH / f"moto-{time.strftime('%H%M%S')}"
            servers.callback(shutil.rmtree, moto_dir, True)  # after the server stopped
            s3 = servers.enter_context(running_s3_server(moto_dir))
            s3_log = moto_dir / "moto.log"
        for storage in storages:
            for workers in counts:
                print(f"scaling: {storage}, {workers} worker(s), {args.jobs} jobs", file=sys.stderr)
                bucket = s3 if storage == "s3" else None
                runs.append(run_one(args.redis_url, workers, inputs, args.clients, bucket, s3_log))
                print(f"  {runs[-1].jobs_per_second:.1f} jobs/s", file=sys.stderr)
    tables = _tables(runs)
    print(tables)
    problems = [p for r in runs for p in r.problems]
    for problem in problems[:20]:
        print("  ", problem, file=sys.stderr)
    if not args.no_write:
        update_section(
            "scaling",
            "## Scaling: worker processes through one Redis and one bucket "
            "(`python -m bench.scaling`)\n\n"
            f"{machine_line()}; load average {load:.1f} at the start (the machine is shared). "
            f"Per row: one API, N worker processes (`python -m worker`, OCR_ENGINE=tesseract, "
            f"OMP_THREAD_LIMIT=1), {args.jobs} jobs of one 320x133 PNG line each, submitted "
            f"from {args.clients} concurrent clients while the workers run; *wall* from the "
            "first POST to the last job terminal; every result read back as its own text. "
            "CPU is per job over that window (worker: supervisor and worker process; API: its "
            "process). Redis commands are INFO commandstats deltas over the window, the "
            "bench's own status reads subtracted, background included. *storage*: `local` is "
            "one TEMP_DIR/OUTPUT_DIR shared by every process; `s3` is STORAGE_URL=s3:// on "
            "moto's in-memory server on loopback (a new bucket per row; the API and each worker "
            "have folders of their own, so every file goes through the bucket; moto shares the "
            "cores, a real bucket adds its network instead).\n\n" + tables,
        )
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
