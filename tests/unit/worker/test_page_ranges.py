"""A job of several page ranges, run range by range in one process: planned once, each range
stored, the last one assembling the result in page order."""

from __future__ import annotations

import json

from shared.jobs import JobStatus
from shared.jobs.outcomes import RangeClaim
from testkit.pages import encode, render_page
from worker.pipeline import JobRunner


def test_ranges_are_planned_read_and_assembled_in_page_order(runner: JobRunner, submit) -> None:
    runner.settings = runner.settings.model_copy(update={"page_range_size": 2})
    images = [render_page([(f"Page {n}", 24)], 300) for n in range(1, 6)]
    job_id = submit(
        encode(images[0], "TIFF", save_all=True, append_images=images[1:]), "image/tiff"
    )

    assert runner.run(job_id) is JobStatus.running  # planned; range 0 read here
    assert runner.store.plan_of(job_id) == (3, 2)
    assert runner.store.pending_range_sends(job_id) == [(job_id, 1), (job_id, 2)]
    assert runner.run_range(job_id, 2) is JobStatus.running
    assert runner.run_range(job_id, 2) is None  # done already: not read again
    assert runner.run_range(job_id, 1) is JobStatus.succeeded  # the last one assembles

    record = runner.store.require(job_id)
    assert (record.pages_done, record.pages_failed, record.pages_total) == (5, 0, 5)
    files = runner._files(job_id)
    result = json.loads(files.result_path("json").read_text())
    assert [p["index"] for p in result["pages"]] == [1, 2, 3, 4, 5]
    assert [p["text"] for p in result["pages"]] == [f"Page {n}" for n in range(1, 6)]
    assert not files.input_dir.exists()  # the upload and the ranges' files are gone
    assert runner.store.claim_range(job_id, 1, "late:1", 30) is RangeClaim.succeeded
