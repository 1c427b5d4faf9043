"""/jobs: submit, poll, fetch the result. Thin: parse, call Submissions (POST) or JobAccess
(api/service.py: the rest), shape the response."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ApiKeyDep, ServiceDep, SubmissionsDep, WatchDep
from api.errors import Responses, error_responses
from api.file_answers import (
    RESULT_MEDIA_TYPES,
    answered_type,
    content_of,
    file_response,
    result_response,
)
from api.file_links import (
    LINK_RESPONSES,
    Delivery,
    DeliveryQuery,
    delivered,
    result_filename,
)
from api.schemas import JobAccepted, JobView, links_for
from api.service import JobAccess
from api.submitting import IDEMPOTENCY_KEY_PATTERN, Accepted, Submissions
from api.watching import WAIT_LIMIT_SECONDS
from shared.error_codes import ErrorCode
from shared.options import JobOptions
from shared.results import DocumentResult
from shared.source_urls import MAX_SOURCE_URL
from shared.storage import IMAGE_MEDIA_TYPES, IMAGE_NAME_PATTERN

# create_app adds the API-key dependency when API_KEYS is set, so OpenAPI tells the truth.
router = APIRouter(prefix="/jobs", tags=["jobs"])

_WHY = {
    "unauthorized": "missing or invalid API key",
    "job_not_found": "unknown or expired job",
    "queue_unavailable": "Redis (queue and job store) unreachable",
    "storage_unavailable": "the bucket (STORAGE_URL) does not answer",
    "result_gone": "the job succeeded, but its result is no longer stored (removed, or another "
    "STORAGE_URL); submit the file again",
}
_ERRORS = error_responses(
    ErrorCode.unauthorized, ErrorCode.job_not_found, ErrorCode.queue_unavailable, **_WHY
)
ERRORS = _ERRORS  # of every route on a job (api/routes/streams.py, ocr.py too)


def _option_fields() -> dict:
    """The optional form fields, documented from the JobOptions model itself."""
    schema = JobOptions.model_json_schema()
    fields = {}
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        if "anyOf" in prop:  # an optional field: its non-null form
            prop |= next(p for p in prop.pop("anyOf") if p.get("type") != "null")
        if "$ref" in prop:
            enum = schema["$defs"][prop.pop("$ref").split("/")[-1]]["enum"]
            prop |= {"type": "string", "enum": enum}
        fields[name] = prop
    return fields


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "PNG, JPEG, TIFF, WebP, BMP or PDF; sniffed by content. "
                            "Exactly one of `file` and `source_url`",
                        },
                        "source_url": {
                            "type": "string",
                            "maxLength": MAX_SOURCE_URL,
                            "description": "The document by reference instead of `file`: "
                            "`https://...` (a public address, or one SOURCE_ALLOWED_NETWORKS "
                            "names; `http://` only to those), or `s3://bucket/key` from a bucket "
                            "SOURCE_S3_BUCKETS names. Checked at submit (422 "
                            "`invalid_source_url`); the worker fetches it, and a fetch that fails "
                            "fails the job (`source_unreachable`, `source_too_large`, "
                            "`unsupported_media_type`). See docs/sources.md",
                        },
                        **_option_fields(),
                    },
                    "additionalProperties": False,
                }
            }
        },
    }
}

_IDEMPOTENCY_DOC = (
    "Optional. A repeated key (per API key, while its job lives and JOB_TTL_SECONDS after its "
    "end) answers **200** with the "
    "job it created before, header `Idempotent-Replayed: true`, and queues nothing. The repeat "
    "is read like any upload (a bad one gets the same 4xx) and must be the same request: same "
    "file bytes (or `source_url`) and form fields, else **422** `idempotency_key_reused`. A "
    "canceled or expired "
    "job frees its key. `ocrq submit` sends `sha256-<hex of the file>`."
)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description=_IDEMPOTENCY_DOC,
        # declared, not validated here: the service answers a bad key 400 invalid_request
        json_schema_extra={
            "pattern": IDEMPOTENCY_KEY_PATTERN,
            "minLength": 1,
            "maxLength": 255,
        },
    ),
]

_RESULT_FORMATS = Literal["json", "markdown", "text", "pdf", "hocr", "alto"]
_RESULT_DOC = (
    "`json` (default), `markdown` or `text`; or an archive format: `pdf` (the source pages, "
    "images or PDF pages as uploaded, with an invisible text layer over each word), `hocr` "
    "(hOCR 1.2) or `alto` (ALTO 4.4), with pixel boxes of blocks, lines and words. An archive "
    "format is rendered on its first request (which waits for it) and kept with the result."
)
# Answered, not in OpenAPI: one operation answering six media types by a parameter is read by
# generated clients as its first (JSON); they take GET /jobs/{id}/result/<format> instead.
ResultFormat = Annotated[_RESULT_FORMATS, Query(description=_RESULT_DOC, include_in_schema=False)]
_LOCATION = {
    "Location": {
        "description": "The job: `/jobs/{job_id}` (relative)",
        "schema": {"type": "string"},
    }
}


@router.post(
    "",
    status_code=202,
    summary="Submit a file (or a source_url) for OCR",
    description="Streams the upload to disk, queues it and answers at once with the job id. "
    "With `source_url` instead of `file` nothing is uploaded: the URL is checked, the job "
    "queued, and its worker fetches the document.",
    openapi_extra=_UPLOAD_BODY,
    responses={
        202: {"description": "Queued", "headers": _LOCATION},
        200: {
            "model": JobAccepted,
            "description": "Repeated Idempotency-Key: the job it created before, nothing queued",
            "headers": {
                **_LOCATION,
                "Idempotent-Replayed": {"description": "`true`", "schema": {"type": "string"}},
            },
        },
        **error_responses(
            ErrorCode.empty_file,
            ErrorCode.invalid_request,
            ErrorCode.unauthorized,
            ErrorCode.job_not_found,
            ErrorCode.request_timeout,
            ErrorCode.idempotency_key_in_use,
            ErrorCode.file_too_large,
            ErrorCode.form_too_large,
            ErrorCode.unsupported_media_type,
            ErrorCode.file_missing,
            ErrorCode.invalid_option,
            ErrorCode.invalid_callback_url,
            ErrorCode.invalid_source_url,
            ErrorCode.file_and_source_url,
            ErrorCode.too_many_pages,
            ErrorCode.idempotency_key_reused,
            ErrorCode.queue_full,
            ErrorCode.quota_exceeded,
            ErrorCode.queue_unavailable,
            ErrorCode.engine_not_served,
            ErrorCode.storage_unavailable,
            ErrorCode.insufficient_storage,
            **_WHY,
            invalid_request="malformed body or Idempotency-Key",
            idempotency_key_in_use="a request with the same key is still uploading; retry "
            "after `Retry-After`",
            request_timeout="the body stopped coming for BODY_TIMEOUT_SECONDS",
            file_too_large="over MAX_UPLOAD_MB",
            form_too_large="more form fields than MAX_FORM_FIELDS, one over MAX_FIELD_BYTES, "
            "or too much beside the file",
            unsupported_media_type="bytes match no supported type",
            file_missing="neither a `file` nor a `source_url` field",
            invalid_source_url="a malformed `source_url`, or one pointing where the service "
            "may not read (a refused address, plain http outside SOURCE_ALLOWED_NETWORKS, a "
            "bucket SOURCE_S3_BUCKETS does not name)",
            file_and_source_url="both a `file` and a `source_url`",
            invalid_option="a bad or unknown form field",
            invalid_callback_url="a malformed or refused callback_url",
            too_many_pages="more pages than MAX_PAGES",
            idempotency_key_reused="a known Idempotency-Key with another upload",
            queue_full="MAX_QUEUED_JOBS are waiting at the job's priority or above; retry "
            "after `Retry-After`",
            quota_exceeded="the job would pass its API key's `pages_per_day`, `max_queued` or "
            "`max_pages_per_job`; `Retry-After` says when it may pass (none: never)",
            engine_not_served="workers are live but none serves the job's engine",
            insufficient_storage="no room left for the upload; retry later",
        ),
    },
)
async def create_job(
    request: Request,
    response: Response,
    submissions: SubmissionsDep,
    api_key: ApiKeyDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JobAccepted:
    accepted = await accept_upload(request, submissions, api_key, idempotency_key)
    return accepted_answer(accepted, response)


async def accept_upload(
    request: Request, submissions: Submissions, api_key: str | None, idempotency_key: str | None
) -> Accepted:
    """The request's upload, read and queued as POST /jobs does (POST /ocr too)."""
    return await submissions.accept(
        request.stream(),
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        idempotency_key=idempotency_key,
        scope=api_key,
    )


def accepted_answer(accepted: Accepted, response: Response) -> JobAccepted:
    """POST /jobs's answer to an upload it accepted: status, headers (Location) and body."""
    record = accepted.record
    if accepted.replayed:
        response.status_code = 200
    response.headers.update(accepted.headers)
    response.headers["Location"] = f"/jobs/{record.job_id}"
    return JobAccepted(
        job_id=record.job_id,
        status=record.status,
        created_at=record.created_at,
        links=links_for(record.job_id),
    )


_WAIT_DOC = (
    f"Long-poll: answer once the job's status or page progress changes, or after this many "
    f"seconds (0 < wait <= {WAIT_LIMIT_SECONDS}) with it unchanged. An ended job answers at "
    "once. To follow every change, GET /jobs/{id}/events instead."
)


@router.get(
    "/{job_id}",
    summary="Job status and progress",
    responses={**_ERRORS, **error_responses(ErrorCode.result_gone, **_WHY)},
)
async def get_job(
    job_id: str,
    watch: WatchDep,
    api_key: ApiKeyDep,
    wait: Annotated[float | None, Query(gt=0, le=WAIT_LIMIT_SECONDS, description=_WAIT_DOC)] = None,
) -> JobView:
    return await watch.current(job_id, api_key, wait)


_RESULT_ERRORS: Responses = {
    **_ERRORS,
    **error_responses(
        ErrorCode.result_not_ready,
        ErrorCode.job_failed,
        ErrorCode.job_canceled,
        ErrorCode.result_gone,
        ErrorCode.insufficient_storage,
        ErrorCode.queue_unavailable,
        ErrorCode.storage_unavailable,
        **_WHY,
        insufficient_storage="no room to store a pdf, hocr or alto file",
    ),
}


@router.get(
    "/{job_id}/result",
    summary="The stored result (JSON)",
    description="The document as JSON. The other formats: GET /jobs/{job_id}/result/<format> "
    "(`?format=<format>` here answers the same).",
    response_model=DocumentResult,
    responses={**LINK_RESPONSES, **_RESULT_ERRORS},
)
async def get_result(
    request: Request,
    job_id: str,
    service: ServiceDep,
    api_key: ApiKeyDep,
    format: ResultFormat = "json",  # noqa: A002
    delivery: DeliveryQuery = Delivery.stream,
) -> Response:
    return await _result_answer(request, job_id, format, delivery, service, api_key)


async def _result_answer(
    request: Request,
    job_id: str,
    fmt: str,
    delivery: Delivery,
    service: JobAccess,
    api_key: str | None,
) -> Response:
    """GET /jobs/{id}/result[/<fmt>]'s answer: the file, or 307 to it in the bucket."""
    stored = await service.result_file(job_id, fmt, api_key)
    accept = request.headers.get("accept")
    return await delivered(
        service.links,
        stored,
        delivery,
        RESULT_MEDIA_TYPES[fmt],
        result_filename(job_id, fmt),
        lambda: result_response(stored, fmt, service.storage, accept),
    )


_FORMAT_SUMMARY = {
    "markdown": "The result as markdown",
    "text": "The result as plain text",
    "pdf": "The result as a searchable PDF",
    "hocr": "The result as hOCR 1.2",
    "alto": "The result as ALTO 4.4",
}


def _add_result_route(fmt: str) -> None:
    """GET /jobs/{job_id}/result/<fmt>, operation get_result_<fmt>: one media type each, so a
    generated client reads it as what it is (text as a string, pdf and alto as bytes)."""

    async def endpoint(
        request: Request,
        job_id: str,
        service: ServiceDep,
        api_key: ApiKeyDep,
        delivery: DeliveryQuery = Delivery.stream,
    ) -> Response:
        return await _result_answer(request, job_id, fmt, delivery, service, api_key)

    router.add_api_route(
        f"/{{job_id}}/result/{fmt}",
        endpoint,
        methods=["GET"],
        name=f"get_result_{fmt}",
        summary=_FORMAT_SUMMARY[fmt],
        description=f"As GET /jobs/{{job_id}}/result?format={fmt}. {_RESULT_DOC}",
        response_class=Response,
        responses={
            200: {
                "description": _FORMAT_SUMMARY[fmt],
                "content": content_of(RESULT_MEDIA_TYPES[fmt]),
            },
            **LINK_RESPONSES,
            **_RESULT_ERRORS,
        },
    )


for _format in _FORMAT_SUMMARY:
    _add_result_route(_format)


@router.get(
    "/{job_id}/images/{name}",
    summary="An image crop of the result",
    description="A figure the engine cut out of a page (PaddleOCR-VL with layout on), linked "
    "from the result's markdown as `/jobs/{job_id}/images/{name}`. Names are "
    "`p<page>-<name>.jpg|png`; same rules as the result: 409 until the job succeeded.",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The crop",
            "content": content_of(*IMAGE_MEDIA_TYPES.values()),
        },
        **LINK_RESPONSES,
        **error_responses(
            ErrorCode.unauthorized,
            ErrorCode.job_not_found,
            ErrorCode.image_not_found,
            ErrorCode.result_not_ready,
            ErrorCode.job_failed,
            ErrorCode.job_canceled,
            ErrorCode.result_gone,
            ErrorCode.queue_unavailable,
            ErrorCode.storage_unavailable,
            **_WHY,
            image_not_found="no image of that name in its result",
        ),
    },
)
async def get_image(
    request: Request,
    job_id: str,
    service: ServiceDep,
    api_key: ApiKeyDep,
    # declared, not validated here: a name off the pattern answers 404 image_not_found
    name: Annotated[str, Path(json_schema_extra={"pattern": IMAGE_NAME_PATTERN})],
    delivery: DeliveryQuery = Delivery.stream,
) -> Response:
    stored = await service.image_file(job_id, name, api_key)
    media_type = IMAGE_MEDIA_TYPES[name.rsplit(".", 1)[-1]]
    accept = request.headers.get("accept")
    return await delivered(
        service.links,
        stored,
        delivery,
        media_type,
        f"{job_id}-{name}",
        lambda: file_response(stored, answered_type(media_type, accept), service.storage),
    )


@router.get("/{job_id}/images/{name:path}", include_in_schema=False)
async def get_image_by_path(
    request: Request, job_id: str, service: ServiceDep, api_key: ApiKeyDep, name: str
) -> Response:
    """A name holding a slash (`a%2Fb` arrives decoded) names no image either: the same
    answers as get_image (image_not_found once the job is visible), never another route's."""
    return await get_image(request, job_id, service, api_key, name)


@router.delete(
    "/{job_id}",
    summary="Cancel a job",
    description="A queued job is canceled at once and its upload removed; a running job is "
    "marked canceled and its worker stops before the next page. Canceling a canceled job "
    "answers the same; a succeeded or failed job cannot be canceled (409 `job_finished`).",
    responses={
        **_ERRORS,
        **error_responses(ErrorCode.job_finished, job_finished="the job already finished"),
    },
)
async def cancel_job(job_id: str, service: ServiceDep, api_key: ApiKeyDep) -> JobView:
    record = await service.cancel(job_id, api_key)
    return await run_in_threadpool(service.view, record)
