"""Leases on the real Redis: one runner at a time, orphans back in the queue, then worker_lost."""

from __future__ import annotations

import time
import uuid

import redis

from shared.jobs import Claim, JobRecord, JobStatus, JobStore, Recovery, connect_redis, utcnow
from tests.conftest import UNIT_REDIS_URL


def _queued(store: JobStore) -> str:
    job_id = uuid.uuid4().hex
    store.create(JobRecord(job_id=job_id, status=JobStatus.queued, created_at=utcnow()))
    return job_id


def test_one_runner_at_a_time_and_finished_jobs_are_not_rerun(redis_client: redis.Redis) -> None:
    store = JobStore(connect_redis(UNIT_REDIS_URL), 600)
    job_id = _queued(store)

    assert store.claim(job_id, "w1:1", 30) is Claim.claimed
    assert store.claim(job_id, "w2:7", 30) is Claim.busy  # a redelivered message elsewhere
    assert store.require(job_id).status is JobStatus.running
    store.succeed(job_id)
    store.release(job_id, "w1:1")
    assert store.claim(job_id, "w2:7", 30) is Claim.succeeded
    assert store.claim(uuid.uuid4().hex, "w2:7", 30) is Claim.missing
    assert store.require(job_id).attempts == 1


def test_lapsed_lease_is_requeued_then_fails_worker_lost(redis_client: redis.Redis) -> None:
    store = JobStore(connect_redis(UNIT_REDIS_URL), 600)
    job_id = _queued(store)

    store.claim(job_id, "w1:1", 1)
    assert store.recover(job_id, max_attempts=2) is Recovery.alive
    time.sleep(1.2)  # the worker died: nobody renews
    before = utcnow()
    assert store.recover(job_id, max_attempts=2) is Recovery.requeued
    requeued = store.require(job_id)
    assert requeued.status is JobStatus.queued
    assert requeued.requeued_at is not None and requeued.requeued_at >= before  # its wait's start
    assert store.pending_requeues() == [job_id]
    assert store.recover(job_id, max_attempts=2) is Recovery.gone  # only one sweeper takes it

    store.requeue_sent(job_id)
    assert store.claim(job_id, "w2:1", 1) is Claim.claimed
    assert not store.renew(job_id, "w1:1", 1)  # the old holder cannot renew
    time.sleep(1.2)
    assert store.recover(job_id, max_attempts=2) is Recovery.failed
    record = store.require(job_id)
    assert record.status is JobStatus.failed and record.attempts == 2
    assert record.error is not None and record.error.code == "worker_lost"
    assert store.running() == []
