"""Probes and the service index."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import HealthDep
from api.errors import HTTP_STATUS, error_response, error_responses
from api.schemas import ErrorBody, Health, Readiness, ServiceInfo, WorkerView
from api.worker_watch import WorkerWatch
from shared import __version__
from shared.error_codes import ErrorCode
from shared.errors import QueueUnavailable

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Liveness: the process answers (and, when LIVENESS_WORKER is set, its worker beats)",
    response_model=Health,
    description="The path to probe for liveness, and the one probe path of a one-container "
    "deployment (deploy/all-in-one.sh). Answers at once, touching neither Redis nor an engine: "
    "200 while the worker loads its models, however long that takes. With LIVENESS_WORKER set "
    "(deploy/all-in-one.sh sets it to its worker), a background check reads that worker's "
    "heartbeat each second, and this answers 503 `worker_unresponsive` once it has been missing "
    "past LIVENESS_STALE_SECONDS (or no first beat came within LIVENESS_START_GRACE_SECONDS): "
    "restart the container. Redis unreachable never fails it.",
    responses=error_responses(
        ErrorCode.worker_unresponsive,
        worker_unresponsive="the worker LIVENESS_WORKER names has stopped beating (hung or "
        "gone); the message says for how long",
    ),
)
async def get_health(request: Request) -> Health | JSONResponse:
    watch: WorkerWatch | None = request.app.state.worker_watch
    if watch is not None and not (verdict := watch.verdict).alive:
        code = ErrorCode.worker_unresponsive
        return error_response(HTTP_STATUS[code], code, verdict.message)
    return Health()


@router.get(
    "/ready",
    summary="Readiness: Redis answers; live workers, warm, and whether their engine answers",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Redis unreachable"}},
)
def get_readiness(health: HealthDep) -> Readiness | JSONResponse:
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
async def get_service_info() -> ServiceInfo:
    return ServiceInfo(
        name="ocrq",
        version=__version__,
        docs="/docs",
        redoc="/redoc",
        openapi="/openapi.json",
        health="/health",
        ui="/ui/",
    )
