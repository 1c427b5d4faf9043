"""/jobs/{id}/pages/{n}/image: a picture of a source page, for the web page (/ui)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import FileResponse

from api.deps import ApiKeyDep, ServiceDep
from api.errors import error_responses
from api.file_answers import answered_type, content_of, file_response
from api.file_links import LINK_RESPONSES, Delivery, DeliveryQuery, delivered
from api.page_images import MAX_SIDE
from api.service import JobAccess
from shared.error_codes import ErrorCode
from shared.storage import StoredFile

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
            "content": content_of("image/jpeg"),
        },
        **LINK_RESPONSES,
        **error_responses(
            ErrorCode.unauthorized,
            ErrorCode.job_not_found,
            ErrorCode.page_not_found,
            ErrorCode.result_not_ready,
            ErrorCode.job_failed,
            ErrorCode.job_canceled,
            ErrorCode.result_gone,
            ErrorCode.image_too_large,
            ErrorCode.queue_unavailable,
            ErrorCode.storage_unavailable,
            ErrorCode.insufficient_storage,
            unauthorized="missing or invalid API key",
            job_not_found="unknown or expired job, or its source no longer stored",
            page_not_found="no page `index` in its result, or that page could not be read "
            "and its source cannot be drawn either",
            queue_unavailable="Redis (queue and job store) unreachable",
            storage_unavailable="the bucket (STORAGE_URL) does not answer",
            result_gone="the result is no longer stored",
            image_too_large="the page has more pixels than the worker reads",
            insufficient_storage="no room to store it",
        ),
    },
)
async def get_page_image(
    request: Request,
    job_id: str,
    index: Annotated[int, Path(ge=1, le=1_000_000)],
    service: ServiceDep,
    api_key: ApiKeyDep,
    delivery: DeliveryQuery = Delivery.stream,
) -> Response:
    stored = await service.page_image(job_id, index, api_key)
    return await delivered(
        service.links,
        stored,
        delivery,
        "image/jpeg",
        f"{job_id}-p{index}.jpg",
        lambda: _streamed(stored, service, request.headers.get("accept")),
    )


def _streamed(stored: StoredFile, service: JobAccess, accept: str | None) -> Response:
    response = file_response(stored, answered_type("image/jpeg", accept), service.storage)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
