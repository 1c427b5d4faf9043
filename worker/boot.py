"""Worker boot: check dirs, build and warm the engine, publish a heartbeat, then consume."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from datetime import UTC, datetime

from redis import RedisError

from shared.error_codes import ErrorCode
from shared.errors import StorageUnavailable
from shared.jobs import (
    JobStore,
    WorkerBeat,
    WorkerRegistry,
    connect_settings_redis,
    default_worker_id,
    recover_orphans,
)
from shared.jobs.dispatch import Dispatch
from shared.jobs.queues import worker_queues
from shared.queue import make_celery
from shared.settings import Settings
from shared.storage import DirectoryNotWritable, ensure_writable_dir
from shared.storage.s3 import check_storage
from worker.batcher import PageBatcher
from worker.engines import BatchingEngine, EngineError, OcrEngine, build_engine
from worker.heartbeat import Heartbeat
from worker.page_reading import BatchReader
from worker.periodic import Periodic
from worker.pipeline import JobRunner
from worker.recycling import EXIT_RECYCLE, RecyclePolicy, Recycler
from worker.retention import start_retention_sweeps
from worker.routing import ALL_SCRIPTS, EngineRouter
from worker.tasks import register_tasks
from worker.watchdog import JobWatchdog, exit_after_timeout, lease_of
from worker.webhooks.service import start_webhooks

log = logging.getLogger("worker.boot")


def check_dirs(settings: Settings) -> None:
    for label, path in (("TEMP_DIR", settings.temp_dir), ("OUTPUT_DIR", settings.output_dir)):
        ensure_writable_dir(path, label)
        log.info("%s=%s is writable", label, path)
    log.info("job files in %s", check_storage(settings))


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


def boot_and_consume(
    settings: Settings, worker_name: str | None = None, recycled: bool = False
) -> int:
    """Everything before the first job happens here; returns the process exit code.

    `recycled`: the supervisor started this process after its predecessor was recycled.
    """
    try:
        check_dirs(settings)
    except (DirectoryNotWritable, StorageUnavailable) as exc:
        log.error("cannot start: %s", exc)
        return 2
    worker_id = worker_name or default_worker_id()
    client = connect_settings_redis(settings)
    # A restarted container keeps its host name: the previous process's warm beat may live on
    # for WORKER_HEARTBEAT_TTL, and `python -m worker.probe` must not take it for this one's.
    # A recycled predecessor left a not-warm `rewarming` beat instead: kept fresh, so /ready
    # never shows the worker missing while this process builds its engine.
    previous = None
    with contextlib.suppress(RedisError):
        previous = carry_rewarming_beat(WorkerRegistry(client), worker_id, settings, recycled)
    started = time.perf_counter()
    # A not-warm beat from the start, before the engine is built: building PaddleOCRVL loads
    # (or downloads) its models, minutes during which the worker is alive, and a liveness check
    # that watches this heartbeat (LIVENESS_WORKER, api/worker_watch.py) must see it so.
    beat = WorkerBeat(
        worker_id=worker_id,
        engine=settings.ocr_engine,
        device="",  # known once the engine is built
        warm=False,
        pid=os.getpid(),
        started_at=datetime.now(UTC).isoformat(),
        engines=[settings.ocr_engine],
    )
    if previous is not None:  # re-warming: the last warm-up says how long it may take
        beat.rewarming, beat.warmup_seconds = True, previous.warmup_seconds
        beat.device, beat.versions, beat.engines = (
            previous.device,
            previous.versions,
            previous.engines,
        )
    heartbeat = Heartbeat(WorkerRegistry(client), beat, settings.worker_heartbeat_ttl)
    heartbeat.start()
    try:
        engines = build_engines(settings)
        info = engines[0].info()
        for engine in engines:
            log_engine(engine)
        beat.engine, beat.device = info.name, info.device
        beat.versions = {k: v for e in engines for k, v in e.info().versions.items()}
        beat.engines = [e.name for e in engines]
        heartbeat.publish()
        for engine in engines:
            engine.warm()
    except EngineError as exc:
        heartbeat.stop()
        log.error("cannot start: engine %s: %s: %s", settings.ocr_engine, exc.code, exc.message)
        return 3
    warmup = time.perf_counter() - started
    log.info("engine warm in %.2f s", warmup)
    beat.warm, beat.warmup_seconds, beat.rewarming = True, round(warmup, 3), False
    heartbeat.publish()
    store = JobStore.of_settings(client, settings)
    start_retention_sweeps(settings, store)
    # beside the job path, never on it: its own Redis client and threads (worker/webhooks/)
    webhooks = start_webhooks(settings)

    app = make_celery(settings)
    holder = f"{worker_id}:{os.getpid()}"  # unique per process: a restart is a new holder
    batcher = build_batcher(settings, engines[0], heartbeat)
    runner, watch = build_runner(settings, store, EngineRouter(engines), holder, batcher=batcher)
    recycler = Recycler(RecyclePolicy.from_settings(settings))
    fallback_queue = worker_queues(engines[0].name)[1]  # a record naming no queue: normal

    dispatch = Dispatch(store, app, settings.fair_share)

    def send_job_ranges(job_id: str) -> None:  # a plan's other ranges, on the job's queue
        dispatch.ranges(job_id, fallback_queue)

    runner.send_ranges = send_job_ranges
    register_tasks(app, runner, recycler, taken=dispatch.taken)
    if batcher is not None:
        batcher.start()
    watch.start()
    store = runner.store
    sweeper = Periodic(
        "orphan-sweep",
        settings.orphan_sweep_seconds,
        lambda: recover_orphans(store, app, settings),
    )
    sweeper.start()
    # solo pool: the warm engine lives in this process; scale with more worker processes. A
    # batching engine is fed by BATCH_JOBS jobs at once, one thread each.
    pool, concurrency = ("threads", settings.batch_jobs) if batcher else ("solo", 1)
    # its engine's queues, highest priority first, then the pre-upgrade `ocr` queue
    queues = worker_queues(engines[0].name)
    log.info("taking %d job(s) at a time (%s pool) from %s", concurrency, pool, ", ".join(queues))
    if recycler.policy.enabled:
        log.info(
            "recycled after %s job(s) or above %s MB of RSS (0 = never)",
            settings.worker_max_jobs,
            f"{settings.worker_max_rss_mb:g}",
        )
    worker = app.Worker(
        hostname=f"ocr@{worker_id}",
        queues=queues,
        pool_cls=pool,
        concurrency=concurrency,
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
        if batcher is not None:
            batcher.stop()
        if worker.exitcode == EXIT_RECYCLE:
            heartbeat.hand_over()
        else:
            heartbeat.stop()
        if webhooks is not None:
            webhooks.stop()
    return worker.exitcode or 0


def carry_rewarming_beat(
    registry: WorkerRegistry, worker_id: str, settings: Settings, recycled: bool
) -> WorkerBeat | None:
    """Keep a recycled predecessor's `rewarming` beat fresh under this pid and return it; any
    other beat of this worker id is removed (None)."""
    previous = registry.get(worker_id) if recycled else None
    if previous is None or not previous.rewarming:
        registry.remove(worker_id)
        return None
    previous.pid, previous.started_at = os.getpid(), datetime.now(UTC).isoformat()
    registry.beat(previous, settings.worker_heartbeat_ttl)
    return previous


def build_batcher(
    settings: Settings, engine: OcrEngine, heartbeat: Heartbeat | None = None
) -> PageBatcher | None:
    """The page batcher of a batching engine (None for the others), reporting outages."""
    if not isinstance(engine, BatchingEngine):
        return None

    def report(available: bool, reason: str | None) -> None:
        if heartbeat is not None:
            heartbeat.beat.engine_available, heartbeat.beat.engine_error = available, reason
            heartbeat.publish()

    # The engine's maximum follows its backend (paddleocr-vl: 4 pages native, 64 on a server);
    # BATCH_SIZE may lower it, never raise it.
    size = min(settings.batch_size or engine.max_batch, engine.max_batch)
    # An engine says how many batches it reads at once (one pipeline each); 1 if it does not.
    in_flight = max(1, min(settings.batch_in_flight, getattr(engine, "max_in_flight", 1)))
    batcher = PageBatcher(
        engine,
        size,
        settings.batch_fill_seconds,
        in_flight=in_flight,
        on_availability=report,
        page_seconds=settings.page_timeout_seconds,
    )
    log.info(
        "engine %s reads batches of up to %d page(s), %d at once, %d page(s) of a batch at "
        "once; a full batch may run %g s (PAGE_TIMEOUT_SECONDS=%d per page read in turn)",
        engine.name,
        size,
        in_flight,
        batcher.pages_at_once,
        batcher.budget(size) or 0,
        settings.page_timeout_seconds,
    )
    return batcher


def build_runner(
    settings: Settings,
    store: JobStore,
    router: EngineRouter,
    holder: str,
    batcher: PageBatcher | None = None,
) -> tuple[JobRunner, JobWatchdog]:
    """The job runner and its watchdog (lease renewal, time limits) for this process."""

    def fail_timed_out(key: str, reason: str) -> None:
        job_id, part = lease_of(key)  # a job, or one of its page ranges
        try:
            runner.fail(job_id, ErrorCode.timeout, reason, part)
        finally:
            store.release(job_id, holder, part)

    def timed_out_beside_others(job_id: str, reason: str) -> None:
        # The job's thread drops its pages; the process (and the other jobs) live on. An engine
        # call that hangs is found by its own budget (`hung_call`): only a restart ends it.
        log.warning("job=%s %s; it stops, the worker and its other jobs run on", job_id, reason)

    watch = JobWatchdog(
        store,
        holder,
        settings.job_lease_seconds,
        settings.job_timeout_seconds,
        settings.page_timeout_seconds,
        on_timeout=exit_after_timeout if batcher is None else timed_out_beside_others,
        fail_job=fail_timed_out,
        # a batching worker's clock stops while its engine is unavailable
        clock=time.monotonic if batcher is None else batcher.working_clock,
        hung_call=None if batcher is None else batcher.overdue_call,
    )
    reader = None
    if batcher is not None:
        reader = BatchReader(
            batcher, store.metrics, router.primary.name, lookahead=batcher.max_batch
        )
    runner = JobRunner(settings, store, router, holder, watch, reader)
    return runner, watch
