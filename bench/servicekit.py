"""Building blocks of `python -m bench.service`: the real processes, batches through them, and the
same engine in a plain loop.

The stack is testkit/stack.py's (the real `python -m api` and `python -m worker`
processes), with per-worker environment, unique worker names and CPU/memory read from /proc.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO
from pathlib import Path

import httpx
import redis

from bench.pages import BenchPage
from bench.procs import cpu_seconds, memory_mb, tree, tree_cpu_seconds
from testkit.scoring import Score, score_page
from testkit.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / "var" / "bench"
# The service as deployed (settings defaults), except a queue limit no run can reach.
BASE_ENV = {"MAX_QUEUED_JOBS": "1000000", "WORKER_HEARTBEAT_TTL": "30", "LOG_LEVEL": "INFO"}
_names = itertools.count()
# The client's poll interval in batches: the `ocrq` client's first interval. 0.1 s polls cost
# the engine about 5% on 2 cores (the API and client steal from its threads); 1 s adds up to
# 1 s of lag after the last job.
POLL_SECONDS = 0.25


@dataclass
class BenchStack(Stack):
    """API + workers on a Redis db that is flushed at start and stop (only that db)."""

    worker_names: dict[int, str] = field(default_factory=dict)

    @classmethod
    def create(cls, redis_url: str, env: dict[str, str] | None = None) -> BenchStack:
        SCRATCH.mkdir(parents=True, exist_ok=True)
        base = SCRATCH / f"run-{time.strftime('%H%M%S')}-{next(_names)}"
        base.mkdir()
        redis.Redis.from_url(redis_url).flushdb()
        return cls(base=base, redis_url=redis_url, extra_env={**BASE_ENV, **(env or {})})

    def spawn_worker(self, env: dict[str, str] | None = None) -> tuple[str, subprocess.Popen]:
        """Start `python -m worker --name bench-worker-N` with `env` on top; no waiting."""
        name = f"bench-worker-{next(_names)}"
        saved = self.extra_env
        self.extra_env = {**saved, **(env or {})}
        try:
            proc = self._spawn("worker", f"{name}.log", "--name", name)
        finally:
            self.extra_env = saved
        self.workers.append(proc)
        self.worker_names[proc.pid] = name
        return name, proc

    def start_workers(self, count: int, env: dict[str, str] | None = None) -> list[str]:
        names = [self.spawn_worker(env)[0] for _ in range(count)]
        for name in names:
            self.wait_for(lambda n=name: self.worker_warm(n), timeout=300)
        return names

    def worker_detail(self, name: str) -> dict | None:
        body = httpx.get(f"{self.url}/ready", timeout=5).json()
        return next((w for w in body["worker_details"] if w["worker_id"] == name), None)

    def worker_log(self, name: str) -> str:
        path = self.base / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def worker_cpu(self) -> float:
        """CPU seconds of every worker (supervisor and its worker process) so far."""
        return sum(tree_cpu_seconds(p.pid) for p in self.workers if p.poll() is None)

    def worker_memory(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB of the largest worker process (the supervisor's child)."""
        sizes = [(0.0, 0.0)]
        for proc in self.workers:
            for pid in tree(proc.pid):
                with contextlib.suppress(OSError, KeyError):
                    sizes.append(memory_mb(pid))
        return max(sizes)

    def api_cpu(self) -> float:
        assert self.api is not None
        return cpu_seconds(self.api.pid)

    def flush(self) -> None:
        """Empty the queue and job store (this db only) and the upload folder.

        Keeps kombu's `_kombu.binding.*` routing keys: the running API declared its queue once
        and would otherwise send new jobs to kombu's dead-letter list.
        """
        client = redis.Redis.from_url(self.redis_url)
        keys = [k for k in client.scan_iter(count=1000) if not k.startswith(b"_kombu.binding.")]
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start : start + 1000])
        shutil.rmtree(self.base / "temp", ignore_errors=True)
        (self.base / "temp").mkdir()

    def close(self, keep: bool = False) -> None:
        self.stop()
        redis.Redis.from_url(self.redis_url).flushdb()
        if not keep:
            shutil.rmtree(self.base, ignore_errors=True)


def warm_seconds_from_log(log: str) -> float | None:
    found = re.findall(r"engine warm in ([0-9.]+) s", log)
    return float(found[-1]) if found else None


def page_seconds_from_log(log: str) -> list[float]:
    """The worker's own time per page (`job=... page 1 (1/1): N blocks by E in X s`)."""
    return [float(s) for s in re.findall(r"blocks by \S+ in ([0-9.]+) s", log)]


@dataclass
class Batch:
    """One set of pages read one way: through the service or by the engine in a loop."""

    label: str
    pages: list[BenchPage]
    wall: float = 0.0
    cpu: float = 0.0  # direct: this process; service: the worker processes
    api_cpu: float = 0.0
    texts: dict[str, str] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=dict)
    jobs: list[dict] = field(default_factory=list)  # final GET /jobs/{id} bodies
    polls: int = 0
    submit_wall: float = 0.0
    first_submit: float = 0.0  # perf_counter at the first POST
    done_at: list[float] = field(default_factory=list)  # perf_counter when each result came
    worker_page_seconds: list[float] = field(default_factory=list)  # from the worker logs
    worker_rss: tuple[float, float] = (0.0, 0.0)  # (VmRSS, VmHWM) MB of the biggest worker

    @property
    def pages_per_second(self) -> float:
        return len(self.pages) / self.wall if self.wall else 0.0

    @property
    def cpu_per_page(self) -> float:
        return self.cpu / len(self.pages)

    @property
    def score(self) -> Score:
        return sum(
            (score_page(p.truth, self.texts[p.name]) for p in self.pages), Score(0, 0, 0, 0, 0)
        )

    def server_breakdown(self) -> dict[str, float]:
        """From the jobs' own timestamps: time in the worker per job, gaps between jobs."""
        if not self.jobs:
            return {}
        times = [
            (_ts(j["created_at"]), _ts(j["started_at"]), _ts(j["finished_at"])) for j in self.jobs
        ]
        runs = [f - s for _, s, f in times]
        starts = sorted(s for _, s, _ in times)
        finishes = sorted(f for _, _, f in times)
        return {
            "job_seconds_mean": statistics.mean(runs),
            "busy_seconds": sum(runs),
            "first_start_delay": starts[0] - min(c for c, _, _ in times),
            "span": finishes[-1] - min(c for c, _, _ in times),
        }


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def multipart(data: bytes, filename: str, fields: dict[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body, encoded once (so the client spends no time per request)."""
    boundary = "ocrqbench7f3a9c2e"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
        f"\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def submit(client: httpx.Client, page: BenchPage, language: str) -> str:
    response = client.post(
        "/jobs",
        files={"file": (f"{page.name}.png", page.png, "image/png")},
        data={"language": language},
    )
    response.raise_for_status()
    return response.json()["job_id"]


def wait_done(client: httpx.Client, job_id: str, poll: float, timeout: float = 900) -> tuple:
    """Poll GET /jobs/{id} every `poll` s until it succeeds: (job body, polls made)."""
    deadline = time.monotonic() + timeout
    polls = 0
    while time.monotonic() < deadline:
        body = client.get(f"/jobs/{job_id}").json()
        polls += 1
        if body["status"] == "succeeded":
            return body, polls
        if body["status"] in ("failed", "canceled"):
            raise RuntimeError(f"job {job_id} {body['status']}: {body.get('error')}")
        time.sleep(poll)
    raise TimeoutError(f"job {job_id} not done after {timeout} s")


def service_batch(
    stack: BenchStack,
    pages: list[BenchPage],
    language: str,
    label: str,
    poll: float = POLL_SECONDS,
) -> Batch:
    """Submit every page (one POST each), then poll each job in turn and fetch its JSON result.

    Wall time runs from the first POST to the last result downloaded.
    """
    batch = Batch(label, pages)
    names = list(stack.worker_names.values())
    log_sizes = {name: len(stack.worker_log(name)) for name in names}
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        client.get("/health")  # connection open before the clock starts
        worker_cpu, api_cpu = stack.worker_cpu(), stack.api_cpu()
        started = time.perf_counter()
        batch.first_submit = started
        ids = [submit(client, page, language) for page in pages]
        batch.submit_wall = time.perf_counter() - started
        for page, job_id in zip(pages, ids, strict=True):
            body, polls = wait_done(client, job_id, poll)
            batch.polls += polls
            result = client.get(f"/jobs/{job_id}/result")
            result.raise_for_status()
            document = result.json()
            batch.done_at.append(time.perf_counter())
            batch.jobs.append(body)
            batch.texts[page.name] = document["text"]
            batch.engines[page.name] = "+".join(p["engine"] or "-" for p in document["pages"])
        batch.wall = time.perf_counter() - started
        batch.cpu = stack.worker_cpu() - worker_cpu
        batch.api_cpu = stack.api_cpu() - api_cpu
        batch.worker_rss = stack.worker_memory()
    for name in names:
        batch.worker_page_seconds += page_seconds_from_log(
            stack.worker_log(name)[log_sizes[name] :]
        )
    return batch


def direct_batch(pages: list[BenchPage], language: str, label: str, router) -> Batch:
    """The worker's engines (built and warmed like the worker does) in a plain loop.

    Pages are decoded to RGB before the clock starts, as the worker's page loader hands them
    over; only `router.read` (engine choice and recognition) is timed.
    """
    from PIL import Image

    from shared.options import Language

    batch = Batch(label, pages)
    images = [Image.open(BytesIO(p.png)).convert("RGB") for p in pages]
    hint = Language(language)
    cpu, started = time.process_time(), time.perf_counter()
    for page, image in zip(pages, images, strict=True):
        engine, recognition = router.read(image, hint)
        batch.texts[page.name] = "\n".join(b.text for b in recognition.blocks)
        batch.engines[page.name] = engine.name
    batch.wall = time.perf_counter() - started
    batch.cpu = time.process_time() - cpu
    return batch


def merge(first: Batch, second: Batch, pages: list[BenchPage]) -> Batch:
    """Two loop batches over parts of `pages` as one."""
    batch = Batch(first.label, pages, wall=first.wall + second.wall, cpu=first.cpu + second.cpu)
    for part in (first, second):
        batch.texts.update(part.texts)
        batch.engines.update(part.engines)
    return batch


def build_router(env: dict[str, str]):
    """EngineRouter over the engines `python -m worker` would build with `env`, warmed."""
    from shared.settings import Settings
    from worker.boot import build_engines
    from worker.routing import EngineRouter

    overrides = {k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
    engines = build_engines(Settings(**overrides))
    for engine in engines:
        engine.warm()
    return EngineRouter(engines)
