"""What a job's events mean: the job as it was right after each of them.

A record is the state after its job's last event; the state at an earlier one is folded from
the events themselves, because each carries what its change wrote (scripts.py: `running` its
time and attempt, `page` the progress numbers, an end its time and a failure's code). Only a
failure's message is the record's alone, and a failure is always the last event.

This fold is the Python side of the transitions in scripts.py: a script that writes another
field into the record writes it into its event too, and `record_after` reads it there
(tests/unit/shared/test_job_timeline.py replays every path of a job on the real Redis and
checks the fold ends at the record the scripts left).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.jobs.events import EventKind, JobEvent
from shared.jobs.record import JobError, JobRecord, JobStatus

# the status each event leaves the job in (`page` leaves it as it was: running)
_STATUS_AFTER = {
    EventKind.queued: JobStatus.queued,
    EventKind.running: JobStatus.running,
    EventKind.requeued: JobStatus.queued,  # a range's (`range`): the job stays running
    EventKind.succeeded: JobStatus.succeeded,
    EventKind.failed: JobStatus.failed,
    EventKind.canceled: JobStatus.canceled,
}


def event_order(event_id: str) -> tuple[int, int]:
    """A stream id ("<ms>-<seq>") as something that sorts like the stream."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def as_created(record: JobRecord) -> JobRecord:
    """The job before its first event: queued, nothing run. Its page count is the latest one
    (events of jobs queued before `queued` carried one had none)."""
    return record.model_copy(
        update={
            "status": JobStatus.queued,
            "started_at": None,
            "finished_at": None,
            "pages_done": 0,
            "pages_failed": 0,
            "attempts": 0,
            "error": None,
            "requeued_at": None,
        }
    )


def record_after(record: JobRecord, event: JobEvent) -> JobRecord:
    """The job right after `event`, given the job right before it."""
    update: dict[str, Any] = {}
    if event.kind is EventKind.queued:  # with the page count the API found, if it did
        update = {"pages_done": 0, "pages_failed": 0}
        if event.pages_total is not None:
            update["pages_total"] = event.pages_total
    elif event.kind is EventKind.running:  # CLAIM: one more attempt, progress from zero
        update = {"started_at": event.at, "pages_done": 0, "pages_failed": 0}
        if event.attempt is not None:
            update["attempts"] = event.attempt
    elif event.kind is EventKind.page:  # PROGRESS, PAGE
        done = event.pages_done if event.pages_done is not None else record.pages_done
        failed = event.pages_failed if event.pages_failed is not None else record.pages_failed
        update = {"pages_done": done, "pages_failed": failed, "pages_total": event.pages_total}
    elif event.kind is EventKind.requeued:  # RECOVER: back in the queue, progress from zero
        # RANGE_RECOVER (`range`): one range of a running job went back; its pages are not
        # counted twice, so progress stays
        if event.range is None:  # its time: where the next run's queue wait begins
            update = {"pages_done": 0, "pages_failed": 0, "requeued_at": event.at}
    else:  # END, CANCEL, RECOVER's and RANGE_RECOVER's worker_lost
        update = {"finished_at": event.at}
        if event.pages_failed is not None:
            update["pages_failed"] = event.pages_failed
        if event.kind is EventKind.failed and event.code is not None:
            update["error"] = JobError(code=event.code, message="")
    if event.kind in _STATUS_AFTER and not (
        event.kind is EventKind.requeued and event.range is not None
    ):
        update["status"] = _STATUS_AFTER[event.kind]
    return record.model_copy(update=update)


@dataclass(frozen=True)
class Moment:
    """The job right after one of its events: one message of a status stream."""

    event_id: str | None  # None: a job read with no event (none kept)
    kind: str  # the event's kind; the record's status when there is no event
    record: JobRecord

    @property
    def terminal(self) -> bool:
        return self.record.status.terminal


def latest(record: JobRecord, events: list[JobEvent]) -> Moment:
    """The job now (`record`, read together with `events`), under its latest event."""
    last = events[-1] if events else None
    return Moment(last.id if last else None, last.kind if last else record.status, record)


def moments_after(record: JobRecord, events: list[JobEvent], after_id: str) -> list[Moment]:
    """The job at every event after stream id `after_id`; the last one is `record` itself
    (exact: a failure's message too)."""
    state = as_created(record)
    after = event_order(after_id)
    moments = []
    for event in events:
        state = record_after(state, event)
        if event_order(event.id) > after:
            moments.append(Moment(event.id, event.kind, state))
    if moments and moments[-1].event_id == events[-1].id:
        moments[-1] = latest(record, events)
    return moments


def next_moment(moment: Moment, event: JobEvent) -> Moment:
    """The job after a live `event`, folded onto the moment before it."""
    return Moment(event.id, event.kind, record_after(moment.record, event))
