"""JobRunner and DELETE /jobs/{id}: a canceled job stops before its next page and stays canceled.

The real rapidocr engine reads the pages; the cancel arrives from a JobStore hook that runs
when a page is reported done, as a DELETE from the API would between two pages.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, utcnow
from shared.settings import Settings
from shared.storage import JobFiles
from tests.textimages import encode, render_page
from worker.boot import build_runner
from worker.engines import OcrEngine, build_engine
from worker.pipeline import JobRunner
from worker.routing import EngineRouter


class CancelingStore(JobStore):
    """Runs `on_page_done(n)` after page n is recorded: where a user's DELETE may land."""

    on_page_done: Callable[[str, int], None] = staticmethod(lambda job_id, n: None)

    def set_pages_done(self, job_id: str, pages_done: int) -> None:
        super().set_pages_done(job_id, pages_done)
        self.on_page_done(job_id, pages_done)


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    warm = build_engine(Settings())
    warm.warm()
    return warm


@pytest.fixture
def runner(settings: Settings, engine: OcrEngine) -> JobRunner:
    store = CancelingStore(connect_redis(settings.redis_url), 600)
    runner, _ = build_runner(settings, store.redis, EngineRouter([engine]), "test:1", store)
    return runner


def _submit(runner: JobRunner, pages: int) -> tuple[str, JobFiles]:
    job_id = uuid.uuid4().hex
    files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)
    files.make_input_dir()
    images = [render_page([(f"Page {n}", 20)], 200) for n in range(pages)]
    files.input_path.write_bytes(encode(images[0], "TIFF", save_all=True, append_images=images[1:]))
    runner.store.create(
        JobRecord(
            job_id=job_id, status=JobStatus.queued, created_at=utcnow(), media_type="image/tiff"
        )
    )
    return job_id, files


def test_job_canceled_while_running_stops_before_the_next_page(runner: JobRunner) -> None:
    job_id, files = _submit(runner, pages=4)
    runner.store.on_page_done = lambda jid, n: runner.store.cancel(jid) if n == 2 else None

    assert runner.run(job_id) is JobStatus.canceled

    record = runner.store.require(job_id)
    assert record.status is JobStatus.canceled
    assert (record.pages_done, record.pages_total) == (2, 4)  # pages 3 and 4 never read
    assert not files.input_dir.exists() and not files.output_dir.exists()


def test_cancel_after_the_last_page_is_not_overwritten_by_success(runner: JobRunner) -> None:
    job_id, files = _submit(runner, pages=1)
    runner.store.on_page_done = lambda jid, n: runner.store.cancel(jid)

    assert runner.run(job_id) is JobStatus.canceled

    assert runner.store.require(job_id).status is JobStatus.canceled
    assert not files.output_dir.exists()


def test_job_canceled_while_queued_is_never_run(runner: JobRunner) -> None:
    job_id, _ = _submit(runner, pages=1)
    runner.store.cancel(job_id)

    assert runner.run(job_id) is JobStatus.canceled

    record = runner.store.require(job_id)
    assert record.attempts == 0 and record.pages_done == 0
