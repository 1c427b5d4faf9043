from __future__ import annotations

import uuid

import pytest
import redis

from shared.errors import JobNotFound, QueueUnavailable
from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, utcnow
from tests.conftest import UNIT_REDIS_URL


def _new(store: JobStore) -> str:
    job_id = uuid.uuid4().hex
    store.create(JobRecord(job_id=job_id, status=JobStatus.queued, created_at=utcnow()))
    return job_id


def test_lifecycle_running_progress_succeeded(redis_client: redis.Redis) -> None:
    store = JobStore(connect_redis(UNIT_REDIS_URL), ttl_seconds=100)
    job_id = _new(store)

    store.claim(job_id, "w1:1", 30)
    store.set_pages_total(job_id, 3)
    store.page_done(job_id, 1)
    store.page_done(job_id, 2)
    running = store.require(job_id)
    store.succeed(job_id)
    done = store.require(job_id)

    assert (running.status, running.pages_done, running.pages_total) == ("running", 2, 3)
    assert running.started_at is not None and running.attempts == 1
    assert done.status is JobStatus.succeeded and done.finished_at is not None
    assert 90 <= redis_client.ttl(f"ocrq:job:{job_id}") <= 100


def test_failed_keeps_code_and_message(redis_client: redis.Redis) -> None:
    store = JobStore(connect_redis(UNIT_REDIS_URL), ttl_seconds=100)
    job_id = _new(store)

    store.fail(job_id, "invalid_image", "cannot decode")

    record = store.require(job_id)
    assert record.status is JobStatus.failed
    assert record.error is not None
    assert (record.error.code, record.error.message) == ("invalid_image", "cannot decode")


def test_unknown_job_raises_not_found(redis_client: redis.Redis) -> None:
    store = JobStore(connect_redis(UNIT_REDIS_URL), ttl_seconds=100)
    assert store.get("f" * 32) is None
    with pytest.raises(JobNotFound):
        store.require("f" * 32)


def test_unreachable_redis_is_queue_unavailable() -> None:
    store = JobStore(connect_redis("redis://127.0.0.1:6399/0"), ttl_seconds=100)
    with pytest.raises(QueueUnavailable):
        store.get("f" * 32)
