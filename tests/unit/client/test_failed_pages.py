"""The client reads failed pages as the service writes them: `progress.pages_failed` of a job,
and a result page's `error` (the server's own models make the JSON, so the two cannot drift)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from api.schemas import JobView
from ocrq_client import Document, Job
from shared.error_codes import ErrorCode
from shared.jobs import JobRecord, JobStatus
from shared.results import Block, PageError, PageResult
from tests.unit.client.scripted import JOB_ID, Script
from worker.results import build_document

AT = datetime(2026, 12, 6, tzinfo=UTC)


def _result_json() -> str:
    good = PageResult(
        index=1, width=100, height=50, text="Hello", blocks=[Block(text="Hello", bbox=[1, 1, 9, 9])]
    )
    bad = PageResult(
        index=2,
        width=0,
        height=0,
        error=PageError(code=ErrorCode.image_too_large, message="more than 120000000 pixels"),
    )
    return build_document(JOB_ID, "rapidocr", [good, bad]).model_dump_json()


def test_a_job_reads_pages_failed_and_an_older_server_means_zero() -> None:
    record = JobRecord(
        job_id=JOB_ID,
        status=JobStatus.succeeded,
        created_at=AT,
        pages_done=3,
        pages_total=3,
        pages_failed=2,
    )

    job = Job.model_validate_json(JobView.of(record).model_dump_json())

    assert (job.progress.pages_done, job.progress.pages_failed) == (3, 2)
    older = {"job_id": JOB_ID, "status": "succeeded", "created_at": AT.isoformat()}
    assert Job.model_validate({**older, "progress": {"pages_done": 1}}).progress.pages_failed == 0


def test_document_gives_the_failed_pages_with_their_errors() -> None:
    script = Script(httpx.Response(200, content=_result_json()))

    document = script.client().document(JOB_ID)

    assert isinstance(document, Document)
    assert [p.index for p in document.pages] == [1, 2]
    (failed,) = document.failed_pages
    assert failed.index == 2 and failed.blocks == [] and failed.text == ""
    assert failed.error is not None
    assert (failed.error.code, failed.error.message) == (
        "image_too_large",
        "more than 120000000 pixels",
    )
    assert document.pages[0].error is None and document.pages[0].blocks[0]["text"] == "Hello"
    assert script.requests[0].url.params["format"] == "json"


def test_ocrq_status_shows_failed_pages_only_when_there_are_some(capsys) -> None:
    from ocrq_client.cli.commands import _print_job

    base = {"job_id": JOB_ID, "status": "succeeded", "created_at": AT.isoformat()}
    _print_job(Job.model_validate({**base, "progress": {"pages_done": 3, "pages_total": 3}}), False)
    clean = capsys.readouterr().out
    partial_job = {**base, "progress": {"pages_done": 3, "pages_total": 3, "pages_failed": 1}}
    _print_job(Job.model_validate(partial_job), False)
    partial = capsys.readouterr().out

    assert "failed" not in clean
    assert "pages    3/3\nfailed   1 page(s): see the result's errors\n" in partial
