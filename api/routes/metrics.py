"""/metrics for Prometheus: counters and histograms from Redis, live gauges."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis import RedisError

from api.deps import HealthDep
from api.errors import error_responses
from shared.error_codes import ErrorCode
from shared.errors import QueueUnavailable

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (jobs by outcome, durations, queue depth, workers)",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
        **error_responses(
            ErrorCode.queue_unavailable,
            queue_unavailable="Redis (where the metrics are kept) unreachable",
        ),
    },
)
def get_metrics(health: HealthDep) -> Response:
    try:
        body = generate_latest(health.metrics.registry())
    except RedisError as exc:
        raise QueueUnavailable(f"metrics are kept in Redis, which is unreachable: {exc}") from exc
    return Response(body, media_type=CONTENT_TYPE_LATEST)
