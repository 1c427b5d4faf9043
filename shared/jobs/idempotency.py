"""Idempotency-Key -> job: the key, its value format and its compare-and-set.

A key is scoped per API key and stored hashed. While its first upload streams it holds a
claim (`pending:<uuid>`, lapsing after PENDING_SECONDS if the API dies meanwhile); once the
job exists it is bound to it (`<job id> <fingerprint of the upload>`), kept as long as the job
lives and JOB_TTL_SECONDS after its end, like the job's record: a repeat of a long-running
job's submit finds it, however long it runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import redis

from shared.jobs import keys, scripts
from shared.jobs.connection import redis_errors_as_unavailable, text_or_none

PENDING_SECONDS = 600
_PENDING_PREFIX = "pending:"


@dataclass(frozen=True)
class Pending:
    """Another request (or this one) is uploading under the key."""

    value: str


@dataclass(frozen=True)
class Bound:
    """The key names a job; `fingerprint` says which upload made it (None: an old value)."""

    job_id: str
    fingerprint: str | None

    @property
    def value(self) -> str:
        return f"{self.job_id} {self.fingerprint}" if self.fingerprint else self.job_id


def _parse(value: str | None) -> Pending | Bound | None:
    if value is None:
        return None
    if value.startswith(_PENDING_PREFIX):
        return Pending(value)
    job_id, _, fingerprint = value.partition(" ")
    return Bound(job_id, fingerprint or None)


class Idempotency:
    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self.ttl = ttl_seconds
        self._swap = client.register_script(scripts.IDEMPOTENCY_SWAP)
        self._bind = client.register_script(scripts.IDEMPOTENCY_BIND)
        self._release = client.register_script(scripts.IDEMPOTENCY_RELEASE)

    @redis_errors_as_unavailable
    def lookup(self, scope: str | None, key: str) -> Pending | Bound | None:
        return _parse(text_or_none(self._redis.get(keys.idempotency(scope, key))))

    @redis_errors_as_unavailable
    def claim(self, scope: str | None, key: str, replacing: Bound | None) -> Pending | None:
        """Claim the key for a new upload, if it is free or still bound to `replacing` (a job
        that was canceled or expired); None when a concurrent request got there first."""
        claim = Pending(f"{_PENDING_PREFIX}{uuid.uuid4().hex}")
        expected = replacing.value if replacing else ""
        won = self._swap(
            keys=[keys.idempotency(scope, key)], args=[expected, claim.value, PENDING_SECONDS]
        )
        return claim if won == 1 else None

    @redis_errors_as_unavailable
    def bind(
        self, scope: str | None, key: str, claim: Pending, job_id: str, fingerprint: str
    ) -> bool:
        """Point the claimed key at the job its upload became, for as long as the job lives
        (and JOB_TTL_SECONDS after its end)."""
        bound = Bound(job_id, fingerprint)
        args: list[str | int] = [claim.value, bound.value, self.ttl]
        return self._bind(keys=[keys.idempotency(scope, key), keys.job(job_id)], args=args) == 1

    @redis_errors_as_unavailable
    def release(self, scope: str | None, key: str, claim: Pending) -> None:
        """Forget a claim that did not become a job (the upload was rejected)."""
        self._release(keys=[keys.idempotency(scope, key)], args=[claim.value])
