"""GET /usage: the caller's API key's usage (today and the last 31 days) and its limits."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import ApiKeyDep, TenantsDep
from api.errors import error_responses
from api.schemas import UsageView
from shared.error_codes import ErrorCode

# create_app adds the API-key dependency when API_KEYS is set (401 without a key).
router = APIRouter(tags=["usage"])


@router.get(
    "/usage",
    summary="The API key's usage per UTC day and its quotas",
    description="Jobs and pages submitted, pages read and failed, engine seconds by engine: "
    "today and each of the last 31 days, counted over every API process and worker; and the "
    "key's quotas (API_KEYS_FILE `pages_per_day=`, `max_queued=`, `max_pages_per_job=`). "
    "With auth off: the totals of every job sent without a key (`anonymous`).",
    responses=error_responses(
        ErrorCode.unauthorized,
        ErrorCode.queue_unavailable,
        unauthorized="missing or invalid API key",
        queue_unavailable="Redis (where usage is kept) unreachable",
    ),
)
async def get_usage(tenants: TenantsDep, api_key: ApiKeyDep) -> UsageView:
    return await run_in_threadpool(tenants.usage, api_key)
