"""What a webhook says of failed pages: the progress' `pages_failed`, and a `page` event's page
and outcome (the fields the job package's events carry since issue 28)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.error_codes import ErrorCode
from shared.jobs import EventKind, JobEvent, JobRecord, JobStatus
from shared.options import JobOptions
from worker.webhooks.dispatcher import event_body

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
JOB = "c" * 32


@dataclass(frozen=True)
class PageEvent(JobEvent):
    """A `page` event as the worker's change writes it: its page and that page's outcome."""

    page: int | None = None
    outcome: str | None = None
    pages_failed: int | None = None


def _record(**update: object) -> JobRecord:
    options = JobOptions(callback_url="https://hooks.example/ocr", callback_events="all")
    record = JobRecord(job_id=JOB, status=JobStatus.succeeded, created_at=AT, options=options)
    return record.model_copy(update={"pages_total": 3, "pages_done": 3, **update})


def test_the_end_event_carries_the_failed_page_count() -> None:
    event = JobEvent(id="1-0", kind=EventKind.succeeded, job_id=JOB, at=AT)

    body = json.loads(event_body("d", event, _record(pages_failed=2)))

    assert body["progress"] == {"pages_done": 3, "pages_total": 3, "pages_failed": 2}
    assert "page" not in body


def test_a_clean_end_says_zero() -> None:
    event = JobEvent(id="1-0", kind=EventKind.succeeded, job_id=JOB, at=AT)

    assert json.loads(event_body("d", event, _record()))["progress"]["pages_failed"] == 0


def test_a_page_event_says_which_page_and_how_it_went() -> None:
    failed = PageEvent(
        id="1-1",
        kind=EventKind.page,
        job_id=JOB,
        at=AT,
        pages_done=2,
        pages_total=3,
        code=ErrorCode.image_too_large,
        page=2,
        outcome="failed",
        pages_failed=1,
    )
    read = PageEvent(
        id="1-2", kind=EventKind.page, job_id=JOB, at=AT, pages_done=3, page=3, outcome="ok"
    )
    running = _record(status=JobStatus.running, pages_failed=1)

    failed_body = json.loads(event_body("d", failed, running))
    read_body = json.loads(event_body("d", read, running))

    assert failed_body["page"] == {"number": 2, "outcome": "failed", "code": "image_too_large"}
    assert failed_body["progress"] == {"pages_done": 2, "pages_total": 3, "pages_failed": 1}
    assert read_body["page"] == {"number": 3, "outcome": "ok", "code": None}


def test_a_page_event_that_names_no_page_has_no_page_field() -> None:
    event = JobEvent(id="1-1", kind=EventKind.page, job_id=JOB, at=AT, pages_done=1)

    assert "page" not in json.loads(event_body("d", event, _record(status=JobStatus.running)))
