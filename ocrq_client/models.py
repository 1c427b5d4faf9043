"""What the API answers about a job, as the client reads it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})


class Progress(BaseModel):
    pages_done: int = 0
    pages_total: int | None = None


class JobError(BaseModel):
    code: str
    message: str


class Callback(BaseModel):
    """A job's latest webhook delivery, for a job with a callback_url."""

    url: str
    delivery_id: str | None = None
    event: str | None = None
    attempts: int = 0
    last_attempt_at: datetime | None = None
    last_outcome: str | None = None  # delivered, retrying, gave_up
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None


class Job(BaseModel):
    """A job as GET /jobs/{id} shows it; `replayed` when a repeated Idempotency-Key found it."""

    job_id: str
    status: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: Progress = Progress()
    error: JobError | None = None
    callback: Callback | None = None
    replayed: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES
