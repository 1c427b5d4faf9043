"""The text/event-stream wire format of a status stream (GET /jobs/{id}/events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.schemas import JobView
from shared.jobs.timeline import Moment

MEDIA_TYPE = "text/event-stream"
RETRY_MS = 2000  # sent once at the start: how long an EventSource waits before reconnecting
OPENING = f"retry: {RETRY_MS}\n\n".encode()
KEEPALIVE = b": keepalive\n\n"
# proxies must neither cache nor buffer it (X-Accel-Buffering: nginx)
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass(frozen=True)
class Step:
    """One message of a status stream: a moment of the job's timeline (the job package folds
    it from the events) and the job then, as GET /jobs/{id} shows it."""

    moment: Moment
    view: JobView

    @classmethod
    def shown(cls, moment: Moment, now: JobView) -> Step:
        """`moment` shaped like `now` (the job as GET /jobs/{id} shows it now)."""
        return cls(moment, now.at(moment.record))

    @property
    def event_id(self) -> str | None:
        return self.moment.event_id

    @property
    def terminal(self) -> bool:
        return self.moment.terminal


def message(step: Step) -> bytes:
    """One event: `id:` its stream id, `event:` its kind, `data:` the job (one JSON line)."""
    head = f"id: {step.event_id}\n" if step.event_id else ""
    return f"{head}event: {step.moment.kind}\ndata: {step.view.model_dump_json()}\n\n".encode()


class EventStreamResponse(StreamingResponse):
    """A status stream's response. Starlette's StreamingResponse runs an anyio task group beside
    every stream to notice its client leaving (a second task, cancel scopes, partials), held as
    long as the stream is open; here one plain task waits for the disconnect and calls
    `on_disconnect`, which makes the stream end by itself."""

    def __init__(
        self,
        messages: AsyncIterator[bytes],
        on_disconnect: Callable[[], None],
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(messages, media_type=MEDIA_TYPE, headers=HEADERS, background=background)
        self.on_disconnect = on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        listener = asyncio.ensure_future(self._until_disconnect(receive))
        try:
            await self.stream_response(send)
        finally:
            listener.cancel()
        if self.background is not None:
            await self.background()

    async def _until_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.on_disconnect()
