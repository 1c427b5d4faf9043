"""The errors only the API raises, and every error mapped to JSON {"error": {"code", "message"}}
with its status: HTTP_STATUS is the one place a code meets its HTTP status. Routes document
theirs with `error_responses` (OpenAPI), and the README's error table is checked against it
(tests/unit/test_error_table.py)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from api.schemas import ErrorBody
from shared.error_codes import ErrorCode
from shared.errors import QueueUnavailable, ServiceError, StorageUnavailable

log = logging.getLogger(__name__)


class EmptyUpload(ServiceError):
    code = ErrorCode.empty_file


class MissingFile(ServiceError):
    code = ErrorCode.file_missing


class FileAndSourceUrl(ServiceError):
    """The form holds both a file and a source_url: exactly one of them says what to read."""

    code = ErrorCode.file_and_source_url


class BadRequestBody(ServiceError):
    code = ErrorCode.invalid_request


class Unauthorized(ServiceError):
    code = ErrorCode.unauthorized


class TooManyPages(ServiceError):
    code = ErrorCode.too_many_pages


class ImageNotFound(ServiceError):
    """GET /jobs/{id}/images/{name}: no stored crop of that name in the job's result."""

    code = ErrorCode.image_not_found


class PageNotFound(ServiceError):
    """GET /jobs/{id}/pages/{n}/image: the job's result has no page n."""

    code = ErrorCode.page_not_found


class PageTooLarge(ServiceError):
    """GET /jobs/{id}/pages/{n}/image: page n has more pixels than a page may have."""

    code = ErrorCode.image_too_large


class ResultGone(ServiceError):
    """The job succeeded, but its result files are no longer stored: submit it again."""

    code = ErrorCode.result_gone


def result_gone(job_id: str) -> ResultGone:
    return ResultGone(
        f"job {job_id} succeeded, but its result is no longer stored (removed, or this API "
        "reads another STORAGE_URL / OUTPUT_DIR); submit the file again for a new job"
    )


class ResultNotReady(ServiceError):
    code = ErrorCode.result_not_ready


class JobFailed(ServiceError):
    code = ErrorCode.job_failed


class UploadTooLarge(ServiceError):
    code = ErrorCode.file_too_large


class UnsupportedMedia(ServiceError):
    code = ErrorCode.unsupported_media_type


class JobCanceled(ServiceError):
    code = ErrorCode.job_canceled


class JobAlreadyFinished(ServiceError):
    code = ErrorCode.job_finished


class IdempotencyKeyInUse(ServiceError):
    """Another request with the same Idempotency-Key is still uploading: retry shortly."""

    code = ErrorCode.idempotency_key_in_use


class QueueFull(ServiceError):
    """More than MAX_QUEUED_JOBS wait: back-pressure, the client retries after Retry-After."""

    code = ErrorCode.queue_full


class QuotaExceeded(ServiceError):
    """The submission would pass one of its API key's quotas (API_KEYS_FILE): refused whole."""

    code = ErrorCode.quota_exceeded


class EngineNotServed(ServiceError):
    """Workers are live, but none serves the job's engine kind: it would wait for nobody."""

    code = ErrorCode.engine_not_served


class IdempotencyKeyReused(ServiceError):
    """The Idempotency-Key is known, but the upload (file or form fields) differs."""

    code = ErrorCode.idempotency_key_reused


class FormTooLarge(ServiceError):
    """Too many form fields, one too long, or too much of the body outside the file part."""

    code = ErrorCode.form_too_large


class InsufficientStorage(ServiceError):
    """No room left on disk (TEMP_DIR for an upload, OUTPUT_DIR for a result)."""

    code = ErrorCode.insufficient_storage


class RequestTimeout(ServiceError):
    """The request's head, or the next piece of its body, did not arrive in time."""

    code = ErrorCode.request_timeout


class HeadersTooLarge(ServiceError):
    """The request line and headers together pass MAX_HEADER_BYTES."""

    code = ErrorCode.headers_too_large


# The status of every code the API answers with (a job failure's code is no HTTP answer).
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.empty_file: 400,
    ErrorCode.http_400: 400,
    ErrorCode.invalid_request: 400,
    ErrorCode.unauthorized: 401,
    ErrorCode.http_403: 403,
    ErrorCode.image_not_found: 404,
    ErrorCode.job_not_found: 404,
    ErrorCode.page_not_found: 404,
    ErrorCode.not_found: 404,
    ErrorCode.method_not_allowed: 405,
    ErrorCode.request_timeout: 408,
    ErrorCode.idempotency_key_in_use: 409,
    ErrorCode.job_canceled: 409,
    ErrorCode.job_failed: 409,
    ErrorCode.job_finished: 409,
    ErrorCode.result_not_ready: 409,
    ErrorCode.result_gone: 410,
    ErrorCode.file_too_large: 413,
    ErrorCode.form_too_large: 413,
    ErrorCode.http_413: 413,
    ErrorCode.unsupported_media_type: 415,
    ErrorCode.file_missing: 422,
    ErrorCode.idempotency_key_reused: 422,
    ErrorCode.invalid_option: 422,
    ErrorCode.invalid_callback_url: 422,
    ErrorCode.invalid_source_url: 422,
    ErrorCode.file_and_source_url: 422,
    ErrorCode.image_too_large: 422,
    ErrorCode.too_many_pages: 422,
    ErrorCode.validation_error: 422,
    ErrorCode.queue_full: 429,
    ErrorCode.quota_exceeded: 429,
    ErrorCode.headers_too_large: 431,
    ErrorCode.internal_error: 500,
    ErrorCode.queue_unavailable: 503,
    ErrorCode.engine_not_served: 503,
    ErrorCode.storage_unavailable: 503,
    ErrorCode.worker_unresponsive: 503,
    ErrorCode.insufficient_storage: 507,
}
# The headers an answer with the code carries besides its body, as OpenAPI declares them: a
# code whose raise sets one of these belongs here (tests/unit/api/test_openapi.py).
RETRY_AFTER = "Retry-After"
ERROR_HEADERS: dict[ErrorCode, tuple[str, ...]] = {
    ErrorCode.unauthorized: ("WWW-Authenticate",),
    ErrorCode.idempotency_key_in_use: (RETRY_AFTER,),
    ErrorCode.result_not_ready: (RETRY_AFTER,),
    ErrorCode.queue_full: (RETRY_AFTER,),
    ErrorCode.engine_not_served: (RETRY_AFTER,),
    ErrorCode.quota_exceeded: (RETRY_AFTER,),
}
_HEADER_DOCS: dict[str, dict[str, Any]] = {
    RETRY_AFTER: {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWW-Authenticate": {
        "description": "`Bearer`: the scheme the API takes",
        "schema": {"type": "string"},
    },
}
# a route's OpenAPI `responses`: status -> {"model", "description", ...}
Responses = dict[int | str, dict[str, Any]]


def error_responses(*codes: ErrorCode, **why: str) -> Responses:
    """OpenAPI `responses` for the error codes a route answers with: each under the status
    HTTP_STATUS gives it, described as "`code`: why" (`why` keyed by the code's name), with
    the headers (ERROR_HEADERS) its codes send."""
    by_status: dict[int, list[ErrorCode]] = {}
    for code in codes:
        by_status.setdefault(HTTP_STATUS[code], []).append(code)
    responses: Responses = {}
    for status, listed in sorted(by_status.items()):
        notes = [
            f"`{c.value}`: {why[c.value]}" if c.value in why else f"`{c.value}`" for c in listed
        ]
        responses[status] = {"model": ErrorBody, "description": "; or ".join(notes)}
        if headers := _headers_of(listed):
            responses[status]["headers"] = headers
    return responses


def _headers_of(codes: list[ErrorCode]) -> dict[str, Any]:
    """The OpenAPI `headers` of a response answering with one of `codes`: each header with the
    codes that send it."""
    senders: dict[str, list[str]] = {}
    for code in codes:
        for header in ERROR_HEADERS.get(code, ()):
            senders.setdefault(header, []).append(f"`{code.value}`")
    return {
        header: {
            **_HEADER_DOCS[header],
            "description": f"{_HEADER_DOCS[header]['description']} (with {', '.join(names)})",
        }
        for header, names in senders.items()
    }


# Starlette's own HTTPExceptions (no route, wrong method, ...): the code each status gets
_STARLETTE_CODES = {
    400: ErrorCode.http_400,
    401: ErrorCode.unauthorized,
    403: ErrorCode.http_403,
    404: ErrorCode.not_found,
    405: ErrorCode.method_not_allowed,
    413: ErrorCode.http_413,
}

# what a client is told of a 503; the cause (with Redis's address) goes to the log only
QUEUE_UNAVAILABLE_MESSAGE = "queue unavailable: the job store cannot be reached; retry later"
# the same for the bucket: its name and keys go to the log only
STORAGE_UNAVAILABLE_MESSAGE = (
    "storage unavailable: the bucket STORAGE_URL names cannot be reached; retry later"
)


def error_response(
    status: int, code: ErrorCode, message: str, headers: dict[str, str] | None = None
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
    elif isinstance(exc, StorageUnavailable):
        log.warning("answered 503 storage_unavailable: %s", message)
        message = STORAGE_UNAVAILABLE_MESSAGE
    return error_response(HTTP_STATUS[exc.code], exc.code, message, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {err.get('msg')}")
    return error_response(422, ErrorCode.validation_error, "; ".join(parts) or "invalid request")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and (location := _slash_toggled(request)):
        return RedirectResponse(location, status_code=307)
    code = _STARLETTE_CODES.get(exc.status_code, ErrorCode.http_error)
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
    return error_response(500, ErrorCode.internal_error, "internal error; see the API logs")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
