"""The app factory: create_app(settings) wires Redis, JobStore, Celery and the routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from celery import Celery
from fastapi import Depends, FastAPI
from kombu.exceptions import KombuError
from redis import RedisError
from starlette.concurrency import run_in_threadpool

from api.deps import require_api_key
from api.docs_pages import install_docs
from api.engine_choice import EngineChoice
from api.errors import install_error_handlers
from api.event_hub import EventHub
from api.openapi import install_openapi, operation_id
from api.readiness import ServiceHealth
from api.routes import health, jobs, metrics, ocr, pages, streams, usage
from api.security_headers import SecurityHeaders
from api.service import JobAccess
from api.storage_calls import StorageCalls
from api.submitting import Submissions
from api.tenants import Tenants
from api.ui import install_ui
from api.watching import JobWatch
from api.worker_watch import WorkerWatch
from shared import __version__
from shared.jobs import JobStore, WorkerRegistry, connect_settings_redis, recover_orphans
from shared.queue import make_celery
from shared.settings import Settings
from shared.storage import ensure_writable_dir
from shared.storage.s3 import check_storage
from shared.tracing import active as tracing_active

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """Build the API. Nothing here waits for Redis: /health answers even while it is down."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # `python -m api` ran these before listening (exit 2); an app built another way (tests,
        # another server) meets the same checks here
        where = check_start(settings)
        log.info("upload dir %s is writable; job files in %s", settings.temp_dir, where)
        client = connect_settings_redis(settings)
        store = JobStore.of_settings(client, settings)
        celery = make_celery(settings)
        workers = WorkerRegistry(client)
        engines = EngineChoice(settings, workers)
        storage = StorageCalls()
        tenants = app.state.tenants = Tenants(settings, store)
        app.state.submissions = Submissions(settings, store, celery, engines, storage, tenants)
        app.state.service = JobAccess(settings, store, storage)
        app.state.health = ServiceHealth(store, workers, settings.key_ring)
        hub: EventHub = app.state.hub
        app.state.watch = JobWatch(app.state.service, hub, settings.stream_keepalive_seconds)
        hub.start()  # connects in the background: /health answers with Redis down
        sweeper = asyncio.create_task(_sweep_orphans(store, celery, settings))
        watch = app.state.worker_watch = _worker_watch(settings, workers)
        if watch is not None:
            watch.start()
        log.info("API ready on port %d (auth %s)", settings.port, _auth_state(settings))
        yield
        if watch is not None:
            watch.stop()
        sweeper.cancel()
        await hub.stop()
        storage.close()
        client.close()

    app = FastAPI(
        title="ocrq",
        version=__version__,
        description=(
            "Asynchronous OCR: POST a file to /jobs, get a job id at once, follow "
            "GET /jobs/{id}/events (or poll GET /jobs/{id}, `?wait=N` to long-poll) until it "
            "succeeds, then fetch GET /jobs/{id}/result. One-shot clients: POST /ocr."
        ),
        lifespan=lifespan,
        redirect_slashes=False,  # api/errors.py redirects, with a relative Location
        docs_url=None,  # install_docs serves /docs and /redoc with their assets, no CDN
        redoc_url=None,
        generate_unique_id_function=operation_id,  # `create_job`, not `create_job_jobs_post`
    )
    app.state.settings = settings
    # before the lifespan starts, so the server can end open streams at shutdown (api/__main__)
    app.state.hub = EventHub(settings.redis_url)
    app.state.worker_watch = None  # the lifespan starts it when LIVENESS_WORKER names one
    install_error_handlers(app)
    app.add_middleware(SecurityHeaders)  # nosniff, never framed, a CSP per kind of response
    tracing = tracing_active()  # on: python -m api started it (OTEL_EXPORTER_OTLP_ENDPOINT)
    if tracing is not None:
        from api.request_spans import RequestSpans  # imports OpenTelemetry: only when on

        app.add_middleware(RequestSpans, tracing=tracing)  # outermost: spans the whole request
    app.include_router(health.router)
    app.include_router(metrics.router)
    auth = [Depends(require_api_key)] if settings.api_key_set else []
    app.include_router(jobs.router, dependencies=auth)
    app.include_router(streams.router, dependencies=auth)
    app.include_router(ocr.router, dependencies=auth)
    app.include_router(pages.router, dependencies=auth)
    app.include_router(usage.router, dependencies=auth)
    install_openapi(app)  # every 422 an ErrorBody, as the handler answers it
    install_docs(app)
    install_ui(app, settings)
    return app


def _worker_watch(settings: Settings, workers: WorkerRegistry) -> WorkerWatch | None:
    """The watch on the worker LIVENESS_WORKER names, or None (/health watches nothing)."""
    if not settings.liveness_worker:
        return None
    return WorkerWatch(
        workers,
        settings.liveness_worker,
        settings.liveness_stale_seconds,
        settings.liveness_start_grace_seconds,
    )


def check_start(settings: Settings) -> str:
    """What the API needs before it listens: TEMP_DIR writable and the job files' place
    reachable (DirectoryNotWritable or StorageUnavailable if not); where job files live."""
    ensure_writable_dir(settings.temp_dir, "TEMP_DIR")
    return check_storage(settings)


async def _sweep_orphans(store: JobStore, celery: Celery, settings: Settings) -> None:
    """Requeue jobs whose worker died, even when no worker is left to do it."""
    while True:
        await asyncio.sleep(settings.orphan_sweep_seconds)
        try:
            await run_in_threadpool(recover_orphans, store, celery, settings)
        except (RedisError, KombuError) as exc:
            log.debug("orphan sweep skipped: %s", exc)
        except Exception:  # the sweeper must outlive any single failure
            log.exception("orphan sweep failed")


def _auth_state(settings: Settings) -> str:
    count = len(settings.api_key_set)
    return f"on, {count} key(s)" if count else "off (API_KEYS empty)"
