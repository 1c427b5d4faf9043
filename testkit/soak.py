"""Soak driver: many jobs from many concurrent asyncio clients against a running API, every
one accounted for (lost, run twice, or answered with another job's text).

run_soak() renders one small PNG per job ("Soak 00042"), submits them all (httpx; 429 and 503
are retried, each upload carries an Idempotency-Key so a retry never makes a second job), polls
every job to a terminal state within a deadline, then checks each one:

- lost: accepted but never terminal, or its record gone;
- duplicated: a job whose record counts more than one attempt, an id handed out twice, or a
  result folder that is not exactly its three files;
- mismatched: a result whose text is not the job's own ("Soak 00042" must read back as such).

`python -m bench.soak` runs it at scale and writes BENCHMARKS.md; tests/integration/test_load.py
runs it with 200 jobs against the test stack.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from shared.jobs import JobStore
from shared.storage import JOB_END_FILES
from testkit.pages import encode, render_page

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
        if names != sorted(JOB_END_FILES.values()):
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
        store.close()
    report.rss_mb = {
        "start": round(sampler.start, 1),
        "peak": round(max(sampler.peak, rss_mb(api_pid)), 1),
        "end": round(rss_mb(api_pid), 1),
    }
    return report
