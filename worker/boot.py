"""Worker boot: check dirs, build and warm the engine, publish a heartbeat, then consume."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from datetime import UTC, datetime

from redis import Redis, RedisError

from shared.job_leases import JobLeases
from shared.jobs import JobStore, connect_redis
from shared.metrics import Metrics
from shared.queue import QUEUE, make_celery
from shared.recovery import recover_orphans
from shared.settings import Settings
from shared.storage import DirectoryNotWritable, ensure_writable_dir
from shared.workers import WorkerBeat, WorkerRegistry, default_worker_id
from worker.engines import EngineError, OcrEngine, build_engine
from worker.heartbeat import Heartbeat
from worker.job_watch import JobWatch, exit_after_timeout
from worker.periodic import Periodic
from worker.pipeline import JobRunner
from worker.retention import start_retention_sweeps
from worker.routing import ALL_SCRIPTS, EngineRouter
from worker.tasks import register_tasks

log = logging.getLogger("worker.boot")


def check_dirs(settings: Settings) -> None:
    for label, path in (("TEMP_DIR", settings.temp_dir), ("OUTPUT_DIR", settings.output_dir)):
        ensure_writable_dir(path, label)
        log.info("%s=%s is writable", label, path)


def build_engines(settings: Settings) -> list[OcrEngine]:
    """OCR_ENGINE, then each fallback engine that reads a script the ones before it cannot."""
    engines = [build_engine(settings)]
    if engines[0].scripts >= ALL_SCRIPTS:
        return engines  # e.g. paddleocr-vl: no fallback needed (nor installed)
    for name in (n.strip() for n in settings.ocr_fallback_engines.split(",")):
        if not name:
            continue
        engine = build_engine(settings.model_copy(update={"ocr_engine": name}))
        covered = frozenset().union(*(e.scripts for e in engines))
        if engine.scripts - covered:
            engines.append(engine)
        else:
            log.info("fallback engine %s adds no script; not used", name)
    return engines


def log_engine(engine: OcrEngine) -> None:
    info = engine.info()
    log.info(
        "engine %s on %s reads %s; versions %s; python %s",
        info.name,
        info.device,
        "+".join(sorted(engine.scripts)),
        ", ".join(f"{k} {v}" for k, v in info.versions.items()),
        sys.version.split()[0],
    )


def boot_and_consume(settings: Settings, worker_name: str | None = None) -> int:
    """Everything before the first job happens here; returns the process exit code."""
    try:
        check_dirs(settings)
    except DirectoryNotWritable as exc:
        log.error("cannot start: %s", exc)
        return 2
    worker_id = worker_name or default_worker_id()
    client = connect_redis(settings.redis_url)
    # A restarted container keeps its host name: the previous process's warm beat may live on
    # for WORKER_HEARTBEAT_TTL, and `python -m worker.probe` must not take it for this one's.
    with contextlib.suppress(RedisError):
        WorkerRegistry(client).remove(worker_id)
    started = time.perf_counter()
    try:
        engines = build_engines(settings)
        info = engines[0].info()
        for engine in engines:
            log_engine(engine)
        beat = WorkerBeat(
            worker_id=worker_id,
            engine=info.name,
            device=info.device,
            warm=False,
            pid=os.getpid(),
            started_at=datetime.now(UTC).isoformat(),
            versions={k: v for e in engines for k, v in e.info().versions.items()},
            engines=[e.name for e in engines],
        )
        heartbeat = Heartbeat(WorkerRegistry(client), beat, settings.worker_heartbeat_ttl)
        heartbeat.start()
        for engine in engines:
            engine.warm()
    except EngineError as exc:
        log.error("cannot start: engine %s: %s: %s", settings.ocr_engine, exc.code, exc.message)
        return 3
    warmup = time.perf_counter() - started
    log.info("engine warm in %.2f s", warmup)
    beat.warm, beat.warmup_seconds = True, round(warmup, 3)
    heartbeat.publish()
    start_retention_sweeps(settings, JobStore(client, settings.job_ttl_seconds))

    app = make_celery(settings)
    holder = f"{worker_id}:{os.getpid()}"  # unique per process: a restart is a new holder
    runner, watch = build_runner(settings, client, EngineRouter(engines), holder)
    register_tasks(app, runner)
    watch.start()
    leases = runner.leases
    sweeper = Periodic(
        "orphan-sweep",
        settings.orphan_sweep_seconds,
        lambda: recover_orphans(leases, app, settings),
    )
    sweeper.start()
    # solo pool: the warm engine lives in this process; scale with more worker processes.
    worker = app.Worker(
        hostname=f"ocr@{worker_id}",
        queues=[QUEUE],
        pool_cls="solo",
        concurrency=1,
        loglevel=settings.log_level,
        without_gossip=True,
        without_mingle=True,
        optimization="fair",
    )
    try:
        worker.start()
    finally:
        sweeper.stop()
        watch.stop()
        heartbeat.stop()
    return worker.exitcode or 0


def build_runner(
    settings: Settings,
    client: Redis,
    router: EngineRouter,
    holder: str,
    store: JobStore | None = None,
) -> tuple[JobRunner, JobWatch]:
    """The job runner and its watchdog (lease renewal, time limits) for this process."""
    store = store or JobStore(client, settings.job_ttl_seconds)
    leases = JobLeases(client, settings.job_ttl_seconds)

    def fail_timed_out(job_id: str, reason: str) -> None:
        try:
            runner.fail(job_id, "timeout", reason)
        finally:
            leases.release(job_id, holder)

    watch = JobWatch(
        leases,
        holder,
        settings.job_lease_seconds,
        settings.job_timeout_seconds,
        settings.page_timeout_seconds,
        on_timeout=exit_after_timeout,
        fail_job=fail_timed_out,
    )
    runner = JobRunner(settings, store, router, leases, holder, watch, Metrics(client))
    return runner, watch
