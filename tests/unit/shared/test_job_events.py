"""Events and counters on the real Redis: every state change writes exactly one event, in the
job's stream and the global one, and counts its outcome once; nothing after a cancel does."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from shared.jobs import (
    Claim,
    EventKind,
    JobEvent,
    JobRecord,
    JobStatus,
    JobStore,
    Recovery,
    connect_redis,
    utcnow,
)
from shared.jobs.keys import job_events
from tests.conftest import UNIT_REDIS_URL

TTL = 100


@pytest.fixture
def store(redis_client: redis.Redis) -> JobStore:
    return JobStore(connect_redis(UNIT_REDIS_URL), TTL)


def _queued(store: JobStore) -> str:
    job_id = uuid.uuid4().hex
    store.create(JobRecord(job_id=job_id, status=JobStatus.queued, created_at=utcnow()))
    return job_id


def _new_events(store: JobStore, job_id: str, seen: list[JobEvent]) -> list[JobEvent]:
    """The job's events since `seen`, checked to be the same (ids too) in the global stream."""
    after = seen[-1].id if seen else None
    mine = store.events(job_id, after)
    everyone = [e for e in store.recent_events(after or "0", 1000) if e.job_id == job_id]
    assert mine == everyone
    seen.extend(mine)
    return mine


def test_each_change_of_a_job_that_succeeds_writes_one_event(store: JobStore) -> None:
    seen: list[JobEvent] = []
    job_id = _queued(store)
    (queued,) = _new_events(store, job_id, seen)
    assert (queued.kind, queued.job_id) == (EventKind.queued, job_id)

    assert store.claim(job_id, "w1:1", 30) is Claim.claimed
    (running,) = _new_events(store, job_id, seen)
    assert (running.kind, running.attempt) == (EventKind.running, 1)
    assert store.renew(job_id, "w1:1", 30)
    assert _new_events(store, job_id, seen) == []  # lease upkeep is no state change

    store.set_pages_total(job_id, 2)
    store.page_done(job_id, 1)
    pages = _new_events(store, job_id, seen)
    assert [(e.kind, e.pages_done, e.pages_total) for e in pages] == [
        (EventKind.page, 0, 2),
        (EventKind.page, 1, 2),
    ]
    assert store.succeed(job_id)
    (end,) = _new_events(store, job_id, seen)
    assert end.kind is EventKind.succeeded and end.at >= queued.at
    assert [e.id for e in seen] == sorted(e.id for e in seen)  # stream ids only grow
    assert store.metrics.counters() == {"submitted": 1, "succeeded": 1, "failed": 0, "canceled": 0}


def test_failure_and_cancel_write_their_event_and_count_once(store: JobStore) -> None:
    failed, canceled = _queued(store), _queued(store)
    store.claim(failed, "w1:1", 30)
    assert store.fail(failed, "invalid_image", "cannot decode")
    assert not store.fail(failed, "timeout", "again")  # ended: no second end, no second count
    assert not store.succeed(failed)
    assert store.cancel(canceled) is JobStatus.queued
    assert store.cancel(canceled) is JobStatus.canceled  # again: nothing more happens

    assert [(e.kind, e.code) for e in store.events(failed)][-1] == (
        EventKind.failed,
        "invalid_image",
    )
    assert [e.kind for e in store.events(canceled)] == [EventKind.queued, EventKind.canceled]
    assert store.metrics.counters() == {"submitted": 2, "succeeded": 0, "failed": 1, "canceled": 1}


def test_a_canceled_jobs_later_worker_transitions_write_nothing(store: JobStore) -> None:
    job_id = _queued(store)
    store.claim(job_id, "w1:1", 30)
    store.set_pages_total(job_id, 3)
    assert store.cancel(job_id) is JobStatus.running
    before = store.events(job_id)
    counters = store.metrics.counters()

    store.page_done(job_id, 1)  # the page in flight when the user canceled
    assert not store.succeed(job_id)
    assert not store.fail(job_id, "internal_error", "late")
    assert store.claim(job_id, "w2:1", 30) is Claim.canceled

    assert store.events(job_id) == before and before[-1].kind is EventKind.canceled
    assert store.recent_events("0", 1000)[-1] == before[-1]
    assert store.metrics.counters() == counters
    record = store.require(job_id)
    assert (record.status, record.pages_done) == (JobStatus.canceled, 0)


def test_recovery_writes_requeued_then_failed_worker_lost(store: JobStore) -> None:
    job_id = _queued(store)
    store.claim(job_id, "w1:1", 1)
    time.sleep(1.2)  # the worker died
    assert store.recover(job_id, max_attempts=2) is Recovery.requeued
    store.claim(job_id, "w2:1", 1)
    time.sleep(1.2)
    assert store.recover(job_id, max_attempts=2) is Recovery.failed

    events = store.events(job_id)
    assert [(e.kind, e.attempt, e.code) for e in events] == [
        (EventKind.queued, None, None),
        (EventKind.running, 1, None),
        (EventKind.requeued, 1, None),
        (EventKind.running, 2, None),
        (EventKind.failed, None, "worker_lost"),
    ]
    assert store.metrics.counters()["failed"] == 1


def test_events_live_as_long_as_the_record(store: JobStore, redis_client: redis.Redis) -> None:
    job_id = _queued(store)
    stream = job_events(job_id)
    assert redis_client.ttl(stream) == -1  # queued: kept however long it waits
    store.claim(job_id, "w1:1", 30)
    assert redis_client.ttl(stream) == -1
    store.succeed(job_id)
    assert TTL - 5 <= redis_client.ttl(stream) <= TTL
    assert redis_client.ttl(stream) == redis_client.ttl(f"ocrq:job:{job_id}")

    short = JobStore(connect_redis(UNIT_REDIS_URL), 1)
    ended = _queued(short)
    short.cancel(ended)
    time.sleep(1.5)
    assert short.get(ended) is None and short.events(ended) == []


def test_a_job_that_could_not_be_queued_leaves_no_event_and_no_count(store: JobStore) -> None:
    kept, dropped = _queued(store), _queued(store)
    store.delete(dropped)  # its message could not be sent

    assert store.get(dropped) is None and store.events(dropped) == []
    assert [e.job_id for e in store.recent_events("0", 1000)] == [kept]
    assert store.metrics.counters()["submitted"] == 1


def test_recent_events_pages_through_the_global_stream(store: JobStore) -> None:
    jobs = [_queued(store) for _ in range(5)]
    first = store.recent_events("0", 2)
    rest = store.recent_events(first[-1].id, 10)
    assert [e.job_id for e in first + rest] == jobs
    assert store.recent_events(rest[-1].id, 10) == []
