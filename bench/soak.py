"""Soak: thousands of jobs from many concurrent clients; none lost, none run twice.

    .venv/bin/python -m bench.soak [--jobs 2000] [--clients 100] [--workers 2] [--redis-db 6]

Starts one API and WORKERS worker processes (as tests/integration/stack.py does) on their own
Redis database and a scratch folder. The db must be empty (or pass --flush) and is flushed at
the end: on a shared Redis, two runs on one db take each other's jobs and flush each other.
Renders one small PNG per job ("Soak 00042"), submits them all from CLIENTS concurrent asyncio
clients (httpx; 429 and 503 are retried, each upload carries an Idempotency-Key so a retry never
makes a second job), polls every job to a terminal state within a deadline, then checks each one:

- lost: accepted but never terminal, or its record gone;
- duplicated: a job whose record counts more than one attempt, an id handed out twice, or a
  result folder that is not exactly its three files;
- mismatched: a result whose text is not the job's own ("Soak 00042" must read back as such).

Prints the counts, the API's RSS (start, peak, end; /proc/<pid>/status) and the wall time,
writes the `soak` section of BENCHMARKS.md, and exits 1 if anything was lost or duplicated.
tests/integration/test_load.py runs run_soak() with 200 jobs against the test stack.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import redis

from bench.report import machine_line, markdown_table, update_section
from shared.jobs import JobStore
from shared.storage import RESULT_FILES

TERMINAL = ("succeeded", "failed", "canceled")
RETRY_STATUSES = (429, 502, 503, 504)


@dataclass
class SoakReport:
    jobs: int
    clients: int
    submitted: int = 0  # accepted by the API (202, or 200 for a replayed retry)
    refused: int = 0  # never accepted, after retries
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    lost: int = 0
    duplicated: int = 0
    mismatched: int = 0
    submit_retries: int = 0
    submit_seconds: float = 0.0
    wall_seconds: float = 0.0
    rss_mb: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def all_terminal(self) -> bool:
        return self.succeeded + self.failed + self.canceled == self.submitted

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.refused == 0 and self.all_terminal


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def soak_text(n: int) -> str:
    return f"Soak {n:05d}"


def render_inputs(count: int) -> list[bytes]:
    """One small distinct PNG per job: OCR takes about 0.1 s, so the service is what is tested."""
    from tests.textimages import encode, render_page

    return [encode(render_page([(soak_text(n), 28)], width=320)) for n in range(count)]


class _RssSampler:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = rss_mb(pid)
        self.peak = self.start

    async def run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb(self.pid))
            await asyncio.sleep(0.2)


async def _submit_all(
    client: httpx.AsyncClient, inputs: list[bytes], clients: int, report: SoakReport
) -> dict[str, int]:
    """POST every input from `clients` concurrent tasks; job id -> input number."""
    accepted: dict[str, int] = {}
    handed_out: Counter[str] = Counter()
    numbers = iter(range(len(inputs)))
    run = uuid.uuid4().hex[:12]

    async def one(n: int) -> None:
        headers = {"Idempotency-Key": f"soak-{run}-{n:05d}"}
        for attempt in range(30):
            try:
                response = await client.post(
                    "/jobs", files={"file": (f"soak-{n}.png", inputs[n])}, headers=headers
                )
            except httpx.TransportError as exc:
                response, error = None, f"{type(exc).__name__}"
            else:
                error = f"HTTP {response.status_code}"
                if response.status_code in (200, 202):
                    job_id = response.json()["job_id"]
                    handed_out[job_id] += 1
                    accepted[job_id] = n
                    return
                if response.status_code not in (*RETRY_STATUSES, 409):
                    break  # 409 idempotency_key_in_use: our own earlier try is still uploading
            report.submit_retries += 1
            retry_after = float(response.headers.get("retry-after", 0.5)) if response else 0.5
            await asyncio.sleep(min(retry_after, 5) * (1 + attempt / 10))
        report.refused += 1
        report.problems.append(f"input {n} never accepted: {error}")

    async def client_task() -> None:
        for n in numbers:
            await one(n)

    await asyncio.gather(*(client_task() for _ in range(clients)))
    # an id given for two different inputs would be one job answering for two uploads
    for job_id, times in handed_out.items():
        if times > 1:
            report.duplicated += 1
            report.problems.append(f"job {job_id} handed out {times} times")
    report.submitted = len(accepted)
    return accepted


async def _poll_all(
    client: httpx.AsyncClient, jobs: list[str], clients: int, deadline: float
) -> dict[str, dict | None]:
    """Status of every job once terminal (None: 404, its record is gone); in submission order,
    a window of the oldest pending ones at a time, since workers take jobs in that order."""
    final: dict[str, dict | None] = {}
    pending = list(jobs)
    width = max(clients, 20)
    semaphore = asyncio.Semaphore(clients)

    async def poll(job_id: str) -> None:
        async with semaphore:
            try:
                response = await client.get(f"/jobs/{job_id}")
            except httpx.TransportError:
                return
        if response.status_code == 404:
            final[job_id] = None
        elif response.status_code == 200 and response.json()["status"] in TERMINAL:
            final[job_id] = response.json()

    while pending and time.monotonic() < deadline:
        window = pending[:width]
        await asyncio.gather(*(poll(j) for j in window))
        pending = [j for j in pending if j not in final]
        if any(j not in final for j in window):
            await asyncio.sleep(0.5)  # the oldest are still running: give the workers time
    # the last word on what is left: one more look at every job
    await asyncio.gather(*(poll(j) for j in pending))
    return final


async def _check_results(
    client: httpx.AsyncClient,
    accepted: dict[str, int],
    final: dict[str, dict | None],
    store: JobStore,
    output_dir: Path,
    clients: int,
    report: SoakReport,
) -> None:
    semaphore = asyncio.Semaphore(clients)

    async def check(job_id: str, n: int) -> None:
        status = final.get(job_id)
        if status is None:
            report.lost += 1
            gone = job_id in final
            report.problems.append(f"job {job_id} {'record gone' if gone else 'never terminal'}")
            return
        setattr(report, status["status"], getattr(report, status["status"]) + 1)
        record = await asyncio.to_thread(store.get, job_id)
        if record is None:
            report.lost += 1
            report.problems.append(f"job {job_id} record gone after it ended")
            return
        if record.attempts != 1:
            report.duplicated += 1
            report.problems.append(f"job {job_id} ran {record.attempts} times")
        if status["status"] != "succeeded":
            report.problems.append(f"job {job_id} {status['status']}: {status['error']}")
            return
        names = sorted(p.name for p in (output_dir / job_id).iterdir())
        if names != sorted(RESULT_FILES.values()):
            report.duplicated += 1
            report.problems.append(f"job {job_id} result folder holds {names}")
        async with semaphore:
            text = await client.get(f"/jobs/{job_id}/result", params={"format": "text"})
        if " ".join(text.text.split()) != soak_text(n):
            report.mismatched += 1
            report.problems.append(f"job {job_id} reads {text.text.strip()!r}, not {soak_text(n)}")

    await asyncio.gather(*(check(job_id, n) for job_id, n in accepted.items()))


async def run_soak(
    url: str,
    api_pid: int,
    redis_url: str,
    output_dir: Path,
    jobs: int = 2000,
    clients: int = 100,
    deadline_seconds: float = 1800,
) -> SoakReport:
    """Submit `jobs` jobs from `clients` concurrent clients to a running stack and account for
    every one of them. Only this run's jobs are looked at, so the stack may be shared."""
    report = SoakReport(jobs=jobs, clients=clients)
    inputs = await asyncio.to_thread(render_inputs, jobs)
    store = JobStore(redis.Redis.from_url(redis_url, decode_responses=True), 60)
    sampler = _RssSampler(api_pid)
    sampling = asyncio.create_task(sampler.run())
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            accepted = await _submit_all(client, inputs, clients, report)
            report.submit_seconds = round(time.monotonic() - started, 1)
            final = await _poll_all(client, list(accepted), clients, started + deadline_seconds)
            report.wall_seconds = round(time.monotonic() - started, 1)
            await _check_results(client, accepted, final, store, output_dir, clients, report)
    finally:
        sampling.cancel()
        store.redis.close()
    report.rss_mb = {
        "start": round(sampler.start, 1),
        "peak": round(max(sampler.peak, rss_mb(api_pid)), 1),
        "end": round(rss_mb(api_pid), 1),
    }
    return report


def _summary(report: SoakReport, workers: int) -> str:
    rows = [
        ["jobs / clients / workers", f"{report.jobs} / {report.clients} / {workers}"],
        ["submitted (accepted)", report.submitted],
        ["refused after retries", report.refused],
        ["succeeded", report.succeeded],
        ["failed", report.failed],
        ["canceled", report.canceled],
        ["**lost**", report.lost],
        ["**duplicated**", report.duplicated],
        ["text not the job's own", report.mismatched],
        ["submit retries (429/503/...)", report.submit_retries],
        ["all submitted in", f"{report.submit_seconds} s"],
        ["all terminal in (wall)", f"{report.wall_seconds} s"],
        ["throughput", f"{report.succeeded / max(report.wall_seconds, 0.001):.1f} jobs/s"],
        [
            "API RSS start / peak / end",
            "{start} / {peak} / {end} MB".format(**report.rss_mb),
        ],
    ]
    return markdown_table(["", "value"], rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("OCRQ_SOAK_DB", 6)))
    parser.add_argument("--flush", action="store_true", help="empty a non-empty --redis-db first")
    parser.add_argument("--deadline", type=float, default=1800, help="seconds for all jobs")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args()

    from tests.integration.stack import Stack

    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    db = redis.Redis.from_url(redis_url)
    if db.dbsize() and not args.flush:
        raise SystemExit(f"Redis db {args.redis_db} is not empty: pick an empty one or --flush")
    db.flushdb()
    base = Path(tempfile.mkdtemp(prefix="ocrq-soak-"))
    # one onnxruntime thread per worker process: WORKERS processes share the cores
    stack = Stack(base=base, redis_url=redis_url, extra_env={"RAPIDOCR_THREADS": "1"})
    try:
        stack.start_api()
        assert stack.api is not None
        names = [f"test-worker-{i}" for i in range(args.workers)]
        for _ in names:
            stack.start_worker(wait_warm=False)
        stack.wait_for(lambda: all(stack.worker_warm(name) for name in names), timeout=180)
        report = asyncio.run(
            run_soak(
                stack.url,
                stack.api.pid,
                redis_url,
                base / "output",
                args.jobs,
                args.clients,
                args.deadline,
            )
        )
        alive = all(w.poll() is None for w in stack.workers) and stack.api.poll() is None
    finally:
        stack.stop()
        db.flushdb()
    table = _summary(report, args.workers)
    print(table)
    for problem in report.problems[:20]:
        print("  ", problem, file=sys.stderr)
    if len(report.problems) > 20:
        print(f"   ... and {len(report.problems) - 20} more", file=sys.stderr)
    summary = {k: v for k, v in asdict(report).items() if k != "problems"}
    print(summary | {"processes_alive": alive}, file=sys.stderr)
    if report.ok and alive:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"logs kept in {base}", file=sys.stderr)
    if not args.no_write:
        update_section(
            "soak",
            "## Soak: many jobs, many clients (`python -m bench.soak`)\n\n"
            f"{machine_line()}. One API process, {args.workers} worker processes "
            "(RAPIDOCR_THREADS=1), Redis local; each job a distinct 320x133 PNG "
            '("Soak 00042", about 2.6 KB, about 0.1 s of OCR). All jobs are submitted '
            "first (Idempotency-Key on each, 429/503 retried), then polled to a terminal "
            "state. *lost*: accepted, never terminal or record gone; *duplicated*: a job "
            "that ran more than once (its record's `attempts`), an id handed out twice, or a "
            "result folder that is not exactly its three files; *text not the job's own*: the "
            "result does not read back the job's own number. The machine is shared: other "
            "loads slow both sides.\n\n" + table,
        )
    return 0 if report.ok and alive else 1


if __name__ == "__main__":
    raise SystemExit(main())
