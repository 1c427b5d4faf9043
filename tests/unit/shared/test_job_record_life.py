"""A job record's life on the real Redis: no TTL while the job lives, retention from its end,
no write that recreates a record that is gone, and a partial hash read as no job."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from shared.errors import JobNotFound
from shared.jobs import (
    JobRecord,
    JobStatus,
    JobStore,
    Recovery,
    connect_redis,
    recover_orphans,
    utcnow,
)
from shared.queue import make_celery
from shared.settings import Settings
from shared.storage import JobFiles
from tests.conftest import UNIT_REDIS_URL
from worker.retention_sweep import sweep_expired_jobs

TTL = 100


def _store(ttl: int = TTL) -> JobStore:
    return JobStore(connect_redis(UNIT_REDIS_URL), ttl)


def _queued(store: JobStore) -> str:
    job_id = uuid.uuid4().hex
    store.create(JobRecord(job_id=job_id, status=JobStatus.queued, created_at=utcnow()))
    return job_id


def _ttl(client: redis.Redis, job_id: str) -> int:
    return client.ttl(f"ocrq:job:{job_id}")


def test_a_live_record_has_no_ttl_and_retention_counts_from_the_end(
    redis_client: redis.Redis,
) -> None:
    store = _store()
    ended = {}
    for end in ("succeeded", "failed", "canceled"):
        job_id = _queued(store)
        assert _ttl(redis_client, job_id) == -1  # queued: kept however long it waits
        store.claim(job_id, "w1:1", 30)
        store.set_pages_total(job_id, 2)
        store.page_done(job_id, 1)
        assert _ttl(redis_client, job_id) == -1  # running: kept however long it runs
        if end == "succeeded":
            store.succeed(job_id)
        elif end is Recovery.failed:
            store.fail(job_id, "invalid_image", "bad")
        else:
            store.cancel(job_id)
        ended[end] = _ttl(redis_client, job_id)
    assert all(TTL - 5 <= ttl <= TTL for ttl in ended.values()), ended


def test_a_requeued_record_keeps_no_ttl_and_worker_lost_starts_it(
    redis_client: redis.Redis,
) -> None:
    store = _store()
    job_id = _queued(store)
    redis_client.expire(f"ocrq:job:{job_id}", 50)  # written by an older version, with a TTL
    store.claim(job_id, "w1:1", 1)
    assert _ttl(redis_client, job_id) == -1
    time.sleep(1.2)
    assert store.recover(job_id, max_attempts=2) is Recovery.requeued
    assert _ttl(redis_client, job_id) == -1
    store.claim(job_id, "w2:1", 1)
    time.sleep(1.2)
    assert store.recover(job_id, max_attempts=2) is Recovery.failed
    assert TTL - 5 <= _ttl(redis_client, job_id) <= TTL


def test_progress_on_a_record_that_is_gone_raises_and_writes_nothing(
    redis_client: redis.Redis,
) -> None:
    store = _store()
    job_id = _queued(store)
    store.claim(job_id, "w1:1", 30)
    redis_client.delete(f"ocrq:job:{job_id}")  # expired, or lost by a Redis restart

    with pytest.raises(JobNotFound):
        store.page_done(job_id, 1)
    with pytest.raises(JobNotFound):
        store.set_pages_total(job_id, 3)
    assert store.succeed(job_id) is False
    assert store.fail(job_id, "internal_error", "late") is False
    assert store.status(job_id) is None
    assert not redis_client.exists(f"ocrq:job:{job_id}")


def test_a_partial_record_reads_as_no_job(redis_client: redis.Redis) -> None:
    store = _store()
    job_id = uuid.uuid4().hex
    redis_client.hset(f"ocrq:job:{job_id}", mapping={"pages_done": 3})  # as older versions did

    assert store.get(job_id) is None
    with pytest.raises(JobNotFound):
        store.require(job_id)


def test_recovery_forgets_a_running_job_whose_record_is_gone(redis_client: redis.Redis) -> None:
    store = _store()
    job_id = _queued(store)
    store.claim(job_id, "w1:1", 1)
    redis_client.delete(f"ocrq:job:{job_id}")
    time.sleep(1.2)

    assert store.recover(job_id, max_attempts=3) is Recovery.missing
    assert store.running() == []
    assert not redis_client.exists(f"ocrq:job:{job_id}")


def test_worker_lost_removes_the_upload_and_partial_results(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = _store()
    job_id = _queued(store)
    files = JobFiles(settings.temp_dir, settings.output_dir, job_id)
    files.make_input_dir()
    files.input_path.write_bytes(b"%PDF-1.4")
    store.claim(job_id, "w1:1", 1)
    files.write_result("markdown", b"half a result")  # the run died before result.json
    time.sleep(1.2)

    one_attempt = settings.model_copy(update={"job_max_attempts": 1})
    report = recover_orphans(store, make_celery(settings), one_attempt)

    assert report.failed == [job_id]
    assert store.require(job_id).error.code == "worker_lost"  # type: ignore[union-attr]
    assert not files.input_dir.exists() and not files.output_dir.exists()


def test_retention_keeps_the_folders_of_a_job_queued_longer_than_the_ttl(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = _store(ttl=1)
    job_id = _queued(store)
    files = JobFiles(settings.temp_dir, settings.output_dir, job_id)
    files.make_input_dir()
    files.input_path.write_bytes(b"%PDF-1.4")
    time.sleep(1.5)  # longer than JOB_TTL_SECONDS: only an ended job's record expires

    removed = sweep_expired_jobs(store, [settings.temp_dir], 0, now=time.time() + 3600)

    assert removed == []
    assert files.input_path.is_file()
    assert store.require(job_id).status is JobStatus.queued
