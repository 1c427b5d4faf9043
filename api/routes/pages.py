"""/jobs/{id}/pages/{n}/image: a picture of a source page, for the web page (/ui)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from fastapi.responses import FileResponse

from api.deps import ApiKeyDep, ServiceDep
from api.page_images import MAX_SIDE
from api.routes.jobs import file_response
from api.schemas import ErrorBody

# create_app adds the API-key dependency when API_KEYS is set, as for /jobs.
router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get(
    "/{job_id}/pages/{index}/image",
    summary="A picture of one page of the source",
    description="Page `index` (1-based, as `pages[].index` in the result) of a succeeded job's "
    f"upload, rendered by the service as a JPEG of at most {MAX_SIDE} pixels a side, turned "
    "upright as the engine read it: the result's boxes lie on it once scaled by the page's "
    "`width` and `height`. PDF pages show too. Rendered on the first request, then kept with "
    "the result. Same rules as the result: 409 until the job succeeded.",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The page picture",
            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
        },
        401: {"model": ErrorBody, "description": "Missing or invalid API key"},
        404: {
            "model": ErrorBody,
            "description": "Unknown or expired job, its source no longer stored "
            "(job_not_found), or no page `index` in its result (page_not_found)",
        },
        409: {"model": ErrorBody, "description": "Not finished yet, or failed, or canceled"},
        422: {
            "model": ErrorBody,
            "description": "`image_too_large`: the page has more pixels than the worker reads",
        },
        410: {"model": ErrorBody, "description": "`result_gone`: the result is no longer stored"},
        503: {"model": ErrorBody, "description": "Redis (queue and job store) unreachable"},
        507: {"model": ErrorBody, "description": "`insufficient_storage`: no room to store it"},
    },
)
async def get_page_image(
    job_id: str,
    index: Annotated[int, Path(ge=1, le=1_000_000)],
    service: ServiceDep,
    api_key: ApiKeyDep,
) -> Response:
    stored = await service.page_image(job_id, index, api_key)
    response = file_response(stored, "image/jpeg", service.storage)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
