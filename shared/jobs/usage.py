"""Tenants' usage and quotas in Redis: per tenant (a job's owner fingerprint, `anonymous`
without a key) and UTC day, so the figures add up over every API process and worker.

Who counts what, each where the truth is:
- the API, on accepting a job: `admit` (jobs and pages submitted, checked against the key's
  `pages_per_day` and `max_queued` and added in one script, so two API processes cannot both
  take the last slot), `give_back` when the job could not be stored or queued after all;
- the worker, for a job by reference (its pages unknown at submit, admitted as one):
  `count_fetched` once it has the document, the other pages added and checked against
  `pages_per_day` (once per job, however often its run is repeated);
- the worker, in the PAGE script that records a page's outcome (scripts.py): pages done or
  failed and engine seconds by engine, once per page (its own bitmap, which a re-run of the job
  or a range after a crash does not reset);
- every end of a job (succeeded, failed, canceled, worker_lost: scripts.py `finish`) takes it
  out of its tenant's jobs queued or running.
A day's hash lives USAGE_RETENTION_DAYS after its last write (longer than the jobs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import redis

from shared.errors import JobNotFound
from shared.jobs import keys
from shared.jobs.connection import text, text_fields

USAGE_RETENTION_SECONDS = 400 * 24 * 3600
# a member of a tenant's jobs queued or running with no record this long after it was
# admitted is a submission whose API died before the record was written: dropped
_ADMITTED_UNRECORDED_SECONDS = 3600
_DAY_COUNTERS = ("jobs_submitted", "pages_submitted", "pages_done", "pages_failed")
_SECONDS = "seconds:"
PAGE_OUTCOMES = ("pages_done", "pages_failed")

# KEYS[1] the tenant's usage of today, KEYS[2] its jobs queued or running (a zset); ARGV[1]
# the job id, ARGV[2] its pages, ARGV[3] pages_per_day (0: none), ARGV[4] max_queued (0:
# none), ARGV[5] now (unix s), ARGV[6] the retention, ARGV[7] the job record prefix, ARGV[8]
# the age of an admitted job without a record that is dropped, ARGV[9] the totals hash,
# ARGV[10] the tenant. Answers {'ok'} or {limit, what is used of it}.
ADMIT = """
local pages, per_day, max_queued = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if per_day > 0 then
  local used = tonumber(redis.call('HGET', KEYS[1], 'pages_submitted') or '0')
  if used + pages > per_day then return {'pages_per_day', used} end
end
if max_queued > 0 then
  local count = redis.call('ZCARD', KEYS[2])
  if count >= max_queued then
    local stale = tonumber(ARGV[5]) - tonumber(ARGV[8])
    local members = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
    for i = 1, #members, 2 do
      local status = redis.call('HGET', ARGV[7] .. members[i], 'status')
      local ended = status and status ~= 'queued' and status ~= 'running'
      if ended or (not status and tonumber(members[i + 1]) < stale) then
        redis.call('ZREM', KEYS[2], members[i])
      end
    end
    count = redis.call('ZCARD', KEYS[2])
    if count >= max_queued then return {'max_queued', count} end
  end
end
redis.call('HINCRBY', KEYS[1], 'jobs_submitted', 1)
redis.call('HINCRBY', KEYS[1], 'pages_submitted', pages)
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('HINCRBY', ARGV[9], ARGV[10] .. '|submitted', 1)
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
return {'ok'}
"""

# ADMIT undone for a job that was not queued after all: KEYS and ARGV as ADMIT's. Only while
# the job is still a member (once), so a retried give-back counts nothing twice.
GIVE_BACK = """
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'jobs_submitted', -1)
redis.call('HINCRBY', KEYS[1], 'pages_submitted', -tonumber(ARGV[2]))
redis.call('HINCRBY', ARGV[9], ARGV[10] .. '|submitted', -1)
return 1
"""


# A job by reference, once its document is fetched: KEYS[1] the tenant's usage of the job's
# day, KEYS[2] the job's record; ARGV[1] its pages beyond the one admitted, ARGV[2]
# pages_per_day (0: none), ARGV[3] the retention, ARGV[4] its pages. Once per job (the record's
# `pages_billed`); answers {'ok'}, {'missing'} or {'pages_per_day', what is used of it}.
COUNT_FETCHED = """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
if redis.call('HEXISTS', KEYS[2], 'pages_billed') == 1 then return {'ok'} end
local extra, per_day = tonumber(ARGV[1]), tonumber(ARGV[2])
if per_day > 0 and extra > 0 then
  local used = tonumber(redis.call('HGET', KEYS[1], 'pages_submitted') or '0')
  if used + extra > per_day then return {'pages_per_day', used} end
end
redis.call('HINCRBY', KEYS[1], 'pages_submitted', extra)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], 'pages_billed', ARGV[4])
return {'ok'}
"""


@dataclass(frozen=True)
class Refusal:
    """Which limit a submission would pass, and how much of it is used."""

    limit: str  # pages_per_day or max_queued
    used: int


def _refusal(answer: object) -> Refusal | None:
    """A script's {'ok'} (None) or {limit, what is used of it}."""
    assert isinstance(answer, list)
    if text(answer[0]) == "ok":
        return None
    return Refusal(text(answer[0]), int(answer[1]))


@dataclass
class DayUsage:
    day: date
    jobs_submitted: int = 0
    pages_submitted: int = 0
    pages_done: int = 0
    pages_failed: int = 0
    engine_seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, day: date, raw: dict[str, str]) -> DayUsage:
        counts = {name: int(raw.get(name, 0)) for name in _DAY_COUNTERS}
        seconds = {
            name.removeprefix(_SECONDS): round(float(value), 3)
            for name, value in sorted(raw.items())
            if name.startswith(_SECONDS)
        }
        return cls(day, **counts, engine_seconds=seconds)


def utc_today() -> date:
    return datetime.now(UTC).date()


class TenantUsage:
    """A tenant's day figures, its jobs queued or running, and everyone's page totals."""

    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self._redis = client
        self.retention_seconds = retention_seconds
        self._admit = client.register_script(ADMIT)
        self._give_back = client.register_script(GIVE_BACK)
        self._count_fetched = client.register_script(COUNT_FETCHED)

    def _call(
        self,
        script: redis.commands.core.Script,
        owner: str | None,
        job_id: str,
        pages: int,
        day: date,
        limits: tuple[int, int] = (0, 0),
    ) -> object:
        args = (
            job_id,
            pages,
            *limits,
            int(time.time()),
            self.retention_seconds,
            keys.job(""),
            _ADMITTED_UNRECORDED_SECONDS,
            keys.USAGE_TOTALS,
            keys.tenant(owner),
        )
        day_key = keys.usage_day(owner, day.isoformat())
        return script(keys=[day_key, keys.tenant_active(owner)], args=args)

    def admit(
        self,
        owner: str | None,
        job_id: str,
        pages: int,
        day: date,
        *,
        pages_per_day: int | None = None,
        max_queued: int | None = None,
    ) -> Refusal | None:
        """Count a job of `pages` submitted on `day`, unless it would pass a limit (None:
        none): then nothing is counted and the answer names the limit."""
        limits = (pages_per_day or 0, max_queued or 0)
        return _refusal(self._call(self._admit, owner, job_id, pages, day, limits))

    def give_back(self, owner: str | None, job_id: str, pages: int, day: date) -> None:
        """Undo `admit` for a job that was not queued after all (once, however often called)."""
        self._call(self._give_back, owner, job_id, pages, day)

    def count_fetched(
        self,
        owner: str | None,
        job_id: str,
        pages: int,
        day: date,
        *,
        pages_per_day: int | None = None,
    ) -> Refusal | None:
        """A job by reference has `pages` (it was admitted as one on `day`): count the rest,
        unless that passes `pages_per_day` (then nothing is counted). Once per job; JobNotFound
        when its record is gone."""
        day_key = keys.usage_day(owner, day.isoformat())
        args = (max(pages - 1, 0), pages_per_day or 0, self.retention_seconds, pages)
        answer = self._count_fetched(keys=[day_key, keys.job(job_id)], args=args)
        if text(answer[0]) == "missing":
            raise JobNotFound(f"the record of job {job_id} is gone")
        return _refusal(answer)

    def days(self, owner: str | None, last: date, count: int) -> list[DayUsage]:
        """The tenant's figures of the `count` days up to `last`, oldest first (one round
        trip; a day without any is zeros)."""
        days = [last - timedelta(days=n) for n in reversed(range(count))]
        pipe = self._redis.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(keys.usage_day(owner, day.isoformat()))
        return [DayUsage.of(d, text_fields(r)) for d, r in zip(days, pipe.execute(), strict=True)]

    def active(self, owner: str | None) -> int:
        """The tenant's jobs queued or running now (as max_queued counts them)."""
        return int(self._redis.zcard(keys.tenant_active(owner)))

    def totals(self) -> dict[tuple[str, str], int]:
        """(tenant, what) -> count since ever, `what` one of pages_done, pages_failed and
        submitted; the tenant is an owner fingerprint or `anonymous`."""
        found: dict[tuple[str, str], int] = {}
        for name, value in text_fields(self._redis.hgetall(keys.USAGE_TOTALS)).items():
            tenant, _, what = name.rpartition("|")
            found[(tenant, what)] = int(value)
        return found
