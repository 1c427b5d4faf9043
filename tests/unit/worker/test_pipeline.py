"""JobRunner with the real rapidocr engine: text read back, failures recorded, reruns safe."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest

from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, utcnow
from shared.settings import Settings
from shared.storage import JobFiles
from tests.textimages import INVOICE_LINES, encode, normalize_lines, render_page
from worker.engines import OcrEngine, build_engine
from worker.pipeline import JobRunner


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    warm = build_engine(Settings())
    warm.warm()
    return warm


@pytest.fixture
def runner(settings: Settings, engine: OcrEngine) -> JobRunner:
    return JobRunner(settings, JobStore(connect_redis(settings.redis_url), 600), engine)


@pytest.fixture
def submit(runner: JobRunner) -> Callable[[bytes, str], str]:
    def _submit(data: bytes, media_type: str) -> str:
        job_id = uuid.uuid4().hex
        files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)
        files.make_input_dir()
        files.input_path.write_bytes(data)
        runner.store.create(
            JobRecord(
                job_id=job_id, status=JobStatus.queued, created_at=utcnow(), media_type=media_type
            )
        )
        return job_id

    return _submit


def test_recognizes_rendered_page_and_writes_three_results(runner, submit) -> None:
    job_id = submit(encode(render_page(INVOICE_LINES)), "image/png")

    assert runner.run(job_id) is JobStatus.succeeded

    files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)
    document = json.loads(files.result_path("json").read_text())
    assert normalize_lines(document["text"]) == [text for text, _ in INVOICE_LINES]
    page = document["pages"][0]
    assert (page["index"], page["width"]) == (1, 1200)
    assert all(0.5 < b["score"] <= 1 and len(b["bbox"]) == 4 for b in page["blocks"])
    assert "Invoice number 20461" in files.result_path("markdown").read_text()
    assert files.result_path("text").read_text().strip() == document["text"]
    record = runner.store.require(job_id)
    assert (record.status, record.pages_done, record.pages_total) == ("succeeded", 1, 1)
    assert not files.input_dir.exists()  # upload removed once the result is safe


def test_broken_image_fails_the_job_with_a_code(runner, submit) -> None:
    png = encode(render_page(INVOICE_LINES))
    job_id = submit(png[: len(png) // 2], "image/png")  # truncated

    assert runner.run(job_id) is JobStatus.failed

    record = runner.store.require(job_id)
    assert record.error is not None and record.error.code == "invalid_image"


def test_decompression_bomb_fails_with_image_too_large(runner, submit) -> None:
    from PIL import Image

    bomb = encode(Image.new("1", (30000, 30000)), "PNG", optimize=True)
    assert len(bomb) < 200_000
    job_id = submit(bomb, "image/png")

    assert runner.run(job_id) is JobStatus.failed
    assert runner.store.require(job_id).error.code == "image_too_large"  # type: ignore[union-attr]


def test_rerun_of_finished_job_does_nothing(runner, submit) -> None:
    job_id = submit(encode(render_page([("Once only", 30)], 400)), "image/png")
    assert runner.run(job_id) is JobStatus.succeeded
    attempts = runner.store.require(job_id).attempts

    assert runner.run(job_id) is JobStatus.succeeded
    assert runner.store.require(job_id).attempts == attempts


def test_redelivered_running_job_runs_again_with_same_outputs(runner, submit) -> None:
    job_id = submit(encode(render_page([("Crash safe 42", 30)], 400)), "image/png")
    runner.store.mark_running(job_id)  # as if a worker died mid-job

    assert runner.run(job_id) is JobStatus.succeeded
    files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)
    assert files.result_path("text").read_text().strip() == "Crash safe 42"
    assert runner.store.require(job_id).attempts == 2


def test_multipage_tiff_gives_one_result_page_per_frame(runner, submit) -> None:
    first = render_page([("Page one 111", 30)], 500)
    second = render_page([("Page two 222", 30)], 500)
    tiff = encode(first, "TIFF", save_all=True, append_images=[second])
    job_id = submit(tiff, "image/tiff")

    assert runner.run(job_id) is JobStatus.succeeded

    files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)
    document = json.loads(files.result_path("json").read_text())
    assert [p["text"] for p in document["pages"]] == ["Page one 111", "Page two 222"]
    assert "<!-- page 2 -->" in document["markdown"]
