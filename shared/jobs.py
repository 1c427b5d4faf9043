"""Job states and the JobStore: the only code that touches job keys in Redis."""

from __future__ import annotations

import enum
import functools
import hashlib
import logging
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
    # sha256 of the API key that created the job (never the key): only that key may see it
    owner: str | None = None


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


def _idempotency_key(scope: str | None, key: str) -> str:
    """Hashed, so neither the client's key nor the API key it is scoped to is stored as is."""
    digest = hashlib.sha256(f"{scope or ''}\n{key}".encode()).hexdigest()
    return f"{KEY_PREFIX}idem:{digest}"


# A state change of the job's own life (running, succeeded, failed): never on a canceled job,
# never on a record that is gone (HSET would resurrect a partial hash without created_at).
# A live record has no TTL; the retention time counts from the job's end.
# KEYS[1] job key; ARGV[1] ttl (0: the job is still live, keep it); ARGV[2] "1" to count an
# attempt; ARGV[3..] field, value, ...
_TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status == 'canceled' then return 0 end
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if tonumber(ARGV[1]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
else
  redis.call('PERSIST', KEYS[1])
end
return 1
"""

# Progress (pages_total, pages_done): written only into a record that exists, so a record that
# is gone is never recreated as a partial hash; its TTL (none while the job lives) is kept.
# KEYS[1] job key; ARGV field, value, ...
_PROGRESS = """
if redis.call('HEXISTS', KEYS[1], 'job_id') == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# Cancel a queued or running job; answer the status it had (nil when unknown).
_CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status == 'queued' or status == 'running' then
  redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return status
"""

# Compare-and-set: ARGV[1] the expected value ('' = absent), ARGV[2] the new one, ARGV[3] ttl.
# With '' expected this is SET NX: of two concurrent identical submits only one wins.
_SWAP = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _dump(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# what a record must hold to be one: a hash without them is no job (answered as not found)
_REQUIRED = ("job_id", "status", "created_at")


class JobStore:
    """Job records as Redis hashes `ocrq:job:<id>`.

    A record has no TTL while its job is queued or running; it expires JOB_TTL_SECONDS after
    the job ended (succeeded, failed or canceled).
    """

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl = ttl_seconds
        self._transition_script = client.register_script(_TRANSITION)
        self._progress_script = client.register_script(_PROGRESS)
        self._cancel_script = client.register_script(_CANCEL)
        self._swap_script = client.register_script(_SWAP)
        self._release_script = client.register_script(_RELEASE)

    @redis_errors_as_unavailable
    def create(self, record: JobRecord) -> None:
        fields = {
            k: _dump(v)
            for k, v in record.model_dump(exclude={"error", "options"}).items()
            if v is not None
        }
        fields["options"] = record.options.model_dump_json(exclude_defaults=True)
        # no TTL: a queued job's record lives until the job ends, however long it waits
        self.redis.hset(_job_key(record.job_id), mapping=fields)

    @redis_errors_as_unavailable
    def get(self, job_id: str) -> JobRecord | None:
        data = self.redis.hgetall(_job_key(job_id))
        if not data:
            return None
        if any(name not in data for name in _REQUIRED):
            # only a foreign or pre-fix write makes one; it is no job, and must not be a 500
            log.warning("job=%s record is partial (fields %s); taken as gone", job_id, sorted(data))
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

    def _progress(self, job_id: str, **fields: object) -> None:
        """Record progress; JobNotFound when the record is gone (expired or lost by Redis)."""
        args = [item for name, value in fields.items() for item in (name, _dump(value))]
        if self._progress_script(keys=[_job_key(job_id)], args=args) != 1:
            raise JobNotFound(f"the record of job {job_id} is gone")

    def _transition(self, job_id: str, count_attempt: bool = False, **fields: object) -> bool:
        """Apply a worker-side state change unless the job was canceled (or is gone).

        A terminal state starts the record's retention time (JOB_TTL_SECONDS)."""
        terminal = JobStatus(str(fields["status"])).terminal
        args: list[object] = [self.ttl if terminal else 0, "1" if count_attempt else "0"]
        for name, value in fields.items():
            args += [name, _dump(value)]
        return self._transition_script(keys=[_job_key(job_id)], args=args) == 1

    def mark_running(self, job_id: str) -> bool:
        """False when the job was canceled meanwhile (or expired): do not run it."""
        return self._transition(
            job_id,
            count_attempt=True,
            status=JobStatus.running.value,
            started_at=utcnow(),
            pages_done=0,
        )

    def set_pages_total(self, job_id: str, pages_total: int) -> None:
        self._progress(job_id, pages_total=pages_total)

    def set_pages_done(self, job_id: str, pages_done: int) -> None:
        self._progress(job_id, pages_done=pages_done)

    def mark_succeeded(self, job_id: str) -> bool:
        """False when the job was canceled while it ran: `canceled` stays."""
        return self._transition(job_id, status=JobStatus.succeeded.value, finished_at=utcnow())

    def mark_failed(self, job_id: str, code: str, message: str) -> bool:
        return self._transition(
            job_id,
            status=JobStatus.failed.value,
            finished_at=utcnow(),
            error_code=code,
            error_message=message[:2000],
        )

    @redis_errors_as_unavailable
    def cancel(self, job_id: str) -> JobStatus | None:
        """Cancel a queued or running job at once; the status it had, None if unknown.

        A running job's worker sees `canceled` before its next page and stops there.
        """
        before = self._cancel_script(keys=[_job_key(job_id)], args=[self.ttl, _dump(utcnow())])
        return JobStatus(before) if before else None

    def status(self, job_id: str) -> JobStatus | None:
        """The job's status alone (one HGET); None when its record is gone."""
        status = self.redis.hget(_job_key(job_id), "status")
        return JobStatus(status) if status else None

    # -- Idempotency-Key -> job id, scoped per API key, kept JOB_TTL_SECONDS from the submit --
    @redis_errors_as_unavailable
    def idempotent_job(self, scope: str | None, key: str) -> str | None:
        """What the key points at: "<job id> <fingerprint>", a pending claim, or None."""
        return self.redis.get(_idempotency_key(scope, key))

    @redis_errors_as_unavailable
    def swap_idempotent_job(
        self, scope: str | None, key: str, expected: str | None, value: str, ttl: int
    ) -> bool:
        """Point the key at `value` if it still points at `expected` (None: not set)."""
        return (
            self._swap_script(
                keys=[_idempotency_key(scope, key)], args=[expected or "", value, ttl]
            )
            == 1
        )

    @redis_errors_as_unavailable
    def release_idempotent_job(self, scope: str | None, key: str, value: str) -> None:
        """Forget a claim that did not become a job (the upload was rejected)."""
        self._release_script(keys=[_idempotency_key(scope, key)], args=[value])

    @redis_errors_as_unavailable
    def exists_many(self, job_ids: list[str]) -> set[str]:
        """The ids among `job_ids` that still have a record: one round trip for a whole sweep."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.exists(_job_key(job_id))
        return {job_id for job_id, found in zip(job_ids, pipe.execute(), strict=True) if found}
