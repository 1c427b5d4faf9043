"""The job as GET /jobs/{id} shows it at each of its events: a status stream's messages.

A record is the state after its job's last event; the state at an earlier one is folded from
the events themselves (each carries what its change wrote: started_at is a `running` event's
time, progress a `page` event's numbers, finished_at an end's time). Only a failure's message
is the record's alone, and a failure is always the last event.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.schemas import JobView, Progress
from shared.jobs import EventKind, JobError, JobEvent, JobRecord, JobStatus

_ENDS = {
    EventKind.succeeded: JobStatus.succeeded,
    EventKind.failed: JobStatus.failed,
    EventKind.canceled: JobStatus.canceled,
}


def event_order(event_id: str) -> tuple[int, int]:
    """A stream id ("<ms>-<seq>") as something that sorts like the stream."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def is_terminal(kind: EventKind) -> bool:
    return kind in _ENDS


def view_after(view: JobView, event: JobEvent) -> JobView:
    """The job right after `event`, given the job right before it."""
    progress = view.progress
    if event.kind is EventKind.queued:  # with the page count the API found, if it did
        total = event.pages_total if event.pages_total is not None else progress.pages_total
        update: dict = {
            "status": JobStatus.queued,
            "progress": Progress(pages_done=0, pages_total=total),
        }
    elif event.kind is EventKind.running:
        progress = Progress(pages_done=0, pages_total=progress.pages_total)
        update = {"status": JobStatus.running, "started_at": event.at, "progress": progress}
    elif event.kind is EventKind.page:
        done = event.pages_done if event.pages_done is not None else progress.pages_done
        update = {"progress": Progress(pages_done=done, pages_total=event.pages_total)}
    elif event.kind is EventKind.requeued:
        progress = Progress(pages_done=0, pages_total=progress.pages_total)
        update = {"status": JobStatus.queued, "progress": progress}
    else:
        update = {"status": _ENDS[event.kind], "finished_at": event.at}
        if event.kind is EventKind.failed and event.code is not None:
            update["error"] = JobError(code=event.code, message="")
    return view.model_copy(update=update)


@dataclass(frozen=True)
class Step:
    """One message of a status stream: an event and the job as it was right after it."""

    event_id: str | None
    kind: str
    view: JobView

    @property
    def terminal(self) -> bool:
        return self.view.status.terminal


def current_step(record: JobRecord, events: list[JobEvent], now: JobView) -> Step:
    """The job `now` (as GET /jobs/{id} shows `record`, read together with `events`), under
    its latest event's id and kind."""
    last = events[-1] if events else None
    return Step(last.id if last else None, last.kind if last else record.status, now)


def steps_after(
    record: JobRecord, events: list[JobEvent], after_id: str, now: JobView
) -> list[Step]:
    """A message for every event after stream id `after_id`; the last one is the job `now`."""
    view = now.model_copy(
        update={
            "status": JobStatus.queued,
            "started_at": None,
            "finished_at": None,
            # events of jobs queued before `queued` carried a page count: the latest one
            "progress": Progress(pages_done=0, pages_total=record.pages_total),
            "error": None,
        }
    )
    after = event_order(after_id)
    steps = []
    for event in events:
        view = view_after(view, event)
        if event_order(event.id) > after:
            steps.append(Step(event.id, event.kind, view))
    if steps and steps[-1].event_id == events[-1].id:
        steps[-1] = current_step(record, events, now)  # exact: the error's message too
    return steps
