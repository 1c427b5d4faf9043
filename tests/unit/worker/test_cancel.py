"""JobRunner and DELETE /jobs/{id}: a canceled job stops before its next page and stays canceled."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, utcnow
from shared.results import Block
from shared.settings import Settings
from shared.storage import JobFiles
from tests.textimages import encode, render_page
from worker.engines import EngineInfo, Recognition
from worker.pipeline import JobRunner


class StubEngine:
    """Reads every page as 'page'; runs `on_page` after each, as a cancel would arrive."""

    name = "stub"

    def __init__(self) -> None:
        self.pages = 0
        self.on_page: Callable[[int], None] = lambda _: None

    def info(self) -> EngineInfo:
        return EngineInfo(self.name, "cpu")

    def warm(self) -> None:
        pass

    def recognize(self, image) -> Recognition:
        self.pages += 1
        self.on_page(self.pages)
        return Recognition([Block(text="page", bbox=[0, 0, 1, 1])])


@pytest.fixture
def engine() -> StubEngine:
    return StubEngine()


@pytest.fixture
def runner(settings: Settings, engine: StubEngine) -> JobRunner:
    return JobRunner(settings, JobStore(connect_redis(settings.redis_url), 600), engine)


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


def test_job_canceled_while_running_stops_before_the_next_page(
    runner: JobRunner, engine: StubEngine
) -> None:
    job_id, files = _submit(runner, pages=4)
    engine.on_page = lambda n: runner.store.cancel(job_id) if n == 2 else None

    assert runner.run(job_id) is JobStatus.canceled

    assert engine.pages == 2
    record = runner.store.require(job_id)
    assert record.status is JobStatus.canceled
    assert (record.pages_done, record.pages_total) == (2, 4)
    assert not files.input_dir.exists() and not files.output_dir.exists()


def test_cancel_after_the_last_page_is_not_overwritten_by_success(
    runner: JobRunner, engine: StubEngine
) -> None:
    job_id, files = _submit(runner, pages=1)
    engine.on_page = lambda _: runner.store.cancel(job_id)

    assert runner.run(job_id) is JobStatus.canceled

    assert runner.store.require(job_id).status is JobStatus.canceled
    assert not files.output_dir.exists()


def test_job_canceled_while_queued_is_never_run(runner: JobRunner, engine: StubEngine) -> None:
    job_id, _ = _submit(runner, pages=1)
    runner.store.cancel(job_id)

    assert runner.run(job_id) is JobStatus.canceled

    assert engine.pages == 0
    assert runner.store.require(job_id).attempts == 0
