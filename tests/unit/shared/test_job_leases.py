"""Leases on the real Redis: one runner at a time, orphans back in the queue, then worker_lost."""

from __future__ import annotations

import time
import uuid

import redis
from shared.job_leases import Claim, JobLeases

from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, utcnow
from tests.conftest import UNIT_REDIS_URL


def _queued(store: JobStore) -> str:
    job_id = uuid.uuid4().hex
    store.create(JobRecord(job_id=job_id, status=JobStatus.queued, created_at=utcnow()))
    return job_id


def test_one_runner_at_a_time_and_finished_jobs_are_not_rerun(redis_client: redis.Redis) -> None:
    client = connect_redis(UNIT_REDIS_URL)
    store, leases = JobStore(client, 600), JobLeases(client, 600)
    job_id = _queued(store)

    assert leases.claim(job_id, "w1:1", 30) is Claim.claimed
    assert leases.claim(job_id, "w2:7", 30) is Claim.busy  # a redelivered message elsewhere
    assert store.require(job_id).status is JobStatus.running
    store.mark_succeeded(job_id)
    leases.release(job_id, "w1:1")
    assert leases.claim(job_id, "w2:7", 30) is Claim.succeeded
    assert leases.claim(uuid.uuid4().hex, "w2:7", 30) is Claim.missing
    assert store.require(job_id).attempts == 1


def test_lapsed_lease_is_requeued_then_fails_worker_lost(redis_client: redis.Redis) -> None:
    client = connect_redis(UNIT_REDIS_URL)
    store, leases = JobStore(client, 600), JobLeases(client, 600)
    job_id = _queued(store)

    leases.claim(job_id, "w1:1", 1)
    assert leases.recover(job_id, max_attempts=2) == "alive"
    time.sleep(1.2)  # the worker died: nobody renews
    assert leases.recover(job_id, max_attempts=2) == "requeued"
    assert store.require(job_id).status is JobStatus.queued
    assert leases.pending_requeues() == [job_id]
    assert leases.recover(job_id, max_attempts=2) == "gone"  # only one sweeper takes it

    leases.requeue_sent(job_id)
    assert leases.claim(job_id, "w2:1", 1) is Claim.claimed
    assert not leases.renew(job_id, "w1:1", 1)  # the old holder cannot renew
    time.sleep(1.2)
    assert leases.recover(job_id, max_attempts=2) == "failed"
    record = store.require(job_id)
    assert record.status is JobStatus.failed and record.attempts == 2
    assert record.error is not None and record.error.code == "worker_lost"
    assert leases.running() == []
