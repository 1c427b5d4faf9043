"""The job record: its statuses, its error, and how it is kept in its Redis hash."""

from __future__ import annotations

import enum
import logging
from datetime import UTC, datetime

from pydantic import BaseModel

from shared.error_codes import ErrorCode
from shared.options import JobOptions

log = logging.getLogger(__name__)


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)


class JobError(BaseModel):
    code: ErrorCode
    message: str


class JobRecord(BaseModel):
    """A job as stored in its Redis hash."""

    job_id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    pages_done: int = 0  # pages read, failed ones included
    pages_failed: int = 0  # pages recorded as failed (on_page_error=continue)
    pages_total: int | None = None
    error: JobError | None = None
    filename: str | None = None
    media_type: str | None = None
    size_bytes: int | None = None
    attempts: int = 0
    options: JobOptions = JobOptions()
    # sha256 of the API key that created the job (never the key): only that key may see it
    owner: str | None = None
    # the Celery queue it was sent to (shared/jobs/queues.py); the API always names one
    queue: str | None = None
    # the document by reference (shared/source_urls.py): the worker fetches it, then records
    # its media_type and size_bytes
    source_url: str | None = None
    # the W3C traceparent of the request that made it (traces on, shared/tracing/): every
    # run of the job reads the record, so its trace goes on across requeues and page ranges
    traceparent: str | None = None
    # when the orphan sweep last put it back in the queue (its worker died): the next run's
    # queue wait (a span) begins there, not at its creation
    requeued_at: datetime | None = None


def utcnow() -> datetime:
    return datetime.now(UTC)


def dump_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# what a record must hold to be one: a hash without them is no job (answered as not found)
_REQUIRED = ("job_id", "status", "created_at")


def to_fields(record: JobRecord) -> dict[str, str]:
    """The hash of a new record (the error and worker fields come with later changes)."""
    fields = {
        k: dump_value(v)
        for k, v in record.model_dump(exclude={"error", "options"}).items()
        if v is not None
    }
    fields["options"] = record.options.model_dump_json(exclude_defaults=True)
    return fields


def from_fields(job_id: str, data: dict[str, str]) -> JobRecord | None:
    """The record a hash holds; None when it is no job (empty, or partial)."""
    if not data:
        return None
    if any(name not in data for name in _REQUIRED):
        # only a foreign or pre-fix write makes one; it is no job, and must not be a 500
        log.warning("job=%s record is partial (fields %s); taken as gone", job_id, sorted(data))
        return None
    error = None
    if "error_code" in data:
        error = JobError(
            code=ErrorCode(data.pop("error_code")), message=data.pop("error_message", "")
        )
    options = JobOptions.model_validate_json(data.pop("options", "{}"))
    return JobRecord.model_validate({**data, "error": error, "options": options})
