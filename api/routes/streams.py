"""GET /jobs/{id}/events: a job's status as server-sent events (api/watching.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from api import sse
from api.deps import ApiKeyDep, WatchDep
from api.routes.jobs import ERRORS
from shared.jobs import EventKind

router = APIRouter(prefix="/jobs", tags=["jobs"])

EVENT_ID_PATTERN = r"^\d{1,20}-\d{1,20}$"  # a Redis stream id, as sent in `id:`
_ID_OR_EMPTY = r"^(\d{1,20}-\d{1,20})?$"

_DESCRIPTION = f"""
The job's status as [server-sent events](https://html.spec.whatwg.org/multipage/server-sent-events.html):
`retry: {sse.RETRY_MS}` once, then at once the job's current state, then one message per
change until the job ends (succeeded, failed or canceled), after which the server closes the
stream. Each message has `id:` (the event's id), `event:` (its kind: {", ".join(EventKind)})
and `data:` (the job, exactly as `GET /jobs/{{id}}` shows it at that event, one JSON line).
While nothing happens a `: keepalive` comment comes every STREAM_KEEPALIVE_SECONDS (15).

To resume, send the last id seen as `Last-Event-ID` (an EventSource does so itself) or
`?last_event_id=`: every event after it comes (none missed, none repeated), then live ones.
"""

_ITEM = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "id": {"type": "string", "pattern": EVENT_ID_PATTERN},
        "event": {"type": "string", "enum": list(EventKind)},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/JobView"},
        },
        "retry": {"type": "integer", "minimum": 0},
    },
}
_ID_DOC = "Resume after this event id: only later events are sent"


@router.get(
    "/{job_id}/events",
    summary="Follow a job's status (server-sent events)",
    description=_DESCRIPTION,
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The event stream",
            # `schema`: the stream as one string (what a generated client reads once the job
            # ended and the server closed it); `itemSchema` (OpenAPI 3.2): each message
            "content": {sse.MEDIA_TYPE: {"schema": {"type": "string"}, "itemSchema": _ITEM}},
        },
        **ERRORS,
    },
)
async def get_job_events(
    job_id: str,
    watch: WatchDep,
    api_key: ApiKeyDep,
    # empty = none: a plain string in OpenAPI (a nullable one would send null as "null")
    last_event_id_header: Annotated[
        str, Header(alias="Last-Event-ID", pattern=_ID_OR_EMPTY, description=_ID_DOC)
    ] = "",
    last_event_id: Annotated[
        str, Query(pattern=_ID_OR_EMPTY, description=_ID_DOC + " (as the header)")
    ] = "",
) -> StreamingResponse:
    after = last_event_id_header or last_event_id or None
    messages, subscription = await watch.stream(job_id, api_key, after)
    return sse.EventStreamResponse(
        messages,
        on_disconnect=subscription.end,
        background=BackgroundTask(subscription.aclose),  # should the stream never start
    )
