"""Fixtures shared by the worker tests: a warm engine, a job runner on the real Redis, jobs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from shared.error_codes import ErrorCode
from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, utcnow
from shared.options import parse_options
from shared.settings import Settings
from shared.storage import JobFiles
from testkit.pages import encode, render_page
from tests.conftest import service_fixture
from worker.boot import build_runner
from worker.engines import OcrEngine, build_engine
from worker.pipeline import JobRunner
from worker.routing import EngineRouter


@service_fixture(scope="module")
def engine() -> OcrEngine:
    warm = build_engine(Settings())
    warm.warm()
    return warm


class HookedStore(JobStore):
    """Runs `on_page_done(job_id, n)` after page n is recorded: where a user's DELETE, or a
    record lost by Redis, may land between two pages."""

    on_page_done: Callable[[str, int], None] = staticmethod(lambda job_id, n: None)

    def page_done(
        self, job_id: str, page: int, failed_code: ErrorCode | None = None, **usage: Any
    ) -> None:
        super().page_done(job_id, page, failed_code, **usage)
        self.on_page_done(job_id, page)


@pytest.fixture
def runner(settings: Settings, engine: OcrEngine) -> JobRunner:
    store = HookedStore(connect_redis(settings.redis_url), 600)
    runner, _ = build_runner(settings, store, EngineRouter([engine]), "test:1")
    return runner


@pytest.fixture
def tiff_job(
    runner: JobRunner, submit: Callable[..., str]
) -> Callable[[int], tuple[str, JobFiles]]:
    """A queued job of `pages` small TIFF frames ("Page 0", "Page 1"...): (job id, its files)."""

    def make(pages: int) -> tuple[str, JobFiles]:
        images = [render_page([(f"Page {n}", 20)], 200) for n in range(pages)]
        tiff = encode(images[0], "TIFF", save_all=True, append_images=images[1:])
        job_id = submit(tiff, "image/tiff")
        return job_id, JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)

    return make


@pytest.fixture
def submit(runner: JobRunner) -> Callable[..., str]:
    """Put an upload in TEMP_DIR and record it queued, as the API does; the job id."""

    def _submit(data: bytes, media_type: str, **options: str) -> str:
        job_id = uuid.uuid4().hex
        files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)
        files.make_input_dir()
        files.input_path.write_bytes(data)
        runner.store.create(
            JobRecord(
                job_id=job_id,
                status=JobStatus.queued,
                created_at=utcnow(),
                media_type=media_type,
                options=parse_options(options),
            )
        )
        return job_id

    return _submit


@pytest.fixture
def count_reads(monkeypatch: pytest.MonkeyPatch) -> Callable[[object], list[int]]:
    """Wrap a real engine's `read_as_given` (one pass over a page as it lies) to count passes."""

    def wrap(engine: object) -> list[int]:
        calls: list[int] = []
        read = engine.read_as_given  # type: ignore[attr-defined]

        def counted(image):
            calls.append(1)
            return read(image)

        monkeypatch.setattr(engine, "read_as_given", counted)
        return calls

    return wrap
