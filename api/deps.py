"""FastAPI dependencies as typed aliases."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import Unauthorized
from api.readiness import ServiceHealth
from api.service import JobAccess
from api.submitting import Submissions
from api.tenants import Tenants
from api.watching import JobWatch
from shared.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_submissions(request: Request) -> Submissions:
    return request.app.state.submissions


async def get_service(request: Request) -> JobAccess:
    return request.app.state.service


async def get_health(request: Request) -> ServiceHealth:
    return request.app.state.health


async def get_watch(request: Request) -> JobWatch:
    return request.app.state.watch


async def get_tenants(request: Request) -> Tenants:
    return request.app.state.tenants


SettingsDep = Annotated[Settings, Depends(get_settings)]
SubmissionsDep = Annotated[Submissions, Depends(get_submissions)]
ServiceDep = Annotated[JobAccess, Depends(get_service)]  # reading and cancelling jobs
HealthDep = Annotated[ServiceHealth, Depends(get_health)]
WatchDep = Annotated[JobWatch, Depends(get_watch)]  # waiting on a job's events
TenantsDep = Annotated[Tenants, Depends(get_tenants)]  # quotas and usage of the API keys

_bearer = HTTPBearer(auto_error=False, description="One of the keys in API_KEYS")


async def require_api_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """When API_KEYS is set, demand `Authorization: Bearer <key>` (compared in constant time).

    create_app adds this to the /jobs routes only when API_KEYS is set, so OpenAPI declares
    bearer auth exactly when it is enforced.
    """
    return _matching_key(settings, credentials.credentials if credentials else "")


async def current_api_key(request: Request, settings: SettingsDep) -> str | None:
    """The key the caller authenticated with, or None when auth is off. Declares no security:
    enforcement is require_api_key's job."""
    scheme, _, offered = request.headers.get("authorization", "").partition(" ")
    return _matching_key(settings, offered.strip() if scheme.lower() == "bearer" else "")


def _matching_key(settings: Settings, offered: str) -> str | None:
    keys = settings.api_key_set
    if not keys:
        return None
    matched = None
    for key in keys:  # check every key, so timing does not tell which one is close
        if hmac.compare_digest(offered.encode(), key.encode()):
            matched = key
    if matched is None:
        raise Unauthorized(
            "missing or invalid API key: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return matched


# The key the caller authenticated with (None when auth is off): scopes its Idempotency-Keys.
ApiKeyDep = Annotated[str | None, Depends(current_api_key)]
