"""JobStore: canceling is final, and an Idempotency-Key claim is won by exactly one caller."""

from __future__ import annotations

import uuid

import redis

from shared.jobs import JobRecord, JobStatus, JobStore, _idempotency_key, connect_redis, utcnow
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
    assert store.mark_running(job_id) is False

    record = store.require(job_id)
    assert record.status is JobStatus.canceled and record.status.terminal
    assert record.finished_at is not None and record.attempts == 0


def test_cancel_running_job_is_not_overwritten_by_success_or_failure(
    redis_client: redis.Redis,
) -> None:
    store = _store()
    job_id = _new(store)
    assert store.mark_running(job_id) is True

    assert store.cancel(job_id) is JobStatus.running
    assert store.status(job_id) is JobStatus.canceled
    assert store.mark_succeeded(job_id) is False
    assert store.mark_failed(job_id, "internal_error", "late") is False

    record = store.require(job_id)
    assert (record.status, record.error) == (JobStatus.canceled, None)


def test_cancel_of_finished_or_unknown_job_changes_nothing(redis_client: redis.Redis) -> None:
    store = _store()
    job_id = _new(store)
    store.mark_running(job_id)
    store.mark_succeeded(job_id)

    assert store.cancel(job_id) is JobStatus.succeeded
    assert store.require(job_id).status is JobStatus.succeeded
    assert store.cancel("f" * 32) is None
    assert not redis_client.exists(f"ocrq:job:{'f' * 32}")


def test_state_change_of_an_expired_job_does_not_resurrect_it(redis_client: redis.Redis) -> None:
    store = _store()

    assert store.mark_running("e" * 32) is False
    assert store.mark_succeeded("e" * 32) is False
    assert store.get("e" * 32) is None


def test_idempotency_claim_is_won_once_and_released_only_by_its_owner(
    redis_client: redis.Redis,
) -> None:
    store = _store()

    assert store.swap_idempotent_job("k1", "sha-1", None, "pending:a", 60) is True
    assert store.swap_idempotent_job("k1", "sha-1", None, "pending:b", 60) is False
    assert store.swap_idempotent_job("k2", "sha-1", None, "pending:c", 60) is True  # other scope
    store.release_idempotent_job("k1", "sha-1", "pending:b")  # not the owner: no effect
    assert store.idempotent_job("k1", "sha-1") == "pending:a"
    assert store.swap_idempotent_job("k1", "sha-1", "pending:a", "f" * 32, 100) is True
    assert store.idempotent_job("k1", "sha-1") == "f" * 32
    keys = redis_client.keys("ocrq:idem:*")
    assert len(keys) == 2 and not any("sha-1" in k or "k1" in k for k in keys)  # hashed
    assert 90 <= redis_client.ttl(_idempotency_key("k1", "sha-1")) <= 100
