"""JobStore: canceling is final, and an Idempotency-Key claim is won by exactly one caller."""

from __future__ import annotations

import uuid

import redis

from shared.jobs import Bound, Claim, JobRecord, JobStatus, JobStore, Pending, connect_redis, utcnow
from shared.jobs.keys import idempotency
from tests.conftest import UNIT_REDIS_URL


def _store() -> JobStore:
    return JobStore(connect_redis(UNIT_REDIS_URL), ttl_seconds=100)


def _new(store: JobStore) -> str:
    job_id = uuid.uuid4().hex
    store.create(JobRecord(job_id=job_id, status=JobStatus.queued, created_at=utcnow()))
    return job_id


def test_cancel_queued_job_and_the_worker_cannot_start_it(redis_client: redis.Redis) -> None:
    store = _store()
    job_id = _new(store)

    assert store.cancel(job_id) is JobStatus.queued
    assert store.claim(job_id, "w1:1", 30) is Claim.canceled

    record = store.require(job_id)
    assert record.status is JobStatus.canceled and record.status.terminal
    assert record.finished_at is not None and record.attempts == 0


def test_cancel_running_job_is_not_overwritten_by_success_or_failure(
    redis_client: redis.Redis,
) -> None:
    store = _store()
    job_id = _new(store)
    assert store.claim(job_id, "w1:1", 30) is Claim.claimed

    assert store.cancel(job_id) is JobStatus.running
    assert store.status(job_id) is JobStatus.canceled
    assert store.succeed(job_id) is False
    assert store.fail(job_id, "internal_error", "late") is False

    record = store.require(job_id)
    assert (record.status, record.error) == (JobStatus.canceled, None)


def test_cancel_of_finished_or_unknown_job_changes_nothing(redis_client: redis.Redis) -> None:
    store = _store()
    job_id = _new(store)
    store.claim(job_id, "w1:1", 30)
    store.succeed(job_id)

    assert store.cancel(job_id) is JobStatus.succeeded
    assert store.require(job_id).status is JobStatus.succeeded
    assert store.cancel("f" * 32) is None
    assert not redis_client.exists(f"ocrq:job:{'f' * 32}")


def test_state_change_of_an_expired_job_does_not_resurrect_it(redis_client: redis.Redis) -> None:
    store = _store()

    assert store.claim("e" * 32, "w1:1", 30) is Claim.missing
    assert store.succeed("e" * 32) is False
    assert store.get("e" * 32) is None


def test_idempotency_claim_is_won_once_and_released_only_by_its_owner(
    redis_client: redis.Redis,
) -> None:
    store = _store()

    keys = store.idempotency

    won = keys.claim("k1", "sha-1", None)
    assert isinstance(won, Pending)
    assert keys.claim("k1", "sha-1", None) is None
    assert keys.claim("k2", "sha-1", None) is not None  # another scope
    keys.release("k1", "sha-1", Pending("pending:someone-else"))  # not the owner: no effect
    assert keys.lookup("k1", "sha-1") == won
    assert keys.bind("k1", "sha-1", won, "f" * 32, "fp") is True
    assert keys.lookup("k1", "sha-1") == Bound("f" * 32, "fp")
    assert redis_client.get(idempotency("k1", "sha-1")) == f"{'f' * 32} fp"  # the value format
    stored = redis_client.keys("ocrq:idem:*")
    assert len(stored) == 2 and not any("sha-1" in k or "k1" in k for k in stored)  # hashed
    assert 90 <= redis_client.ttl(idempotency("k1", "sha-1")) <= 100


def test_an_idempotency_key_bound_to_a_canceled_job_is_claimed_again(
    redis_client: redis.Redis,
) -> None:
    keys = _store().idempotency
    claim = keys.claim(None, "again", None)
    assert claim is not None and keys.bind(None, "again", claim, "a" * 32, "fp")
    bound = keys.lookup(None, "again")
    assert isinstance(bound, Bound) and keys.claim(None, "again", Bound("b" * 32, "x")) is None
    assert keys.claim(None, "again", bound) is not None  # only from what it holds now
    redis_client.set(idempotency(None, "old"), "c" * 32)  # a value without a fingerprint
    assert keys.lookup(None, "old") == Bound("c" * 32, None)
