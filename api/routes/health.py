"""Probes and the service index."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import HealthDep
from api.schemas import ErrorBody, Health, Readiness, ServiceInfo, WorkerView
from shared import __version__
from shared.errors import QueueUnavailable

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers (touches nothing else)")
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    summary="Readiness: Redis answers; live workers, warm, and whether their engine answers",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Redis unreachable"}},
)
def ready(health: HealthDep) -> Readiness | JSONResponse:
    try:
        beats = health.live_workers()
        queues = health.queue_depths()
    except QueueUnavailable:
        body = Readiness(
            status="unavailable", redis=False, workers=0, engines_warm=False, worker_details=[]
        )
        return JSONResponse(body.model_dump(), status_code=503)
    details = [
        WorkerView(
            worker_id=b.worker_id,
            engine=b.engine,
            device=b.device,
            warm=b.warm,
            warmup_seconds=b.warmup_seconds,
            engine_available=b.engine_available,
            engine_error=b.engine_error,
        )
        for b in beats
    ]
    return Readiness(
        status="ok",
        redis=True,
        workers=len(details),
        engines_warm=any(w.warm for w in details),
        engines_available=any(w.warm and w.engine_available for w in details),
        worker_details=details,
        queues=queues,
    )


@router.get("/", summary="Service name, version and links", responses={500: {"model": ErrorBody}})
async def index() -> ServiceInfo:
    return ServiceInfo(
        name="ocrq",
        version=__version__,
        docs="/docs",
        redoc="/redoc",
        openapi="/openapi.json",
        health="/health",
        ui="/ui/",
    )
