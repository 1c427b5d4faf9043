"""POST /ocr: the synchronous route for one-shot clients. The upload goes through the queue
like any POST /jobs (no OCR in the API); the request then waits on the job's events for up to
SYNC_WAIT_SECONDS, holding only its idle connection, and answers with the result or the job."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from api.deps import ApiKeyDep, ServiceDep, SettingsDep, SubmissionsDep, WatchDep
from api.errors import error_responses
from api.file_answers import result_response
from api.routes import jobs
from api.routes.jobs import IdempotencyKeyHeader, ResultFormat, accept_upload, accepted_answer
from api.schemas import JobAccepted
from shared.error_codes import ErrorCode
from shared.results import DocumentResult

router = APIRouter(tags=["jobs"])


def _route(name: str) -> APIRoute:
    return next(r for r in jobs.router.routes if isinstance(r, APIRoute) and r.name == name)


# the same upload and answers as POST /jobs
_SUBMIT = _route("create_job")

_DESCRIPTION = """
For clients that want the text in one request. Takes the same multipart upload, fields and
Idempotency-Key as `POST /jobs` and queues the job the same way; then waits up to
SYNC_WAIT_SECONDS (30) for it to end. **200** with the result as JSON (as
`GET /jobs/{id}/result`; `?format=markdown|text|pdf|hocr|alto` answers that format instead, as
`GET /jobs/{id}/result/<format>` does), or, when the job takes longer, **202** with exactly the
body and `Location` of `POST /jobs`: follow it there. A failed or canceled job answers 409 as
its result does. A client that disconnects cancels nothing: the job runs to its end.
"""


@router.post(
    "/ocr",
    summary="Submit a file and wait for its result",
    description=_DESCRIPTION,
    openapi_extra=_SUBMIT.openapi_extra,
    response_class=Response,
    responses={
        200: {"model": DocumentResult, "description": "The job's result"},
        202: {
            **_SUBMIT.responses[202],
            "model": JobAccepted,
            "description": "Not done within SYNC_WAIT_SECONDS: the job, as POST /jobs answers",
        },
        **{code: body for code, body in _SUBMIT.responses.items() if code not in (200, 202, 409)},
        **error_responses(
            ErrorCode.job_failed,
            ErrorCode.job_canceled,
            ErrorCode.idempotency_key_in_use,
            job_failed="the job failed (with its error)",
            job_canceled="the job was canceled",
        ),
    },
)
async def run_ocr(
    request: Request,
    settings: SettingsDep,
    submissions: SubmissionsDep,
    watch: WatchDep,
    service: ServiceDep,
    api_key: ApiKeyDep,
    idempotency_key: IdempotencyKeyHeader = None,
    format: ResultFormat = "json",  # noqa: A002
) -> Response:
    accepted = await accept_upload(request, submissions, api_key, idempotency_key)
    job_id = accepted.record.job_id
    record = await watch.wait_for_end(
        job_id, api_key, settings.sync_wait_seconds, give_up=_client_gone(request)
    )
    if record.status.terminal:
        stored = await service.result_file(job_id, format, api_key)
        return result_response(stored, format, service.storage, request.headers.get("accept"))
    # POST /jobs's body and headers; 202 even for a replayed Idempotency-Key (200 is a result)
    answer = Response()
    body = accepted_answer(accepted, answer)
    headers = {k: v for k, v in answer.headers.items() if k != "content-length"}
    return JSONResponse(jsonable_encoder(body), status_code=202, headers=headers)


async def _client_gone(request: Request) -> None:
    """Returns once the client hung up (its body is read: the next message is the end)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
