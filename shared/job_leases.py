"""Job leases: who runs a job right now, and recovery of jobs whose worker died.

A worker claims a job by taking its lease (a short-TTL key) and keeps renewing it while the
job runs. If the worker dies (SIGKILL, OOM, lost node), the lease lapses within
JOB_LEASE_SECONDS and any sweeper (every worker, and the API) puts the job back in the queue,
or fails it with `worker_lost` once JOB_MAX_ATTEMPTS runs have died. Part of the job store:
only this module and shared/jobs.py touch job keys.
"""

from __future__ import annotations

import enum

import redis

from shared.jobs import KEY_PREFIX, _job_key, utcnow

RUNNING_SET = f"{KEY_PREFIX}running"  # jobs with a lease taken, to find orphans without SCAN
REQUEUE_SET = f"{KEY_PREFIX}requeue"  # orphans set back to queued whose message is not sent yet


def _lease_key(job_id: str) -> str:
    return f"{KEY_PREFIX}lease:{job_id}"


class Claim(enum.StrEnum):
    claimed = "claimed"  # this worker runs the job now
    busy = "busy"  # another live worker holds it (a redelivered message): drop this one
    missing = "missing"  # no record: expired or deleted
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


# KEYS: job, lease, running set. ARGV: holder, lease seconds, now, job id.
# A running job's record has no TTL (one written by an older version loses it here).
_CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'queued' and status ~= 'running' then return status end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 'busy' end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[3], 'pages_done', 0,
           'worker', ARGV[1])
redis.call('PERSIST', KEYS[1])
return 'claimed'
"""

# KEYS: lease. ARGV: holder, lease seconds.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease, running set. ARGV: holder, job id.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""

# KEYS: job, lease, running set, requeue set. ARGV: max attempts, job ttl, now, job id.
# A failed job's record expires JOB_TTL_SECONDS from now; a requeued one keeps no TTL.
_RECOVER = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  redis.call('SREM', KEYS[3], ARGV[4])
  return 'missing'
end
if status ~= 'running' then
  redis.call('SREM', KEYS[3], ARGV[4])
  return 'gone'
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'alive' end
redis.call('SREM', KEYS[3], ARGV[4])
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if attempts >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'finished_at', ARGV[3],
             'error_code', 'worker_lost',
             'error_message', 'the worker running this job died ' .. attempts .. ' time(s)')
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 'failed'
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'pages_done', 0)
redis.call('PERSIST', KEYS[1])
redis.call('SADD', KEYS[4], ARGV[4])
return 'requeued'
"""


class JobLeases:
    def __init__(self, client: redis.Redis, job_ttl_seconds: int) -> None:
        self.redis = client
        self.ttl = job_ttl_seconds
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._recover = client.register_script(_RECOVER)

    def claim(self, job_id: str, holder: str, lease_seconds: int) -> Claim:
        """Take the job's lease and mark it running (one more attempt), if it is free."""
        result = self._claim(
            keys=[_job_key(job_id), _lease_key(job_id), RUNNING_SET],
            args=[holder, lease_seconds, utcnow().isoformat(), job_id],
        )
        return Claim(result)

    def renew(self, job_id: str, holder: str, lease_seconds: int) -> bool:
        return self._renew(keys=[_lease_key(job_id)], args=[holder, lease_seconds]) == 1

    def release(self, job_id: str, holder: str) -> None:
        self._release(keys=[_lease_key(job_id), RUNNING_SET], args=[holder, job_id])

    def holder(self, job_id: str) -> str | None:
        return self.redis.get(_lease_key(job_id))

    def running(self) -> list[str]:
        return sorted(self.redis.smembers(RUNNING_SET))

    def recover(self, job_id: str, max_attempts: int) -> str:
        """'requeued', 'failed' (worker_lost), 'alive' (lease held), 'gone' (not running) or
        'missing' (its record is gone: expired or lost by Redis)."""
        return self._recover(
            keys=[_job_key(job_id), _lease_key(job_id), RUNNING_SET, REQUEUE_SET],
            args=[max_attempts, self.ttl, utcnow().isoformat(), job_id],
        )

    def pending_requeues(self) -> list[str]:
        return sorted(self.redis.smembers(REQUEUE_SET))

    def requeue_sent(self, job_id: str) -> None:
        self.redis.srem(REQUEUE_SET, job_id)
