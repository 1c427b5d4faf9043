"""Map every error to JSON {"error": {"code", "message"}} with the right status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from shared.errors import QueueUnavailable, ServiceError

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
# what a client is told of a 503; the cause (with Redis's address) goes to the log only
QUEUE_UNAVAILABLE_MESSAGE = "queue unavailable: the job store cannot be reached; retry later"


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    message = exc.message
    if isinstance(exc, QueueUnavailable):
        log.warning("answered 503 queue_unavailable: %s", message)
        message = QUEUE_UNAVAILABLE_MESSAGE
    return error_response(exc.status_code, exc.code, message, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {err.get('msg')}")
    return error_response(422, "validation_error", "; ".join(parts) or "invalid request")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and (location := _slash_toggled(request)):
        return RedirectResponse(location, status_code=307)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(exc.status_code, code, str(exc.detail), headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method any route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        route_methods = getattr(route, "methods", None)
        if match is not Match.NONE and route_methods:
            methods |= route_methods
    return sorted(methods)


def _slash_toggled(request: Request) -> str | None:
    """A relative URL for the path with its trailing slash added or removed, if a route
    serves that path (Starlette's own redirect builds an absolute URL from the Host header)."""
    path = request.scope["path"]
    raw = request.scope.get("raw_path", path.encode()).decode("latin-1")
    toggled = raw.rstrip("/") if raw.endswith("/") else raw + "/"
    if toggled in ("", raw) or path == "/":
        return None
    scope = {**request.scope, "path": path.rstrip("/") if path.endswith("/") else path + "/"}
    if not any(route.matches(scope)[0] is not Match.NONE for route in request.app.router.routes):
        return None
    query = request.scope.get("query_string", b"").decode("latin-1")
    return "/" + toggled.lstrip("/") + (f"?{query}" if query else "")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; see the API logs")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
