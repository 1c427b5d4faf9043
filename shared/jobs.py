"""Job states and the JobStore: the only code that touches job keys in Redis."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

import redis
from pydantic import BaseModel

from shared.errors import JobNotFound, QueueUnavailable
from shared.options import JobOptions

P = ParamSpec("P")
T = TypeVar("T")

KEY_PREFIX = "ocrq:"


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed)


class JobError(BaseModel):
    code: str
    message: str


class JobRecord(BaseModel):
    """A job as stored in its Redis hash."""

    job_id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    pages_done: int = 0
    pages_total: int | None = None
    error: JobError | None = None
    filename: str | None = None
    media_type: str | None = None
    size_bytes: int | None = None
    attempts: int = 0
    options: JobOptions = JobOptions()


def utcnow() -> datetime:
    return datetime.now(UTC)


def redis_errors_as_unavailable(func: Callable[P, T]) -> Callable[P, T]:
    """Turn Redis connection trouble into QueueUnavailable (503 queue_unavailable)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise QueueUnavailable(f"the job store (Redis) is unreachable: {exc}") from exc

    return wrapper


def connect_redis(url: str) -> redis.Redis:
    """A client with short timeouts so a dead Redis fails fast instead of hanging requests."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=10,
        retry_on_timeout=False,
    )


def _job_key(job_id: str) -> str:
    return f"{KEY_PREFIX}job:{job_id}"


def _dump(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class JobStore:
    """Job records as Redis hashes `ocrq:job:<id>` that expire after the retention time."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl = ttl_seconds

    @redis_errors_as_unavailable
    def create(self, record: JobRecord) -> None:
        fields = {
            k: _dump(v)
            for k, v in record.model_dump(exclude={"error", "options"}).items()
            if v is not None
        }
        fields["options"] = record.options.model_dump_json(exclude_defaults=True)
        pipe = self.redis.pipeline()
        pipe.hset(_job_key(record.job_id), mapping=fields)
        pipe.expire(_job_key(record.job_id), self.ttl)
        pipe.execute()

    @redis_errors_as_unavailable
    def get(self, job_id: str) -> JobRecord | None:
        data = self.redis.hgetall(_job_key(job_id))
        if not data:
            return None
        error = None
        if "error_code" in data:
            error = JobError(code=data.pop("error_code"), message=data.pop("error_message", ""))
        options = JobOptions.model_validate_json(data.pop("options", "{}"))
        return JobRecord.model_validate({**data, "error": error, "options": options})

    def require(self, job_id: str) -> JobRecord:
        record = self.get(job_id)
        if record is None:
            raise JobNotFound(f"no job with id {job_id!r} (unknown or expired)")
        return record

    @redis_errors_as_unavailable
    def delete(self, job_id: str) -> None:
        self.redis.delete(_job_key(job_id))

    def _update(self, job_id: str, **fields: object) -> None:
        key = _job_key(job_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={k: _dump(v) for k, v in fields.items()})
        pipe.expire(key, self.ttl)
        pipe.execute()

    def mark_running(self, job_id: str) -> None:
        self.redis.hincrby(_job_key(job_id), "attempts", 1)
        self._update(job_id, status=JobStatus.running.value, started_at=utcnow(), pages_done=0)

    def set_pages_total(self, job_id: str, pages_total: int) -> None:
        self._update(job_id, pages_total=pages_total)

    def set_pages_done(self, job_id: str, pages_done: int) -> None:
        self._update(job_id, pages_done=pages_done)

    def mark_succeeded(self, job_id: str) -> None:
        self._update(job_id, status=JobStatus.succeeded.value, finished_at=utcnow())

    def mark_failed(self, job_id: str, code: str, message: str) -> None:
        self._update(
            job_id,
            status=JobStatus.failed.value,
            finished_at=utcnow(),
            error_code=code,
            error_message=message[:2000],
        )
