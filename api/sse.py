"""The text/event-stream wire format of a status stream (GET /jobs/{id}/events)."""

from __future__ import annotations

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
