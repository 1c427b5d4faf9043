"""/jobs: submit, poll, fetch the result. Thin: parse, call JobService, shape the response."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from api.deps import ServiceDep
from api.schemas import ErrorBody, JobAccepted, JobView, links_for
from shared.options import JobOptions
from shared.results import DocumentResult

# create_app adds the API-key dependency when API_KEYS is set, so OpenAPI tells the truth.
router = APIRouter(prefix="/jobs", tags=["jobs"])

_ERRORS = {
    401: {"model": ErrorBody, "description": "Missing or invalid API key"},
    404: {"model": ErrorBody, "description": "Unknown or expired job"},
    503: {"model": ErrorBody, "description": "Redis (queue and job store) unreachable"},
}


def _option_fields() -> dict:
    """The optional form fields, documented from the JobOptions model itself."""
    schema = JobOptions.model_json_schema()
    fields = {}
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        if "$ref" in prop:
            enum = schema["$defs"][prop.pop("$ref").split("/")[-1]]["enum"]
            prop |= {"type": "string", "enum": enum}
        if "anyOf" in prop:
            prop |= next(p for p in prop.pop("anyOf") if p.get("type") != "null")
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

_MEDIA = {"json": "application/json", "markdown": "text/markdown", "text": "text/plain"}


@router.post(
    "",
    status_code=202,
    summary="Submit a file for OCR",
    description="Streams the upload to disk, queues it and answers at once with the job id.",
    openapi_extra=_UPLOAD_BODY,
    responses={
        400: {"model": ErrorBody, "description": "Empty file or malformed body"},
        413: {"model": ErrorBody, "description": "Over MAX_UPLOAD_MB"},
        415: {"model": ErrorBody, "description": "Bytes match no supported type"},
        422: {
            "model": ErrorBody,
            "description": "No `file` field (file_missing), a bad or unknown form field "
            "(invalid_option), or more pages than MAX_PAGES (too_many_pages)",
        },
        **_ERRORS,
    },
)
async def create_job(request: Request, response: Response, service: ServiceDep) -> JobAccepted:
    record = await service.submit(
        request.stream(),
        request.headers.get("content-type"),
        request.headers.get("content-length"),
    )
    response.headers["Location"] = f"/jobs/{record.job_id}"
    return JobAccepted(
        job_id=record.job_id,
        status=record.status,
        created_at=record.created_at,
        links=links_for(record.job_id),
    )


@router.get("/{job_id}", summary="Job status and progress", responses=_ERRORS)
def get_job(job_id: str, service: ServiceDep) -> JobView:
    return JobView.of(service.get(job_id))


@router.get(
    "/{job_id}/result",
    summary="The stored result",
    response_model=DocumentResult,
    responses={
        200: {
            "description": "JSON document, or markdown / plain text by `format`",
            "content": {"text/markdown": {}, "text/plain": {}},
        },
        409: {"model": ErrorBody, "description": "Not finished yet, or failed"},
        **_ERRORS,
    },
)
def get_result(
    job_id: str,
    service: ServiceDep,
    format: Annotated[Literal["json", "markdown", "text"], Query()] = "json",  # noqa: A002
) -> FileResponse:
    path = service.result_path(job_id, format)
    media = _MEDIA[format] + ("" if format == "json" else "; charset=utf-8")
    return FileResponse(path, media_type=media)
