"""How a job ends when something is gone: its record (expired, lost by Redis), its upload, or
the room on OUTPUT_DIR. The real rapidocr engine, the real Redis, a real full tmpfs."""

from __future__ import annotations

import logging

import pytest

from shared.jobs import JobStatus
from shared.storage import JobFiles
from testkit.pages import encode, render_page, text_pdf
from tests.fulldisk import fill, small_tmpfs

GONE = "record is gone (expired or Redis lost it); stopping without touching its files"


def _lose_record(runner, job_id: str) -> None:
    runner.store.redis.delete(f"ocrq:job:{job_id}")


def test_record_lost_between_pages_stops_the_job_and_keeps_its_files(
    runner, tiff_job, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, files = tiff_job(3)
    runner.store.on_page_done = lambda jid, n: _lose_record(runner, jid) if n == 1 else None

    with caplog.at_level(logging.INFO, logger="worker.pipeline"):
        assert runner.run(job_id) is None

    assert f"job={job_id} {GONE}" in caplog.text
    assert "canceled" not in caplog.text
    assert files.input_path.is_file()  # nothing deleted: the retention sweep decides later
    assert runner.store.get(job_id) is None
    assert not runner.store.redis.exists(f"ocrq:job:{job_id}")  # not recreated by progress
    assert runner.store.running() == []


def test_record_lost_after_the_last_page_keeps_the_written_results(
    runner, tiff_job, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, files = tiff_job(1)
    runner.store.on_page_done = lambda jid, n: _lose_record(runner, jid)

    with caplog.at_level(logging.INFO, logger="worker.pipeline"):
        assert runner.run(job_id) is None

    assert f"job={job_id} {GONE}" in caplog.text
    assert files.result_path("json").is_file() and files.input_path.is_file()


def test_queued_job_whose_record_is_gone_is_logged_and_its_upload_kept(
    runner, tiff_job, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, files = tiff_job(1)
    _lose_record(runner, job_id)

    with caplog.at_level(logging.INFO, logger="worker.pipeline"):
        assert runner.run(job_id) is None

    assert f"job={job_id} {GONE}" in caplog.text
    assert files.input_path.is_file()
    assert not runner.store.redis.exists(f"ocrq:job:{job_id}")


@pytest.mark.parametrize("media_type", ["image/png", "application/pdf"])
def test_a_missing_upload_fails_input_missing(runner, submit, media_type: str) -> None:
    data = encode(render_page([("Gone 1", 30)], 300)) if "png" in media_type else text_pdf([[]])
    job_id = submit(data, media_type)
    files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)
    files.input_path.unlink()

    assert runner.run(job_id) is JobStatus.failed

    error = runner.store.require(job_id).error
    assert error is not None
    assert (error.code, error.message) == ("input_missing", "the uploaded file is gone")


def test_a_failed_job_leaves_no_upload_and_no_partial_result(runner, submit) -> None:
    png = encode(render_page([("Half written", 30)], 400))
    job_id = submit(png[: len(png) // 2], "image/png")  # truncated: fails invalid_image
    files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)
    files.write_result("markdown", b"left by a run that died")

    assert runner.run(job_id) is JobStatus.failed

    assert runner.store.require(job_id).error.code == "invalid_image"  # type: ignore[union-attr]
    assert not files.input_dir.exists() and not files.output_dir.exists()


def test_a_full_output_dir_fails_insufficient_storage_and_leaves_nothing(
    runner, submit, tmp_path
) -> None:
    lines = [(f"Line {n} of a page that needs room", 24) for n in range(12)]
    job_id = submit(encode(render_page(lines, 900)), "image/png")
    files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)

    with small_tmpfs(runner.settings.output_dir, size="256k") as output:
        filler = fill(output)

        assert runner.run(job_id) is JobStatus.failed

        error = runner.store.require(job_id).error
        assert error is not None and error.code == "insufficient_storage"
        assert error.message == "the result cannot be stored: No space left on device"
        assert sorted(p.name for p in output.iterdir()) == [filler.name]
        assert not files.input_dir.exists()
