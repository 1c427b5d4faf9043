"""/jobs: submit, poll, fetch the result. Thin: parse, call Submissions (POST) or JobAccess
(api/service.py: the rest), shape the response."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.archives.produce import ARCHIVE_MEDIA_TYPES
from api.deps import ApiKeyDep, ServiceDep, SubmissionsDep, WatchDep
from api.schemas import ErrorBody, JobAccepted, JobView, links_for
from api.storage_calls import StorageCalls
from api.submitting import IDEMPOTENCY_KEY_PATTERN, Accepted, Submissions
from api.watching import WAIT_LIMIT_SECONDS
from shared.options import JobOptions
from shared.results import DocumentResult
from shared.storage import IMAGE_MEDIA_TYPES, IMAGE_NAME_PATTERN, StoredFile

# create_app adds the API-key dependency when API_KEYS is set, so OpenAPI tells the truth.
router = APIRouter(prefix="/jobs", tags=["jobs"])

_ERRORS = {
    401: {"model": ErrorBody, "description": "Missing or invalid API key"},
    404: {"model": ErrorBody, "description": "Unknown or expired job"},
    503: {"model": ErrorBody, "description": "Redis (queue and job store) unreachable"},
}
ERRORS = _ERRORS  # of every route on a job (api/routes/streams.py, ocr.py too)
_GONE = {
    410: {
        "model": ErrorBody,
        "description": "`result_gone`: the job succeeded, but its result is no longer stored "
        "(removed, or another STORAGE_URL); submit the file again",
    }
}


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
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "PNG, JPEG, TIFF, WebP, BMP or PDF; sniffed by content",
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
    "file bytes and form fields, else **422** `idempotency_key_reused`. A canceled or expired "
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

_MEDIA = {
    "json": "application/json",
    "markdown": "text/markdown; charset=utf-8",
    "text": "text/plain; charset=utf-8",
    **ARCHIVE_MEDIA_TYPES,
}
_RESULT_FORMATS = Literal["json", "markdown", "text", "pdf", "hocr", "alto"]
_RESULT_DOC = (
    "`json` (default), `markdown` or `text`; or an archive format: `pdf` (the source pages, "
    "images or PDF pages as uploaded, with an invisible text layer over each word), `hocr` "
    "(hOCR 1.2) or `alto` (ALTO 4.4), with pixel boxes of blocks, lines and words. An archive "
    "format is rendered on its first request (which waits for it) and kept with the result."
)
ResultFormat = Annotated[_RESULT_FORMATS, Query(description=_RESULT_DOC)]


@router.post(
    "",
    status_code=202,
    summary="Submit a file for OCR",
    description="Streams the upload to disk, queues it and answers at once with the job id.",
    openapi_extra=_UPLOAD_BODY,
    responses={
        200: {
            "model": JobAccepted,
            "description": "Repeated Idempotency-Key: the job it created before, nothing queued",
        },
        400: {"model": ErrorBody, "description": "Empty file, malformed body or Idempotency-Key"},
        409: {
            "model": ErrorBody,
            "description": "`idempotency_key_in_use`: a request with the same key is still "
            "uploading; retry after `Retry-After`",
        },
        408: {
            "model": ErrorBody,
            "description": "`request_timeout`: the body stopped coming for BODY_TIMEOUT_SECONDS",
        },
        413: {
            "model": ErrorBody,
            "description": "Over MAX_UPLOAD_MB (file_too_large), or more form fields than "
            "MAX_FORM_FIELDS, one over MAX_FIELD_BYTES, or too much beside the file "
            "(form_too_large)",
        },
        415: {"model": ErrorBody, "description": "Bytes match no supported type"},
        422: {
            "model": ErrorBody,
            "description": "No `file` field (file_missing), a bad or unknown form field "
            "(invalid_option), a malformed or refused callback_url (invalid_callback_url), or "
            "more pages than MAX_PAGES (too_many_pages)",
        },
        429: {
            "model": ErrorBody,
            "description": "`queue_full`: MAX_QUEUED_JOBS are waiting at the job's priority or "
            "above; retry after `Retry-After`",
        },
        507: {
            "model": ErrorBody,
            "description": "`insufficient_storage`: no room left for the upload; retry later",
        },
        **_ERRORS,
        503: {
            "model": ErrorBody,
            "description": "`queue_unavailable`: Redis (queue and job store) unreachable; or "
            "`engine_not_served`: workers are live but none serves the job's engine",
        },
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


@router.get("/{job_id}", summary="Job status and progress", responses={**_ERRORS, **_GONE})
async def get_job(
    job_id: str,
    watch: WatchDep,
    api_key: ApiKeyDep,
    wait: Annotated[float | None, Query(gt=0, le=WAIT_LIMIT_SECONDS, description=_WAIT_DOC)] = None,
) -> JobView:
    return await watch.current(job_id, api_key, wait)


@router.get(
    "/{job_id}/result",
    summary="The stored result",
    response_model=DocumentResult,
    responses={
        200: {
            "description": "JSON document, or markdown / plain text / searchable PDF / hOCR / "
            "ALTO by `format`",
            "content": {
                "text/markdown": {},
                "text/plain": {},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                "text/vnd.hocr+html": {"schema": {"type": "string"}},
                "application/xml": {"schema": {"type": "string"}},
            },
        },
        409: {"model": ErrorBody, "description": "Not finished yet, or failed"},
        507: {
            "model": ErrorBody,
            "description": "`insufficient_storage`: no room to store a pdf, hocr or alto file",
        },
        **_GONE,
        **_ERRORS,
    },
)
async def get_result(
    job_id: str,
    service: ServiceDep,
    api_key: ApiKeyDep,
    format: ResultFormat = "json",  # noqa: A002
) -> Response:
    stored = await service.result_file(job_id, format, api_key)
    return result_response(stored, format, service.storage)


def result_response(stored: StoredFile, fmt: str, storage: StorageCalls) -> Response:
    """A stored result as GET /jobs/{id}/result answers it in format `fmt`: a local file as
    FileResponse, an object streamed from the bucket with its length declared."""
    return file_response(stored, _MEDIA[fmt], storage)


def file_response(stored: StoredFile, media_type: str, storage: StorageCalls) -> Response:
    """A local file as FileResponse; an object streamed from the bucket (read on the storage
    pool), its length declared."""
    if stored.path is not None:
        return FileResponse(stored.path, media_type=media_type)
    assert stored.chunks is not None
    headers = {"Content-Length": str(stored.size)}
    body = storage.iterate(stored.chunks())
    return StreamingResponse(body, media_type=media_type, headers=headers)


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
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in IMAGE_MEDIA_TYPES.values()
            },
        },
        404: {
            "model": ErrorBody,
            "description": "Unknown or expired job (job_not_found), or no image of that name "
            "in its result (image_not_found)",
        },
        409: {"model": ErrorBody, "description": "Not finished yet, or failed, or canceled"},
        **_GONE,
        **{code: body for code, body in _ERRORS.items() if code != 404},
    },
)
async def get_image(
    job_id: str,
    service: ServiceDep,
    api_key: ApiKeyDep,
    # declared, not validated here: a name off the pattern answers 404 image_not_found
    name: Annotated[str, Path(json_schema_extra={"pattern": IMAGE_NAME_PATTERN})],
) -> Response:
    stored = await service.image_file(job_id, name, api_key)
    return file_response(stored, IMAGE_MEDIA_TYPES[name.rsplit(".", 1)[-1]], service.storage)


@router.get("/{job_id}/images/{name:path}", include_in_schema=False)
async def get_image_by_path(
    job_id: str, service: ServiceDep, api_key: ApiKeyDep, name: str
) -> Response:
    """A name holding a slash (`a%2Fb` arrives decoded) names no image either: the same
    answers as get_image (image_not_found once the job is visible), never another route's."""
    return await get_image(job_id, service, api_key, name)


@router.delete(
    "/{job_id}",
    summary="Cancel a job",
    description="A queued job is canceled at once and its upload removed; a running job is "
    "marked canceled and its worker stops before the next page. Canceling a canceled job "
    "answers the same; a succeeded or failed job cannot be canceled (409 `job_finished`).",
    responses={409: {"model": ErrorBody, "description": "The job already finished"}, **_ERRORS},
)
async def cancel_job(job_id: str, service: ServiceDep, api_key: ApiKeyDep) -> JobView:
    record = await service.cancel(job_id, api_key)
    return await run_in_threadpool(service.view, record)
