"""JobRunner and DELETE /jobs/{id}: a canceled job stops before its next page and stays canceled.

The real rapidocr engine reads the pages; the cancel arrives from a JobStore hook that runs
when a page is reported done, as a DELETE from the API would between two pages.
"""

from __future__ import annotations

from shared.jobs import JobStatus


def test_job_canceled_while_running_stops_before_the_next_page(runner, tiff_job) -> None:
    job_id, files = tiff_job(4)
    runner.store.on_page_done = lambda jid, n: runner.store.cancel(jid) if n == 2 else None

    assert runner.run(job_id) is JobStatus.canceled

    record = runner.store.require(job_id)
    assert record.status is JobStatus.canceled
    assert (record.pages_done, record.pages_total) == (2, 4)  # pages 3 and 4 never read
    assert not files.input_dir.exists() and not files.output_dir.exists()


def test_cancel_after_the_last_page_is_not_overwritten_by_success(runner, tiff_job) -> None:
    job_id, files = tiff_job(1)
    runner.store.on_page_done = lambda jid, n: runner.store.cancel(jid)

    assert runner.run(job_id) is JobStatus.canceled

    assert runner.store.require(job_id).status is JobStatus.canceled
    assert not files.output_dir.exists()


def test_job_canceled_while_queued_is_never_run(runner, tiff_job) -> None:
    job_id, _ = tiff_job(1)
    runner.store.cancel(job_id)

    assert runner.run(job_id) is JobStatus.canceled

    record = runner.store.require(job_id)
    assert record.attempts == 0 and record.pages_done == 0
