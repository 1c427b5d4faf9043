"""The text/event-stream wire format of a status stream (GET /jobs/{id}/events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.job_timeline import Step

MEDIA_TYPE = "text/event-stream"
RETRY_MS = 2000  # sent once at the start: how long an EventSource waits before reconnecting
OPENING = f"retry: {RETRY_MS}\n\n".encode()
KEEPALIVE = b": keepalive\n\n"
# proxies must neither cache nor buffer it (X-Accel-Buffering: nginx)
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def message(step: Step) -> bytes:
    """One event: `id:` its stream id, `event:` its kind, `data:` the job (one JSON line)."""
    head = f"id: {step.event_id}\n" if step.event_id else ""
    return f"{head}event: {step.kind}\ndata: {step.view.model_dump_json()}\n\n".encode()


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
