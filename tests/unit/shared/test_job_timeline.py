"""What a job's events mean (shared/jobs/timeline.py): the job at each event, folded from the
events alone, the last one the record itself; and, on the real Redis, the fold of every path a
job can take through the scripts ends at the record those scripts left."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis

from api.schemas import JobView
from api.sse import Step
from shared.error_codes import ErrorCode
from shared.jobs import (
    EventKind,
    JobError,
    JobEvent,
    JobRecord,
    JobStatus,
    JobStore,
    connect_redis,
    utcnow,
)
from shared.jobs import keys as job_keys
from shared.jobs.timeline import as_created, event_order, latest, moments_after, record_after
from tests.conftest import UNIT_REDIS_URL

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
JOB = "0123456789abcdef0123456789abcdef"


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(n: int, kind: EventKind, **fields: object) -> JobEvent:
    return JobEvent(id=f"{1000 + n}-0", kind=kind, job_id=JOB, at=at(n), **fields)  # type: ignore[arg-type]


EVENTS = [
    event(0, EventKind.queued, pages_total=2),
    event(1, EventKind.running, attempt=1),
    event(2, EventKind.page, pages_done=1, pages_total=2),
    event(3, EventKind.requeued, attempt=1),
    event(4, EventKind.running, attempt=2),
    event(5, EventKind.page, pages_done=1, pages_total=2),
    event(6, EventKind.failed, code=ErrorCode.timeout),
]
RECORD = JobRecord(
    job_id=JOB,
    status=JobStatus.failed,
    created_at=T0,
    started_at=at(4),
    finished_at=at(6),
    pages_done=1,
    pages_total=2,
    attempts=2,
    error=JobError(code=ErrorCode.timeout, message="page 2 took too long"),
)
NOW = JobView.of(RECORD)  # the job as GET /jobs/{id} shows it


def test_each_moment_is_the_job_right_after_its_event() -> None:
    moments = moments_after(RECORD, EVENTS, "0-0")
    assert [m.event_id for m in moments] == [e.id for e in EVENTS]
    shown = [
        (m.record.status, m.record.started_at, m.record.pages_done, m.record.finished_at)
        for m in moments
    ]
    assert shown == [
        (JobStatus.queued, None, 0, None),
        (JobStatus.running, at(1), 0, None),
        (JobStatus.running, at(1), 1, None),
        (JobStatus.queued, at(1), 0, None),
        (JobStatus.running, at(4), 0, None),
        (JobStatus.running, at(4), 1, None),
        (JobStatus.failed, at(4), 1, at(6)),
    ]
    assert all(m.record.pages_total == 2 for m in moments)
    assert [m.record.attempts for m in moments] == [0, 1, 1, 1, 2, 2, 2]
    assert moments[-1].record == RECORD  # with the failure's message
    assert [m.terminal for m in moments] == [False] * 6 + [True]
    # the API shapes each moment like GET /jobs/{id}; the last one is that answer exactly
    steps = [Step.shown(m, NOW) for m in moments]
    assert steps[-1].view == NOW
    assert [s.view.progress.pages_done for s in steps] == [0, 0, 1, 0, 0, 1, 1]


def test_a_resume_gets_only_the_later_events_and_the_current_state_comes_alone() -> None:
    later = moments_after(RECORD, EVENTS, EVENTS[3].id)
    assert [m.kind for m in later] == [EventKind.running, EventKind.page, EventKind.failed]
    assert moments_after(RECORD, EVENTS, EVENTS[-1].id) == []
    now = latest(RECORD, EVENTS)
    assert (now.event_id, now.kind, now.record) == (EVENTS[-1].id, "failed", RECORD)


def test_stream_ids_sort_by_time_then_sequence() -> None:
    assert event_order("1700000000000-10") > event_order("1700000000000-9")
    assert event_order("1700000000001-0") > event_order("1700000000000-99")


# -- the fold against the scripts, on the real Redis --


def _lapse(client: redis.Redis, job_id: str) -> None:
    """Its worker died: the lease is gone (as it lapses, without waiting for it)."""
    client.delete(job_keys.lease(job_id))


def _succeeds(store: JobStore, job_id: str, client: redis.Redis) -> None:
    store.claim(job_id, "w1:1", 30)
    store.set_pages_total(job_id, 2)
    store.page_done(job_id, 1)
    store.page_done(job_id, 2)
    store.succeed(job_id)


def _fails(store: JobStore, job_id: str, client: redis.Redis) -> None:
    store.claim(job_id, "w1:1", 30)
    store.set_pages_total(job_id, 3)
    store.fail(job_id, ErrorCode.invalid_image, "cannot decode page 1")


def _canceled_queued(store: JobStore, job_id: str, client: redis.Redis) -> None:
    store.cancel(job_id)


def _canceled_running(store: JobStore, job_id: str, client: redis.Redis) -> None:
    store.claim(job_id, "w1:1", 30)
    store.set_pages_total(job_id, 3)
    store.page_done(job_id, 1)
    store.cancel(job_id)
    store.page_done(job_id, 2)  # refused: nothing written
    store.succeed(job_id)


def _requeued_then_succeeds(store: JobStore, job_id: str, client: redis.Redis) -> None:
    store.claim(job_id, "w1:1", 30)
    store.set_pages_total(job_id, 2)
    store.page_done(job_id, 1)
    _lapse(client, job_id)
    store.recover(job_id, max_attempts=3)
    _succeeds(store, job_id, client)


def _worker_lost(store: JobStore, job_id: str, client: redis.Redis) -> None:
    for holder in ("w1:1", "w2:1"):
        store.claim(job_id, holder, 30)
        store.set_pages_total(job_id, 2)
        _lapse(client, job_id)
        store.recover(job_id, max_attempts=2)


def _still_running(store: JobStore, job_id: str, client: redis.Redis) -> None:
    store.claim(job_id, "w1:1", 30)
    _lapse(client, job_id)
    store.recover(job_id, max_attempts=3)
    store.claim(job_id, "w2:1", 30)
    store.set_pages_total(job_id, 4)
    store.page_done(job_id, 3)


PATHS: dict[str, Callable[[JobStore, str, redis.Redis], None]] = {
    "succeeds": _succeeds,
    "fails": _fails,
    "canceled while queued": _canceled_queued,
    "canceled while running": _canceled_running,
    "requeued, then succeeds": _requeued_then_succeeds,
    "fails worker_lost": _worker_lost,
    "running again after a requeue": _still_running,
}


@pytest.mark.parametrize("pages_total", [None, 5])
@pytest.mark.parametrize("path", list(PATHS))
def test_the_fold_of_a_jobs_events_is_the_record_its_scripts_left(
    redis_client: redis.Redis, path: str, pages_total: int | None
) -> None:
    store = JobStore(connect_redis(UNIT_REDIS_URL), 100)
    job_id = uuid.uuid4().hex
    created = JobRecord(
        job_id=job_id, status=JobStatus.queued, created_at=utcnow(), pages_total=pages_total
    )
    store.create(created)
    PATHS[path](store, job_id, redis_client)

    record, events = store.history(job_id)
    assert record is not None and events
    folded = as_created(record)
    for each in events:
        folded = record_after(folded, each)
    # a failure's message is the record's alone (events carry its code)
    expected = record
    if record.error is not None:
        expected = record.model_copy(
            update={"error": record.error.model_copy(update={"message": ""})}
        )
    assert folded == expected
    assert as_created(record) == created.model_copy(update={"pages_total": record.pages_total})
