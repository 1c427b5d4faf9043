"""The whole service measured against its engines alone, in one run, on the same pages.

    .venv/bin/python -m bench.service            # full run (about 15-20 min on 2 quiet cores)
    .venv/bin/python -m bench.service --quick    # few pages, for development (about 3 min)
    .venv/bin/python -m bench.service --parts overhead,coldstart --no-write

Parts (all by default):
  overhead   pages/s through API + Redis + one worker (submit all, poll, fetch the JSON result)
             over pages/s of the same engines in a plain loop in this process (built from
             Settings by worker.boot.build_engines, as the worker builds them): English pages
             with language=en and auto, the Russian eval pages with language=ru
  coldstart  a job submitted the moment a worker process starts; steady-state latency; a job
             submitted right after /ready says warm; the worker's warm-up time
  submit     POST /jobs latency with 1 MB PNGs (no worker): 1, 10 and 50 clients in a closed
             loop (jobs/s capacity), then 50 clients paced at 1, 2, 3 uploads/s each (offered
             50/100/150 jobs/s); API CPU per job, API RSS at rest and under load
  peer       the Tesseract CLI (Debian's, OMP_THREAD_LIMIT=1) on the Russian pages: pages/s,
             CER and word F1 beside the service with language=ru and language=auto
  scaling    pages/s with 1 and 2 worker processes x RAPIDOCR_THREADS 0 (auto), 1, 2

Uses Redis db 5 (OCRQ_BENCH_DB), which must be empty or is emptied with --flush; only that db
is ever flushed. Scratch files under ./var/bench. Writes the `service` section of
BENCHMARKS.md unless --no-write.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import os
import pickle
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from bench.pages import BenchPage, english_pages, noisy_png, russian_pages
from bench.procs import load_average, memory_mb
from bench.report import machine_line, markdown_table, update_section
from bench.servicekit import (
    POLL_SECONDS,
    SCRATCH,
    Batch,
    BenchStack,
    build_router,
    direct_batch,
    merge,
    multipart,
    service_batch,
    submit,
    wait_done,
    warm_seconds_from_log,
)

LAST_RUN = SCRATCH / "last-run.pickle"
RESTARTS = 4  # cold-start measurements of "first job right after /ready says warm"
PARTS = ("overhead", "coldstart", "submit", "peer", "scaling")
THREAD_SETTINGS = ("0", "1", "2")


@dataclass
class Sizes:
    en_pages: int
    ru_pages: int
    steady_jobs: int
    submit_requests: dict[int, int]
    scaling_pages: int
    paced_seconds: float
    paced_rates: tuple[float, ...] = (1.0, 2.0, 3.0)  # uploads a second per paced client

    @classmethod
    def of(cls, args: argparse.Namespace) -> Sizes:
        if args.quick:
            return cls(3, 3, 3, {1: 20, 10: 40, 50: 100}, 3, 3.0)
        return cls(
            args.en_pages,
            args.ru_pages,
            5,
            {1: 100, 10: 300, 50: 500},
            args.en_pages,
            10.0,
        )


@dataclass
class Results:
    direct: dict[str, Batch] = field(default_factory=dict)
    service: dict[str, Batch] = field(default_factory=dict)
    coldstart: dict[str, float] = field(default_factory=dict)
    steady_latencies: list[float] = field(default_factory=list)
    restarts: list[dict] = field(default_factory=list)
    sizes_steady: int = 0
    submit: list[dict] = field(default_factory=list)
    submit_memory: dict[str, float] = field(default_factory=dict)
    peer: Batch | None = None
    peer_version: str = ""
    scaling: dict[tuple[int, str], Batch] = field(default_factory=dict)
    scaling_ru: dict[int, Batch] = field(default_factory=dict)
    checks: list[list[object]] = field(default_factory=list)
    loads: dict[str, float] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load_average():.1f}] {message}", file=sys.stderr)


# --- 1. overhead --------------------------------------------------------------------------


def run_overhead(
    redis_url: str, en: list[BenchPage], ru: list[BenchPage], res: Results, auto_ru: bool
) -> None:
    """One API + one worker (settings defaults); each direct loop right before its service run."""
    res.loads["overhead"] = load_average()
    router = build_router({})
    stack = BenchStack.create(redis_url)
    try:
        stack.start_api()
        stack.start_workers(1)
        runs = [("en", en, "en"), ("en", en, "auto"), ("ru", ru, "ru")]
        if auto_ru:
            runs.append(("ru", ru, "auto"))
        for key, pages, language in runs:
            # Each service run against a loop over the same pages with the same language (the
            # same engine choice). The loop reads half the pages before the service run and
            # half after, so that a load that drifts during the run weighs on both sides alike.
            run = f"{key}/{language}"
            log(f"overhead: loop {run} x{len(pages[0::2])}")
            first = direct_batch(pages[0::2], language, f"engine loop, {run}", router)
            log(f"  {first.pages_per_second:.3f} pages/s; service {run}")
            batch = service_batch(stack, pages, language, f"service, language={language}")
            res.service[run] = batch
            log(f"  {batch.pages_per_second:.3f} pages/s; loop {run} x{len(pages[1::2])}")
            second = direct_batch(pages[1::2], language, f"engine loop, {run}", router)
            res.direct[run] = merge(first, second, pages)
            log(f"  {second.pages_per_second:.3f} pages/s")
        res.checks += request_costs(stack, res.service["en/en"])
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.close()
    res.checks += handover_checks(router, en[:3])
    res.checks += runner_round_trips(redis_url, router, en[0])
    res.checks += page_costs(en[:3], ru[:3], res.service["en/en"])


def request_costs(stack: BenchStack, batch: Batch, count: int = 200) -> list[list[object]]:
    """API CPU per poll (GET /jobs/{id}) and per JSON result download, on a finished job."""
    job_id = batch.jobs[0]["job_id"]
    rows = []
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        for label, path in (
            ("GET /jobs/{id} (one poll)", f"/jobs/{job_id}"),
            ("GET /jobs/{id}/result (JSON, one page)", f"/jobs/{job_id}/result"),
        ):
            client.get(path)
            cpu, wall = stack.api_cpu(), time.perf_counter()
            for _ in range(count):
                client.get(path).raise_for_status()
            wall = (time.perf_counter() - wall) / count * 1000
            cpu = (stack.api_cpu() - cpu) / count * 1000
            rows.append([label, f"{cpu:.2f} ms API CPU, {wall:.1f} ms round trip"])
    polls = sum(b.polls for b in [batch])
    rows.append(
        [
            "polling during the en batch",
            f"{polls} polls for {len(batch.pages)} jobs (every {POLL_SECONDS} s); API CPU in "
            f"the whole batch {batch.api_cpu:.2f} s = "
            f"{batch.api_cpu / len(batch.pages) * 1000:.0f} ms/page",
        ]
    )
    return rows


def handover_checks(router, pages: list[BenchPage]) -> list[list[object]]:
    """rapidocr's input: the old PNG round trip vs the BGR array handed over now (same pixels)."""
    import numpy as np
    from PIL import Image
    from rapidocr.utils.load_image import LoadImage

    from worker.engines.rapidocr_engine import _as_array

    load = LoadImage()
    images = [Image.open(io.BytesIO(p.png)).convert("RGB") for p in pages]

    def png_round_trip(image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        return load(buffer.getvalue())

    def array(image):
        return load(_as_array(image))

    timings, outputs = {}, {}
    for label, convert in (("PNG bytes", png_round_trip), ("BGR array", array)):
        convert(images[0])
        cpu = time.process_time()
        outputs[label] = [convert(image) for image in images]
        timings[label] = (time.process_time() - cpu) / len(images) * 1000
    same = all(
        np.array_equal(a, b)
        for a, b in zip(outputs["PNG bytes"], outputs["BGR array"], strict=True)
    )
    return [
        [
            "rapidocr input: PNG round trip (before) vs BGR array (now)",
            f"{timings['PNG bytes']:.0f} ms vs {timings['BGR array']:.0f} ms CPU per A4 page; "
            f"pixels {'identical' if same else 'DIFFERENT'}",
        ]
    ]


def runner_round_trips(redis_url: str, router, page: BenchPage) -> list[list[object]]:
    """Redis round trips of the worker's JobRunner for one one-page job (not Celery's own)."""
    import tempfile
    import uuid
    from collections import Counter

    from redis.client import Pipeline

    from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, utcnow
    from shared.options import parse_options
    from shared.settings import Settings
    from shared.storage import JobFiles
    from worker.boot import build_runner

    redis.Redis.from_url(redis_url).flushdb()
    trips: Counter[str] = Counter()
    execute_command, execute_pipeline = redis.Redis.execute_command, Pipeline.execute

    def counted_command(self, *args, **kwargs):
        if not isinstance(self, Pipeline):  # a pipeline's commands go in one trip, below
            trips[str(args[0])] += 1
        return execute_command(self, *args, **kwargs)

    def counted_pipeline(self, *args, **kwargs):
        trips["pipeline"] += 1
        return execute_pipeline(self, *args, **kwargs)

    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        settings = Settings(
            redis_url=redis_url, temp_dir=Path(tmp) / "t", output_dir=Path(tmp) / "o"
        )
        store = JobStore(connect_redis(redis_url), 600)
        runner, _ = build_runner(settings, store.redis, router, "bench:1", store)
        job_id = uuid.uuid4().hex
        files = JobFiles(settings.temp_dir, settings.output_dir, job_id)
        files.make_input_dir()
        files.input_path.write_bytes(page.png)
        record = JobRecord(
            job_id=job_id, status=JobStatus.queued, created_at=utcnow(), media_type="image/png",
            options=parse_options({"language": "en"}),
        )  # fmt: skip
        store.create(record)
        redis.Redis.execute_command, Pipeline.execute = counted_command, counted_pipeline
        try:
            status = runner.run(job_id)
        finally:
            redis.Redis.execute_command, Pipeline.execute = execute_command, execute_pipeline
    redis.Redis.from_url(redis_url).flushdb()
    detail = ", ".join(f"{n} {name}" for name, n in trips.most_common())
    return [
        [
            "Redis round trips of the worker's job runner, one-page job (Celery's fetch and "
            "ack not counted)",
            f"{sum(trips.values())} ({detail}); job {status}",
        ]
    ]


def page_costs(en: list[BenchPage], ru: list[BenchPage], batch: Batch) -> list[list[object]]:
    """The worker's per-page work besides recognition: decode, and the result files."""
    import tempfile

    from PIL import Image

    from shared.results import Block, PageResult
    from shared.storage import JobFiles
    from worker.results import build_document, page_markdown, write_results

    rows = []
    for label, pages in (("English", en), ("Russian (grayscale)", ru)):
        cpu = time.process_time()
        for page in pages:
            Image.open(io.BytesIO(page.png)).convert("RGB")
        ms = (time.process_time() - cpu) / len(pages) * 1000
        rows.append([f"decode PNG to RGB, {label} A4 page", f"{ms:.0f} ms CPU"])
    text = batch.texts[batch.pages[0].name]
    lines = text.splitlines() or [""]
    blocks = [
        Block(type="text", text=line, bbox=[10.0, 10.0 + 40 * i, 900.0, 40.0 + 40 * i], score=0.98)
        for i, line in enumerate(lines)
    ]
    page = PageResult(
        index=1, width=1654, height=2339, dpi=200, engine="rapidocr", blocks=blocks,
        markdown=page_markdown(blocks), text=text,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        files = JobFiles(Path(tmp) / "t", Path(tmp) / "o", "0" * 32)
        cpu, count = time.process_time(), 50
        for _ in range(count):
            write_results(files, build_document(files.job_id, "rapidocr", [page]))
        ms = (time.process_time() - cpu) / count * 1000
    rows.append(
        [f"build + write result.json/.md/.txt, {len(blocks)}-line page", f"{ms:.1f} ms CPU"]
    )
    return rows


# --- 2. cold start ------------------------------------------------------------------------


def run_coldstart(redis_url: str, page: BenchPage, steady: int, res: Results) -> None:
    res.loads["coldstart"] = load_average()
    res.sizes_steady = steady
    stack = BenchStack.create(redis_url)
    out = res.coldstart
    poll = 0.02
    try:
        stack.start_api()
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            client.get("/health")
            log("coldstart: worker started, job submitted at once")
            spawned = time.perf_counter()
            name, proc = stack.spawn_worker()
            posted = time.perf_counter()
            job_id = submit(client, page, "en")
            warm_seen = None
            while True:
                if warm_seen is None:
                    detail = stack.worker_detail(name)
                    if detail and detail["warm"]:
                        warm_seen = time.perf_counter() - spawned
                        out["ready_warmup_seconds"] = detail["warmup_seconds"]
                body = client.get(f"/jobs/{job_id}").json()
                if body["status"] == "succeeded":
                    break
                if body["status"] in ("failed", "canceled"):
                    raise RuntimeError(f"cold-start job {body}")
                time.sleep(poll)
            client.get(f"/jobs/{job_id}/result").raise_for_status()
            out["first_latency"] = time.perf_counter() - posted
            out["first_wait"], out["first_run"] = _wait_and_run(body)
            out["spawn_to_warm_seen"] = warm_seen or float("nan")
            out["log_warmup_seconds"] = warm_seconds_from_log(stack.worker_log(name)) or 0.0

            log(f"  first job {out['first_latency']:.2f} s; {steady} steady jobs")
            out["steady_latency"], out["steady_run"] = _steady(client, page, poll, steady)
            res.steady_latencies = [out["steady_latency"]]
            for n in range(RESTARTS):
                log(f"  restart {n + 1}: job submitted right after /ready says warm")
                stack.stop_worker(proc)
                spawned = time.perf_counter()
                name, proc = stack.spawn_worker()
                while not ((d := stack.worker_detail(name)) and d["warm"]):
                    time.sleep(poll)
                restart = {"spawn_to_warm": time.perf_counter() - spawned}
                restart["warmup_seconds"] = d["warmup_seconds"]
                restart["first_latency"], body = _one_job(client, page, poll)
                restart["first_wait"], restart["first_run"] = _wait_and_run(body)
                restart["steady_latency"], restart["steady_run"] = _steady(
                    client, page, poll, steady
                )
                res.restarts.append(restart)
                log(f"    {restart['first_latency'] / restart['steady_latency']:.2f}x steady")
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.close()


def _steady(client: httpx.Client, page: BenchPage, poll: float, count: int) -> tuple[float, float]:
    """Median latency and median run time of `count` jobs sent one after another."""
    latencies, runs = [], []
    for _ in range(count):
        latency, body = _one_job(client, page, poll)
        latencies.append(latency)
        runs.append(_wait_and_run(body)[1])
    return statistics.median(latencies), statistics.median(runs)


def _one_job(client: httpx.Client, page: BenchPage, poll: float) -> tuple[float, dict]:
    started = time.perf_counter()
    job_id = submit(client, page, "en")
    body, _ = wait_done(client, job_id, poll)
    client.get(f"/jobs/{job_id}/result").raise_for_status()
    return time.perf_counter() - started, body


def _wait_and_run(body: dict) -> tuple[float, float]:
    from bench.servicekit import _ts

    created, started, finished = (_ts(body[k]) for k in ("created_at", "started_at", "finished_at"))
    return started - created, finished - started


# --- 3. submit path -----------------------------------------------------------------------


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
        # spent 8.6 ms of CPU per upload against 1.7 ms at 10, as much as the API itself
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


# --- 4. peer ------------------------------------------------------------------------------


def run_peer(ru: list[BenchPage], res: Results) -> None:
    res.loads["peer"] = load_average()
    folder = SCRATCH / "peer"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for page in ru:
        path = folder / f"{page.name}.png"
        path.write_bytes(page.png)
        paths.append(path)
    version = subprocess.run(
        ["tesseract", "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    res.peer_version = version
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    batch = Batch(f"Tesseract CLI ({version}), rus+eng, one process", ru)
    log(f"peer: {version} x{len(ru)}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for page, path in zip(ru, paths, strict=True):
        out = subprocess.run(
            ["tesseract", str(path), "-", "-l", "rus+eng"],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        batch.texts[page.name] = out.stdout
        batch.engines[page.name] = "tesseract-cli"
    batch.wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    batch.cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    res.peer = batch
    log(f"  {batch.pages_per_second:.3f} pages/s")


# --- 5. scaling ---------------------------------------------------------------------------


def run_scaling(
    redis_url: str, en: list[BenchPage], ru: list[BenchPage], res: Results, reuse: Batch | None
) -> None:
    res.loads["scaling"] = load_average()
    for workers in (1, 2):
        for threads in THREAD_SETTINGS:
            if (workers, threads) == (1, "0") and reuse is not None:
                res.scaling[(1, "0")] = reuse  # the overhead run is this configuration
                continue
            label = f"{workers} worker(s), RAPIDOCR_THREADS={threads}"
            res.scaling[(workers, threads)] = _scaled(redis_url, en, "en", workers, threads, label)
    if ru:
        if "ru/ru" in res.service:
            res.scaling_ru[1] = res.service["ru/ru"]
        else:
            res.scaling_ru[1] = _scaled(redis_url, ru, "ru", 1, "0", "1 worker, ru")
        res.scaling_ru[2] = _scaled(redis_url, ru, "ru", 2, "0", "2 workers, ru")


def _scaled(
    redis_url: str, pages: list[BenchPage], language: str, workers: int, threads: str, label: str
) -> Batch:
    log(f"scaling: {label}")
    stack = BenchStack.create(redis_url, {"RAPIDOCR_THREADS": threads})
    try:
        stack.start_api()
        stack.start_workers(workers)
        batch = service_batch(stack, pages, language, label)
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.close()
    log(f"  {batch.pages_per_second:.3f} pages/s")
    return batch


# --- report -------------------------------------------------------------------------------


def _f(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def _score(batch: Batch) -> str:
    score = batch.score
    return f"{score.cer:.2%} / {score.word_f1:.3f}"


def report(res: Results, sizes: Sizes, en: list[BenchPage], ru: list[BenchPage]) -> str:
    load_start = res.loads.get("start", 0.0)
    parts = [
        "## The service against its engines (`python -m bench.service`)",
        f"{machine_line()}; **{os.cpu_count()} cores, load average at the start "
        f"{load_start:.2f}** (1 min; 5/15 min {res.loads['start5']:.2f}/"
        f"{res.loads['start15']:.2f}), at the end {res.loads.get('end', 0):.2f}; load at the "
        "start of each part (this run's own processes count too): "
        + ", ".join(f"{k} {v:.1f}" for k, v in res.loads.items() if k in PARTS)
        + ". The machine is shared: other work inflates wall times; CPU seconds are steadier. "
        f"Pages: {len(en)} English A4 pages at 200 dpi rendered by `bench/pages.py` (30 lines "
        f"of license prose, DejaVuSans 30 px, PNG {statistics.mean(p.size_kb for p in en):.0f} KB)"
        f" and {len(ru)} Russian pages of `shared/eval/debian_docs_ru` (grayscale PNG, 200 dpi). "
        "One API process, Redis local, settings defaults unless named; the client polls "
        f"`GET /jobs/{{id}}` every {POLL_SECONDS} s (oldest unfinished job first) and downloads "
        "the JSON result. CER / word F1 by "
        "`testkit/scoring.py`.",
    ]
    if res.service and res.direct:
        parts += _overhead_report(res)
    if res.coldstart:
        parts += _coldstart_report(res)
    if res.submit:
        parts += _submit_report(res)
    if res.peer:
        parts += _peer_report(res)
    if res.scaling:
        parts += _scaling_report(res)
    if res.checks:
        parts += [
            "### Where the time goes besides recognition",
            markdown_table(["what", "cost"], res.checks),
        ]
    parts.append(CHANGES)
    return "\n\n".join(parts)


def _overhead_report(res: Results) -> list[str]:
    rows = []
    for key in ("en/en", "en/auto", "ru/ru", "ru/auto"):
        if key not in res.service:
            continue
        service, direct = res.service[key], res.direct[key]
        explicit = res.service[key.split("/")[0] + "/" + key.split("/")[0]]
        engines = sorted(set(service.engines.values()))
        rows.append(
            [
                f"{len(service.pages)} {'English' if key.startswith('en') else 'Russian'}",
                key.split("/")[1],
                "+".join(engines),
                _f(direct.pages_per_second),
                _f(service.pages_per_second),
                f"**{service.pages_per_second / direct.pages_per_second:.2f}**",
                _f(direct.cpu_per_page, 2),
                _f(service.cpu_per_page, 2),
                _f(service.api_cpu / len(service.pages), 3),
                _score(service)
                + ("" if _score(service) == _score(direct) else " (loop: " + _score(direct) + ")"),
                f"{service.pages_per_second / explicit.pages_per_second:.2f}",
            ]
        )
    breakdown = []
    for key, service in res.service.items():
        direct = res.direct[key]
        info = service.server_breakdown()
        in_worker = statistics.mean(service.worker_page_seconds or [float("nan")])
        breakdown.append(
            [
                service.label + f" ({key.split('/')[0]})",
                _f(direct.wall / len(direct.pages), 2),
                _f(in_worker, 2),
                _f(info["job_seconds_mean"], 2),
                _f(info["first_start_delay"], 2),
                _f((service.wall - info["busy_seconds"]) / len(service.pages), 3),
                _f(service.submit_wall, 2),
            ]
        )
    return [
        "### 1. Overhead: the whole service over the engine alone (target ≥ 0.95)",
        "*engine loop*: `router.read(page, language)` on the worker's engines built from "
        "`Settings` (`worker.boot.build_engines`, warmed), pages decoded beforehand, in this "
        "process, with the same language as the service run beside it (so `auto` is measured "
        "against `auto`: the same engine choices). *service*: every page POSTed at once, then "
        "each job polled and its JSON result fetched; wall time from the first POST to the "
        "last result. CPU s/page: this process (loop) or the worker processes (service); API "
        "CPU: the API process. *vs named language*: service pages/s over the service's with "
        "`en`/`ru` named on the same pages, the price of letting `auto` choose.",
        markdown_table(
            [
                "pages",
                "language",
                "read by",
                "loop pages/s",
                "service pages/s",
                "service / loop",
                "loop CPU s/page",
                "worker CPU s/page",
                "API CPU s/page",
                "CER / word F1",
                "vs named language",
            ],
            rows,
        ),
        "Worker memory after the batch (VmRSS / peak VmHWM of the worker process): "
        + ", ".join(
            f"{k} {b.worker_rss[0]:.0f} / {b.worker_rss[1]:.0f} MB" for k, b in res.service.items()
        )
        + ".",
        "Where the service's extra time goes, seconds per page (from the jobs' own "
        "timestamps and the worker's log): *engine in worker* is the worker's page time "
        "(`... in X s`), *job* is started→finished, *first wait* is the first job's "
        "created→started, *idle* is (wall - Σ job time) / pages: upload, queue hand-over "
        "between jobs, polling lag, result download.",
        markdown_table(
            [
                "run",
                "loop s/page",
                "engine in worker s/page",
                "job s/page",
                "first wait s",
                "idle s/page",
                "submit all s",
            ],
            breakdown,
        ),
    ]


def _coldstart_report(res: Results) -> list[str]:
    c = res.coldstart
    steady = c["steady_latency"]
    rows = [
        ["worker warm-up (log `engine warm in X s`)", _f(c["log_warmup_seconds"], 2), ""],
        ["process start -> `/ready` says warm (seen by polling)", _f(c["spawn_to_warm_seen"], 2),
         ""],
        ["**first job, submitted as the process starts**: POST -> result",
         _f(c["first_latency"], 2), f"{c['first_latency'] / steady:.1f}x"],
        ["  of which waiting for the worker (created -> started)", _f(c["first_wait"], 2), ""],
        ["  of which running (started -> finished)", _f(c["first_run"], 2),
         f"{c['first_run'] / c['steady_run']:.2f}x steady run"],
        [f"steady job on that worker (median of {res.sizes_steady}, one at a time)",
         _f(steady, 2), "1.00x"],
    ]  # fmt: skip
    for n, r in enumerate(res.restarts, start=1):
        ratio = r["first_latency"] / r["steady_latency"]
        rows += [
            [f"restart {n}: process start -> `/ready` warm (warm-up {r['warmup_seconds']:.2f} s)",
             _f(r["spawn_to_warm"], 2), ""],
            [f"restart {n}: **first job submitted right after `/ready` says warm**",
             _f(r["first_latency"], 2), f"**{ratio:.2f}x** (target <= 1.1x)"],
            ["  of which waiting for the worker / running",
             f"{r['first_wait']:.2f} / {r['first_run']:.2f}",
             f"{r['first_run'] / r['steady_run']:.2f}x steady run"],
            [f"restart {n}: steady job on that worker (median of {res.sizes_steady})",
             _f(r["steady_latency"], 2), "1.00x"],
        ]  # fmt: skip
    ratios = sorted(r["first_latency"] / r["steady_latency"] for r in res.restarts)
    summary = (
        f"**First job after `/ready` says warm: median {statistics.median(ratios):.2f}x a steady "
        f"job over {len(ratios)} restarts** (each: "
        + ", ".join(f"{x:.2f}x" for x in ratios)
        + "; target <= 1.1x)."
        if ratios
        else ""
    )
    return [
        "### 2. Cold start",
        "One English page, `language=en`, one worker (`python -m worker`: supervisor + worker "
        "process, which warms rapidocr and the tesseract fallback). Latency is the client's: "
        "POST to the result downloaded, polling every 20 ms. Each ratio is against the median of "
        "the jobs sent one at a time right after, to the same worker (the machine's load moves "
        f"between minutes). Then the worker is restarted {len(res.restarts)} times and a job is "
        "sent the moment `/ready` says it is warm.",
        markdown_table(["what", "seconds", "vs steady"], rows),
        summary,
    ]


def _submit_report(res: Results) -> list[str]:
    m = res.submit_memory
    rows = [
        [
            r["clients"],
            r["mode"],
            "-" if r.get("offered") is None else f"{r['offered']:.0f}",
            r["requests"],
            f"{r['jobs_per_second']:.0f}",
            f"{r['p50'] * 1000:.0f}",
            f"**{r['p99'] * 1000:.0f}**",
            f"{r['max'] * 1000:.0f}",
            "-"
            if r["mode"] != "closed loop"
            else f"{r['clients'] / r['jobs_per_second'] * 1000:.0f}",
            f"{r['api_cpu_ms']:.1f}",
            f"{r['client_cpu_ms']:.1f}",
            f"{r['peak_rss']:.0f}",
        ]
        for r in res.submit
    ]
    return [
        "### 3. Submit path: `POST /jobs` with 1 MB uploads (target p99 < 50 ms at 50 clients, "
        "RSS < 100 MB)",
        f"A valid {m['upload_bytes'] / 1e6:.2f} MB PNG of noise (incompressible), multipart "
        "encoded once; *clients* concurrent `httpx.AsyncClient`s (a connection each) in this "
        "process, either in a *closed loop* (each sends its next upload when the "
        "last is answered: the most the API takes, its capacity in jobs/s) or *N/s each* (every "
        "client sends N uploads a second, random phase: a steady *offered* load of clients x N "
        "jobs/s); **no worker running**; `MAX_QUEUED_JOBS=1000000`, queue and uploads emptied "
        "before each row. *Little's law* is clients / (jobs/s): the mean latency a closed loop "
        "must see. "
        f"API RSS (VmRSS): at rest {m['rest_rss']:.0f} MB, after the load "
        f"{m['after_rss']:.0f} MB; peak RSS is the highest sample (every 20 ms) or VmHWM "
        "during the row.",
        markdown_table(
            [
                "clients",
                "sending",
                "offered jobs/s",
                "requests",
                "jobs/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "Little's law ms",
                "API CPU ms/job",
                "client CPU ms/job",
                "API peak RSS MB",
            ],
            rows,
        ),
        _submit_verdict(res.submit),
    ]


def _submit_verdict(rows: list[dict]) -> str:
    """What the table says about the 50 ms target, in words."""
    closed = [r for r in rows if r["mode"] == "closed loop"]
    paced = sorted((r for r in rows if r.get("offered")), key=lambda r: r["offered"])
    text = []
    if closed:
        top = max(closed, key=lambda r: r["clients"])
        text.append(
            f"**Capacity** (closed loop, {top['clients']} clients): {top['jobs_per_second']:.0f} "
            f"jobs/s, so {top['clients']} clients that each send again at once wait "
            f"{top['clients'] / top['jobs_per_second'] * 1000:.0f} ms on average whatever the "
            f"code does: p99 < 50 ms there would need over {top['clients'] / 0.05:.0f} jobs/s, "
            "far beyond 2 cores that also run the load generator."
        )
    if paced:
        held = [r for r in paced if r["p99"] < 0.05]
        if held:
            text.append(
                f"**p99 stays under 50 ms up to an offered {held[-1]['offered']:.0f} jobs/s** "
                f"from {held[-1]['clients']} clients (p99 {held[-1]['p99'] * 1000:.0f} ms)"
                + (
                    f"; at {paced[-1]['offered']:.0f} jobs/s it is "
                    f"{paced[-1]['p99'] * 1000:.0f} ms."
                    if held[-1] is not paced[-1]
                    else "."
                )
            )
        else:
            text.append(
                f"p99 is over 50 ms at every paced load tried (from {paced[0]['offered']:.0f} "
                f"jobs/s: {paced[0]['p99'] * 1000:.0f} ms)."
            )
    return " ".join(text)


def _peer_report(res: Results) -> list[str]:
    assert res.peer is not None
    rows = []
    for batch in [res.peer, res.direct.get("ru/ru"), res.service.get("ru/ru"),
                  res.service.get("ru/auto")]:  # fmt: skip
        if batch is None:
            continue
        score = batch.score
        label = batch.label
        if batch is res.direct.get("ru/ru"):
            label = "tesserocr in a loop (the engine of `language=ru`)"
        elif batch is not res.peer:
            label = f"ocrq {batch.label}"
        rows.append(
            [
                label,
                _f(batch.pages_per_second),
                _f(batch.cpu_per_page, 2),
                f"{score.cer:.2%}",
                f"{score.word_f1:.3f}",
            ]
        )
    return [
        "### 4. Peer: the Tesseract CLI on the Russian pages",
        f"`tesseract PAGE.png - -l rus+eng` with `OMP_THREAD_LIMIT=1`, one page after another "
        f"(one process at a time, like one worker), {len(res.peer.pages)} pages. CPU s/page: "
        "the CLI processes, this process (loop), or the worker (service).",
        markdown_table(["reader", "pages/s", "CPU s/page", "CER", "word F1"], rows),
    ]


def _scaling_report(res: Results) -> list[str]:
    base = res.scaling.get((1, "0"))
    rows = []
    for (workers, threads), batch in res.scaling.items():
        rows.append(
            [
                workers,
                f"{threads} (auto)" if threads == "0" else threads,
                _f(batch.pages_per_second),
                f"{batch.pages_per_second / base.pages_per_second:.2f}" if base else "-",
                _f(batch.cpu_per_page, 2),
            ]
        )
    best = max(res.scaling, key=lambda k: res.scaling[k].pages_per_second)
    best_pps = res.scaling[best].pages_per_second
    parts = [
        "### 5. Scaling: worker processes x `RAPIDOCR_THREADS` (English pages, rapidocr)",
        f"{len(next(iter(res.scaling.values())).pages)} English pages, `language=en`, every "
        "page POSTed at once. `0` leaves onnxruntime's default (one thread per core).",
        markdown_table(
            ["workers", "RAPIDOCR_THREADS", "pages/s", "vs 1 worker, auto", "worker CPU s/page"],
            rows,
        ),
    ]
    if res.scaling_ru:
        ru_rows = [
            [w, _f(b.pages_per_second), _f(b.cpu_per_page, 2)] for w, b in res.scaling_ru.items()
        ]
        parts += [
            "Russian pages (`language=ru`, tesseract: one thread per page):",
            markdown_table(["workers", "pages/s", "worker CPU s/page"], ru_rows),
        ]
    parts.append(
        f"**Measured best: {best[0]} worker process(es) with RAPIDOCR_THREADS={best[1]} "
        f"({best_pps:.3f} pages/s).** " + _recommendation(res)
    )
    return parts


def _recommendation(res: Results) -> str:
    s = {k: b.pages_per_second for k, b in res.scaling.items()}
    cpu = {k: b.cpu_per_page for k, b in res.scaling.items()}
    if not {(1, "0"), (1, "1"), (2, "0"), (2, "1")} <= s.keys():
        return ""
    text = (
        f"One worker with the default `RAPIDOCR_THREADS=0` (onnxruntime takes every core) reads "
        f"{s[(1, '0')]:.3f} English pages/s; pinned to one thread it reads {s[(1, '1')]:.3f} "
        f"({s[(1, '1')] / s[(1, '0')]:.2f}x): rapidocr does use the second core. Two workers "
        f"with one thread each read {s[(2, '1')]:.3f} ({s[(2, '1')] / s[(1, '0')]:.2f}x), two "
        f"workers left on auto only {s[(2, '0')]:.3f} ({s[(2, '0')] / s[(1, '0')]:.2f}x): four "
        "onnxruntime threads on two cores wait on one another (worker CPU "
        f"{cpu[(2, '0')]:.2f} s/page against {cpu[(2, '1')]:.2f})."
    )
    if res.scaling_ru.keys() >= {1, 2}:
        ru1, ru2 = res.scaling_ru[1].pages_per_second, res.scaling_ru[2].pages_per_second
        text += (
            f" Russian pages (tesseract, one thread per page) go from {ru1:.3f} to {ru2:.3f} "
            f"pages/s ({ru2 / ru1:.2f}x) with the second worker: one worker leaves a core idle "
            "on them."
        )
    return text + "\n\n" + RECOMMENDATION


RECOMMENDATION = """**Recommendation.** Threads x worker processes = cores. The default stays
`RAPIDOCR_THREADS=0` (auto): with the one worker per host that `make run` and the compose file
start, auto is the fastest setting (a single thread leaves a core idle), and it needs no
knowledge of the host. On a 2-core host that runs *two* worker processes, set
`RAPIDOCR_THREADS=1`: it is the layout with the most pages/s for English too (a little more
than one worker on auto: two single-threaded runs waste no time waiting on each other) and
about twice the pages/s for Russian (tesseract reads a page on one core); two workers on auto
is the one layout to avoid.
Generally: N workers on a C-core host, `RAPIDOCR_THREADS` = C / N. The worker cannot tell the
setting itself (it does not know how many siblings share its host; `os.cpu_count()` also sees
the host's cores, not a container's CPU limit)."""

CHANGES = """### Changes made from these figures

Each measured before and after with this script (or the experiment named) on this machine; the
tables above are the "after".

1. **rapidocr gets the page as a BGR array** (`worker/engines/rapidocr_engine.py` `_run`). It
   was PNG-encoded (compress level 1) and decoded again inside rapidocr for every recognition:
   85 ms of CPU per A4 page, now 5 ms (`cv2.cvtColor`; also for the orientation crops, where
   `[:, :, ::-1].copy()` took 23 ms per page-sized array). Same pixels, so the same text on
   every page (checked in the table above on each run).
2. **No per-line 180-degree classifier in rapidocr.** The English pages read at CER 3.9% /
   word F1 0.956 (6 pages): the line classifier squashes a long line into its 192x48 input and
   took 2-4 of 30 upright lines per page for upside down, reading garbage ("works are designed
   to take away your freedom to share and change the" came out as "wo   s   r e   s re she").
   With `use_cls=False`: CER 0.00% / F1 1.000, same CPU (5.39 vs 5.40 s/page). Whole-page
   rotation (`page_rotation`, item 8) still turns rotated scans. New test:
   `test_rapidocr_reads_long_upright_lines_unflipped`.
3. **onnxruntime's memory arena on, and a page-sized warm-up.** rapidocr turns the arena off by
   default, so every page took its buffers from malloc and gave them back: 185-270k page faults
   (about 1 GB of memory zeroed by the kernel) per A4 page. With the arena: about 0 after the
   first pages, and an A4 English page in the loop goes from 2.44 to 2.10 s (0.410 -> 0.477
   pages/s; service 0.389 -> 0.462; worker CPU 4.95 -> 4.17 s/page). The cost is memory: the
   worker's RSS stays near its peak, about 1.15 GB (1.3 GB after `auto` on Russian pages)
   instead of 0.45-0.57 GB between pages with peaks of 0.73-0.85 GB (so the `pdf-memory`
   section above, measured before, is out of date). The warm-up now also reads a full A4 page
   of 30 lines, so that the arena has grown before the first job: the worker's warm-up goes
   from 1.3 s to about 5 s. The first job after warm ran 1.17x the steady job before the
   arena; with the arena and a 6-line warm page its page still caused 91k page faults and it
   ran 1.14x; with the 30-line page read once 37-39k (and 1.14x / 1.05x in two restarts);
   read twice, 15-17k (steady pages 2-5k, one page of the set always about 20k; 3 processes
   each, `python -m bench.service` loop code), for about 2 s more warm-up. The cold-start table
   now restarts the worker 4 times and gives the median ratio: one restart is one sample of a
   2-3 s job on a shared machine.
4. **Uploads flushed every 256 KB without a copy** (`api/uploads.py`; was 1 MB, copied with
   `bytes(bytearray)`): API peak RSS with 50 concurrent 1 MB uploads 121-122 MB -> 78 MB (two
   runs each, with the pooled client of the time; a 64 KB flush saved nothing more and cost
   1-2 ms CPU per job).
5. In the bench itself: the client polls every 0.25 s, not 0.1 s (at 0.1 s the API and client
   took enough CPU to slow the worker's engine by 5%: 2.63 vs 2.49 s/page, 6 pages), and each
   of the 50 submit clients is its own `AsyncClient` (one client pooling 50 connections spent
   8.6 ms of CPU per upload, as much as the API, and made the tail: p99 1.6 s -> 0.34 s).
6. **The API reads uploads with a 64 KB socket receive buffer** (`api/listen.py`: the API makes
   its listening socket, connections inherit `SO_RCVBUF`). The 110-116 MB peak at 50 concurrent
   1 MB uploads was not our buffers (a flush every byte, 64, 128 or 256 KB gave the same peak,
   as did `MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` and 4-8 threads): tracemalloc at the
   peak showed 24 MB in uvicorn's body chunks, 2-3 per connection of up to 256 KB, because
   uvloop reads 256 KB at a time off a fast socket and uvicorn keeps it until the route asks
   again. With 64 KB the kernel keeps the rest and TCP slows the sender: peak at 50 closed-loop
   clients 112-117 -> 89-92 MB (this script's submit part and 3 alternating runs, old and new
   code back to back; kernel autotuning with the new code: 99-104 MB, 128 KB: 100-101 MB), at
   rest 66 MB as before, no upload refused. The price is in the noise but leans one way: more,
   smaller reads, about 0.5-1 ms more API CPU per job and 5-10% fewer jobs/s at 50 clients.
7. **No copy of the file part in Python** (`api/uploads.py`): the parser's slices of the body
   chunks are kept as views and written with one `writev` per 128 KB on a file opened once (it
   was copied twice, into a slice and a buffer, and reopened for every flush), and a job takes
   two thread hops besides its writes instead of four (queue check, folder and file in one;
   page count, record and enqueue in another). API CPU per job did not move measurably on this
   shared machine (5-8 ms in either version, run to run; 3 alternating runs each, 50 clients:
   median 6.1 old, 6.3 new with kernel autotuning); `perf` shows where it goes: about
   20% the kernel copying the upload into the page cache, 10-15% ext4 creating the job's
   folder and file, 10% thread switches, the rest Python (uvicorn, FastAPI, python-multipart,
   Celery's message, redis-py); the same upload drained by a bare FastAPI route costs 0.6 ms.

8. **Page orientation from unsquashed pieces of lines, confirmed by the recognizer**
   (`worker/engines/rapidocr_engine.py` `page_rotation`; `python -m bench.orientation`). The
   0/180 line classifier saw the 12 longest lines squashed into its 192x48 input and took 7 of
   the 16 upright Russian pages for upside down (each then read twice). It now sees three
   pieces of each line, 4x as wide as high (its own input shape); when more than a quarter of
   the pieces say 180, the recognizer reads 6 pieces as they lie and turned, and the higher
   summed score wins. Upright Russian pages: 7/16 -> 0/16 taken for turned; English pages at
   0/90/180/270: 32/32 upright afterwards, CER 0.0%. Cost on an upright page about 0.11 s of
   CPU (was 0.03-0.09 s); 1.0-1.4 s on a page the classifier doubts, which is re-read anyway.
9. **`auto` decides the script before any rotation re-read** (`worker/routing.py`): rapidocr
   reads the page as it lies; a Latin page goes on to the orientation step as before (no extra
   cost); a page that reads like an unread script gets only the orientation check (turned
   pages are read once more, since a Latin page read upside down also looks unread) and then
   tesseract. An upright Russian page under `auto`: at most one rapidocr pass + tesseract
   (faq_p010: 19.8 -> 12.1 s CPU, mg_p062: 15.6 -> 8.6 s).
10. **Tesseract turns rotated pages** (`worker/engines/tesseract_engine.py`): `language=ru`
   read a page turned 90 or 180 degrees as it lies (garbage). A first read with a mean line
   confidence under 70, or mostly tall line boxes, now asks Tesseract's orientation detection
   (a separate `osd` instance; 0.21-0.31 s per A4 page) and reads the turned page again. The 16
   upright Russian pages: confidence 87-94, never checked, identical text and CPU (30.6 vs
   30.5 s for the set); the same pages turned 90/180/270: 48/48 right rotation and exactly the
   upright text, at about 2.3x the CPU of an upright page.

Measured and left alone: decoding the page PNG in the worker (38 ms per English A4 page, 12 ms
grayscale; about 1.5% of a page), building and writing the three result files (under 1 ms),
a poll (0.85 ms of API CPU), downloading the JSON result (1.5 ms), orjson for the result (the
JSON is under 1 ms to build and write with the standard library), and the job runner's Redis
round trips (about 11 per one-page job, in the table above; at 0.1-0.2 ms each on loopback,
under 0.1% of a 2 s page: pipelining them further would not show).

### Found, not changed here

- **`auto` on Russian pages still costs a whole rapidocr pass** (about 5 s of CPU) before
  tesseract reads the page: the overhead table's *vs named language* column is that price.
  Deciding the script on a sample of lines (detection, then recognition of a few lines) would
  cut it; naming `language=ru` avoids it. A turned Cyrillic page pays a second rapidocr pass.
- **Submit p99 at 50 clients in a closed loop cannot be under 50 ms** on 2 cores: one API
  process takes 5-7 ms of CPU per 1 MB upload (150-200 jobs/s at most), so 50 clients that
  each send again as soon as answered wait 50 / (jobs/s) = 250-400 ms on average (Little's
  law). The paced rows say up to which steady offered load from 50 clients the p99 holds.
- **Two API processes** (two uvicorn processes, 25 clients each, same code): one run gave 244
  against 181 jobs/s closed loop and p99 25 against 126 ms at 100 offered jobs/s, the next
  148 against 173 jobs/s and 180 against 120 ms: on 2 cores shared with the load generator
  and other work the second process wins nothing reliable, and it costs a second 66-80 MB
  (about 155-163 MB for the pair). One process stays the default.
- Celery's `send_task` costs about 0.3-0.5 ms of CPU per job (kombu builds a new
  `redis.Redis` client per publish), a quarter of the API's Python time for the job's own
  work; an `LPUSH` of the same message would cost 0.04 ms but would copy kombu's message
  format into our code. Left alone.
- `os.cpu_count()` (onnxruntime's auto threads) sees the host's cores, not a container's CPU
  limit: set `RAPIDOCR_THREADS` in containers with a CPU limit."""


# --- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="few pages: for development")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma list of " + ", ".join(PARTS)
    )
    # 20: with 10 (about 19 s a batch) service / loop moved by +-4% between runs
    parser.add_argument("--en-pages", type=int, default=20)
    parser.add_argument("--ru-pages", type=int, default=16)
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("OCRQ_BENCH_DB", 5)))
    parser.add_argument("--flush", action="store_true", help="empty the Redis db first")
    parser.add_argument("--no-write", action="store_true", help="print only, no BENCHMARKS.md")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="PICKLE",
        help=f"measure nothing: report the figures a run saved (each run saves {LAST_RUN})",
    )
    args = parser.parse_args()
    if args.render:
        with args.render.open("rb") as fh:
            saved = pickle.load(fh)
        _publish(_render(saved), args)
        return
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    sizes = Sizes.of(args)

    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    db = redis.Redis.from_url(redis_url)
    if db.dbsize() and not args.flush:
        sys.exit(f"Redis db {args.redis_db} holds {db.dbsize()} keys: pass --flush to empty it")
    db.flushdb()

    res = Results()
    res.loads["start"], res.loads["start5"], res.loads["start15"] = os.getloadavg()
    started = time.perf_counter()
    log(f"{os.cpu_count()} cores, {platform.machine()}; parts {', '.join(parts)}")
    en = english_pages(sizes.en_pages)
    ru = russian_pages(sizes.ru_pages)

    if "overhead" in parts:
        run_overhead(redis_url, en, ru, res, auto_ru="peer" in parts)
    if "peer" in parts:
        run_peer(ru, res)
        if "ru/auto" not in res.service:
            stack = BenchStack.create(redis_url)
            try:
                stack.start_api()
                stack.start_workers(1)
                res.service["ru/ru"] = service_batch(stack, ru, "ru", "service, language=ru")
                res.service["ru/auto"] = service_batch(stack, ru, "auto", "service, language=auto")
            finally:
                stack.close()
    if "coldstart" in parts:
        run_coldstart(redis_url, en[0], sizes.steady_jobs, res)
    if "submit" in parts:
        run_submit(redis_url, sizes.submit_requests, sizes.paced_seconds, res, sizes.paced_rates)
    if "scaling" in parts:
        reuse = res.service.get("en/en")
        en_scaling = en[: sizes.scaling_pages]
        if reuse is not None and len(reuse.pages) != len(en_scaling):
            reuse = None
        run_scaling(redis_url, en_scaling, ru, res, reuse)
    res.loads["end"] = load_average()
    db.flushdb()

    saved = {"res": res, "sizes": sizes, "en": en, "ru": ru}
    saved["seconds"] = time.perf_counter() - started
    LAST_RUN.parent.mkdir(parents=True, exist_ok=True)
    with LAST_RUN.open("wb") as fh:
        pickle.dump(saved, fh)
    _publish(_render(saved), args)


def _render(saved: dict) -> str:
    body = report(saved["res"], saved["sizes"], saved["en"], saved["ru"])
    return body + f"\n\nWhole run: {saved['seconds']:.0f} s."


def _publish(body: str, args: argparse.Namespace) -> None:
    print(body)
    if not args.no_write:
        update_section("service", body)


if __name__ == "__main__":
    main()
