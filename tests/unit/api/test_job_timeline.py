"""A status stream's messages folded from a job's events: the job as GET /jobs/{id} shows it
at each event, the last one the record itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.job_timeline import current_step, event_order, steps_after
from api.schemas import JobView
from shared.error_codes import ErrorCode
from shared.jobs import EventKind, JobError, JobEvent, JobRecord, JobStatus

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
JOB = "0123456789abcdef0123456789abcdef"


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(n: int, kind: EventKind, **fields: object) -> JobEvent:
    return JobEvent(id=f"{1000 + n}-0", kind=kind, job_id=JOB, at=at(n), **fields)


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


def test_each_step_is_the_job_right_after_its_event() -> None:
    steps = steps_after(RECORD, EVENTS, "0-0", NOW)
    assert [s.event_id for s in steps] == [e.id for e in EVENTS]
    shown = [
        (s.view.status, s.view.started_at, s.view.progress.pages_done, s.view.finished_at)
        for s in steps
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
    assert all(s.view.progress.pages_total == 2 for s in steps)
    assert steps[-1].view == NOW  # with the failure's message
    assert [s.terminal for s in steps] == [False] * 6 + [True]


def test_a_resume_gets_only_the_later_events_and_the_current_state_comes_alone() -> None:
    later = steps_after(RECORD, EVENTS, EVENTS[3].id, NOW)
    assert [s.kind for s in later] == [EventKind.running, EventKind.page, EventKind.failed]
    assert steps_after(RECORD, EVENTS, EVENTS[-1].id, NOW) == []
    now = current_step(RECORD, EVENTS, NOW)
    assert (now.event_id, now.kind, now.view) == (EVENTS[-1].id, "failed", NOW)


def test_stream_ids_sort_by_time_then_sequence() -> None:
    assert event_order("1700000000000-10") > event_order("1700000000000-9")
    assert event_order("1700000000001-0") > event_order("1700000000000-99")
