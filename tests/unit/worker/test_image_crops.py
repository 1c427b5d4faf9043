"""Image crops an engine cuts out of a page: stored with the result, linked through the API,
gone with a failed job. The figure engine wraps the real warm engine (its text is real OCR) and
cuts the page's top band out as a figure, as a layout engine does."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, replace

from PIL import Image

from shared.jobs import JobStatus, connect_redis
from shared.storage import JobFiles
from testkit.pages import encode, render_page
from tests.unit.worker.conftest import HookedStore
from worker.boot import build_runner
from worker.engines import EngineError, OcrEngine, Recognition
from worker.routing import EngineRouter

FIGURE = '<div style="text-align: center;"><img src="fig.png" alt="Image" /></div>'


@dataclass
class FigureEngine:
    """The real engine's read, plus the page's top band as a figure crop (PNG)."""

    inner: OcrEngine
    fail_on_page_width: int = 0

    @property
    def name(self) -> str:
        return "figure+" + self.inner.name

    @property
    def scripts(self) -> frozenset[str]:
        return self.inner.scripts

    def info(self):  # pragma: no cover - not called by the runner
        return self.inner.info()

    def warm(self) -> None:  # pragma: no cover
        pass

    def recognize(self, image: Image.Image) -> Recognition:
        if image.width == self.fail_on_page_width:
            raise EngineError("recognition_failed", "this page cannot be read")
        read = self.inner.recognize(image)
        crop = io.BytesIO()
        image.crop((0, 0, image.width, image.height // 3)).save(crop, format="PNG")
        markdown = f"{FIGURE}\n\n{read.markdown or ''}"
        return replace(read, markdown=markdown, images={"fig.png": crop.getvalue()})


def _tiff(frames: list[Image.Image]) -> bytes:
    return encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])


def _runner(settings, engine):
    store = HookedStore(connect_redis(settings.redis_url), 600)
    runner, _ = build_runner(settings, store, EngineRouter([engine]), "test:1")
    return runner


def test_crops_are_stored_per_page_and_the_markdown_links_them(settings, engine, submit) -> None:
    runner = _runner(settings, FigureEngine(engine))
    frames = [render_page([(f"Figure page {n}", 30)], 400) for n in (1, 2)]
    job_id = submit(
        encode(frames[0], "TIFF", save_all=True, append_images=frames[1:]), "image/tiff"
    )

    assert runner.run(job_id) is JobStatus.succeeded

    files = JobFiles(settings.temp_dir, settings.output_dir, job_id)
    document = json.loads(files.result_path("json").read_text())
    for page in document["pages"]:
        name = f"p{page['index']}-fig.png"
        link = f'<img src="/jobs/{job_id}/images/{name}" alt="Image" />'
        assert link in page["markdown"]
        assert link in document["markdown"]
        assert link in files.result_path("markdown").read_text()
        stored = Image.open(files.image_path(name))
        assert stored.size == (400, frames[0].height // 3)
        assert "images" not in page  # the bytes never go into result.json
    assert sorted(p.name for p in files.images_dir.iterdir()) == ["p1-fig.png", "p2-fig.png"]


def test_a_failed_job_leaves_no_crops(settings, engine, submit) -> None:
    runner = _runner(settings, FigureEngine(engine, fail_on_page_width=333))
    frames = [render_page([("Read fine", 30)], 400), render_page([("Fails", 30)], 333)]
    job_id = submit(  # all or nothing: page 2 fails the job
        encode(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
        "image/tiff",
        on_page_error="fail",
    )

    assert runner.run(job_id) is JobStatus.failed

    files = JobFiles(settings.temp_dir, settings.output_dir, job_id)
    assert runner.store.require(job_id).error.code == "recognition_failed"
    assert not files.output_dir.exists()


def test_removing_a_jobs_files_takes_its_crops(settings, engine, submit) -> None:
    """Cancel and the retention sweep remove a job through JobFiles.remove_all()."""
    runner = _runner(settings, FigureEngine(engine))
    job_id = submit(encode(render_page([("Swept", 30)], 400)), "image/png")
    assert runner.run(job_id) is JobStatus.succeeded
    files = JobFiles(settings.temp_dir, settings.output_dir, job_id)
    assert files.image_path("p1-fig.png").is_file()

    files.remove_all()

    assert not files.images_dir.exists()
    assert not files.output_dir.exists()
