"""What happened to a job: one event per state change, written by the change's own script.

Each event sits in two Redis streams under one stream id: the job's own (`ocrq:events:<id>`,
kept as long as its record) and the global one (`ocrq:events`, capped at about
keys.EVENTS_MAXLEN), which webhook dispatchers read with consumer groups. A status stream
(SSE) resumes from the stream id it sent last (Last-Event-ID).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from shared.error_codes import ErrorCode


class EventKind(enum.StrEnum):
    queued = "queued"  # the API created the job
    running = "running"  # a worker claimed it (attempt)
    # progress (pages_done, pages_failed, pages_total); a page read: its number and outcome
    # (`ok`, or `failed` with its code)
    page = "page"
    # its worker died; back in the queue (attempt: the one that died); with `range`: only that
    # page range of the job went back (the job stays running)
    requeued = "requeued"
    succeeded = "succeeded"
    failed = "failed"  # code: the error code
    canceled = "canceled"

    @property
    def terminal(self) -> bool:
        """The job's end: nothing follows it."""
        return self in (EventKind.succeeded, EventKind.failed, EventKind.canceled)


@dataclass(frozen=True)
class JobEvent:
    id: str  # the stream id, e.g. "1718000000000-0": increasing, unique in the global stream
    kind: EventKind
    job_id: str
    at: datetime
    pages_done: int | None = None
    pages_total: int | None = None
    code: ErrorCode | None = None
    attempt: int | None = None
    page: int | None = None  # `page`: the page number read
    outcome: str | None = None  # `page`: ok | failed
    pages_failed: int | None = None  # `page` and `succeeded`
    range: int | None = None  # `requeued`: the page range that went back

    @classmethod
    def from_entry(cls, entry_id: str, fields: dict[str, str]) -> JobEvent:
        def number(name: str) -> int | None:
            value = fields.get(name)
            return int(value) if value else None

        return cls(
            id=entry_id,
            kind=EventKind(fields["kind"]),
            job_id=fields["job_id"],
            at=datetime.fromisoformat(fields["at"]),
            pages_done=number("pages_done"),
            pages_total=number("pages_total"),
            code=ErrorCode(fields["code"]) if fields.get("code") else None,
            attempt=number("attempt"),
            page=number("page"),
            outcome=fields.get("outcome") or None,
            pages_failed=number("pages_failed"),
            range=number("range"),
        )
