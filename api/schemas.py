"""Request and response models: OpenAPI shows these, not dicts."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.callback_urls import redact
from shared.error_codes import ErrorCode
from shared.jobs import JobError, JobRecord, JobStatus
from shared.jobs.webhooks import DeliveryState
from shared.source_urls import shown_source


class ErrorDetail(BaseModel):
    code: ErrorCode = Field(description="Stable machine-readable code, e.g. job_not_found")
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class JobLinks(BaseModel):
    self: str
    result: str


class FileLink(BaseModel):
    """A stored file as a pre-signed URL of the bucket (`?delivery=url`, docs/results.md)."""

    url: str = Field(
        description="GET it without credentials (no API key: the URL carries its own "
        "signature) before `expires_at`; the bucket answers the file's own Content-Type and a "
        "Content-Disposition naming it"
    )
    expires_at: datetime = Field(description="When the bucket starts refusing it (403)")
    media_type: str = Field(description="The Content-Type the bucket answers with")
    size: int = Field(description="The file's size in bytes")


class JobAccepted(BaseModel):
    job_id: str
    status: JobStatus
    created_at: datetime
    links: JobLinks


class Progress(BaseModel):
    pages_done: int = Field(description="Pages read so far, failed ones included")
    pages_total: int | None = Field(description="Pages the job reads; None until counted")
    pages_failed: int = Field(
        0,
        description="Pages that could not be read (on_page_error=continue): each has its "
        "`error` in the result; 0 when none",
    )

    @classmethod
    def of(cls, record: JobRecord) -> Progress:
        return cls(
            pages_done=record.pages_done,
            pages_total=record.pages_total,
            pages_failed=record.pages_failed,
        )


class CallbackView(BaseModel):
    """The job's latest webhook delivery (docs/webhooks.md)."""

    url: str = Field(description="The callback URL, its query (maybe a token) left out")
    delivery_id: str | None = Field(None, description="Ocrq-Delivery of the latest delivery")
    event: str | None = Field(None, description="The event it carries")
    attempts: int = 0
    last_attempt_at: datetime | None = None
    last_outcome: Literal["delivered", "retrying", "gave_up"] | None = Field(
        None, description="None until the first attempt ended"
    )
    last_status_code: int | None = Field(None, description="The receiver's HTTP status")
    last_error: str | None = Field(None, description="Why the last attempt failed")
    next_attempt_at: datetime | None = None

    @classmethod
    def of(cls, url: str, state: DeliveryState | None) -> CallbackView:
        if state is None:
            return cls(url=redact(url))
        fields = {k: v for k, v in asdict(state).items() if k != "url"}
        return cls(url=redact(state.url or url), **fields)


class JobView(BaseModel):
    job_id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: Progress
    error: JobError | None
    links: JobLinks
    callback: CallbackView | None = Field(
        None, description="Webhook delivery state; only for a job with a callback_url"
    )
    source_url: str | None = Field(
        None,
        description="The document's source_url (without its query), for a job submitted by "
        "reference; its worker fetches it",
    )

    @classmethod
    def of(cls, record: JobRecord, callback: DeliveryState | None = None) -> JobView:
        url = record.options.callback_url
        return cls(
            source_url=shown_source(record.source_url) if record.source_url else None,
            job_id=record.job_id,
            status=record.status,
            created_at=record.created_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            progress=Progress.of(record),
            error=record.error,
            links=links_for(record.job_id),
            callback=CallbackView.of(url, callback) if url else None,
        )

    def at(self, record: JobRecord) -> JobView:
        """This job as `record` has it: a moment of its timeline (shared/jobs/timeline.py),
        with the links and webhook state of now."""
        return self.model_copy(
            update={
                "status": record.status,
                "started_at": record.started_at,
                "finished_at": record.finished_at,
                "progress": Progress.of(record),
                "error": record.error,
            }
        )


def links_for(job_id: str) -> JobLinks:
    return JobLinks(self=f"/jobs/{job_id}", result=f"/jobs/{job_id}/result")


class Health(BaseModel):
    status: str = "ok"


class WorkerView(BaseModel):
    worker_id: str
    engine: str
    device: str
    warm: bool
    warmup_seconds: float | None
    engine_available: bool = Field(
        True,
        description="False while the engine's backend (a VL server) does not answer; the "
        "worker holds its jobs meanwhile and runs them when it is back",
    )
    engine_error: str | None = Field(None, description="Why the engine is unavailable")


class Readiness(BaseModel):
    status: str = Field(description="ok when Redis answers")
    redis: bool
    workers: int = Field(description="Workers with a fresh heartbeat")
    engines_warm: bool = Field(description="True when at least one live worker is warm")
    engines_available: bool = Field(
        False, description="True when at least one live worker is warm and its engine answers"
    )
    worker_details: list[WorkerView]
    queues: dict[str, int] = Field(
        default_factory=dict,
        description="Jobs waiting per queue (`ocr.<engine>.<priority>`, and the pre-upgrade `ocr`)",
    )


class ServiceInfo(BaseModel):
    name: str
    version: str
    docs: str
    redoc: str
    openapi: str
    health: str
    ui: str = Field(description="The web page for people: upload, watch, read, check")


class TenantLimits(BaseModel):
    """An API key's quotas (API_KEYS_FILE options); null = unlimited."""

    pages_per_day: int | None = Field(
        None, description="Pages the key may submit per UTC day (counted at upload)"
    )
    max_queued: int | None = Field(None, description="The key's jobs queued or running at once")
    max_pages_per_job: int | None = Field(None, description="Pages of one job")


class UsageDay(BaseModel):
    """One UTC day of a key's usage."""

    day: date
    jobs_submitted: int = Field(description="Jobs accepted (a replayed Idempotency-Key is none)")
    pages_submitted: int = Field(description="Their pages, as counted at upload (pages_per_day)")
    pages_done: int = Field(description="Pages read this day (each once, however often run)")
    pages_failed: int = Field(description="Pages that could not be read this day")
    engine_seconds: dict[str, float] = Field(
        description="Engine time spent on the pages read this day, by engine (a batch's time "
        "shared by its pages)"
    )


class UsageView(BaseModel):
    """GET /usage: the caller's API key's usage and limits."""

    tenant: str = Field(
        description="The key's name (API_KEYS_FILE `name=`, else `key-<8 hex>`), or "
        "`anonymous` while auth is off"
    )
    limits: TenantLimits
    queued: int = Field(description="The key's jobs queued or running now (max_queued counts)")
    today: UsageDay = Field(description="Today (UTC) so far")
    days: list[UsageDay] = Field(description="The last 31 days, oldest first, today last")
