"""What the API answers about a job, as the client reads it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})


class Progress(BaseModel):
    pages_done: int = 0  # failed pages included
    pages_total: int | None = None
    pages_failed: int = 0  # pages that could not be read (0 from servers before it existed)


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
    source_url: str | None = None  # a job by reference: its URL (without its query)
    replayed: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class PageError(BaseModel):
    """Why one page could not be read (its job went on with the other pages)."""

    code: str
    message: str


class Page(BaseModel):
    """One page of a result, numbered from 1; `error` is set when it could not be read (then
    it has no blocks and no text). `blocks` as the API gives them (type, text, bbox, score)."""

    index: int
    width: int = 0
    height: int = 0
    text: str = ""
    markdown: str = ""
    blocks: list[dict[str, Any]] = []
    error: PageError | None = None


class Document(BaseModel):
    """A job's JSON result (GET /jobs/{id}/result), as the client reads it."""

    job_id: str
    engine: str
    pages: list[Page]
    text: str = ""
    markdown: str = ""

    @property
    def failed_pages(self) -> list[Page]:
        """The pages that could not be read, in page order."""
        return [p for p in self.pages if p.error is not None]


class UsageLimits(BaseModel):
    """The API key's quotas; None = unlimited."""

    pages_per_day: int | None = None
    max_queued: int | None = None
    max_pages_per_job: int | None = None


class UsageDay(BaseModel):
    day: date
    jobs_submitted: int = 0
    pages_submitted: int = 0
    pages_done: int = 0
    pages_failed: int = 0
    engine_seconds: dict[str, float] = {}


class Usage(BaseModel):
    """GET /usage: the key's name, its quotas, its jobs queued or running, and its days."""

    tenant: str
    limits: UsageLimits
    queued: int = 0
    today: UsageDay
    days: list[UsageDay] = []
