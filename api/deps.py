"""FastAPI dependencies as typed aliases."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.service import JobService
from shared.errors import Unauthorized
from shared.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_service(request: Request) -> JobService:
    return request.app.state.service


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[JobService, Depends(get_service)]

_bearer = HTTPBearer(auto_error=False, description="One of the keys in API_KEYS")


def require_api_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """When API_KEYS is set, demand `Authorization: Bearer <key>` (compared in constant time)."""
    keys = settings.api_key_set
    if not keys:
        return None
    offered = credentials.credentials if credentials else ""
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
ApiKeyDep = Annotated[str | None, Depends(require_api_key)]
