"""A job of several page ranges, run range by range in one process: planned once, each range
stored, the last one assembling the result in page order."""

from __future__ import annotations

import json
from dataclasses import dataclass

from PIL import Image

from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, utcnow
from shared.jobs.events import JobEvent
from shared.jobs.outcomes import RangeClaim
from testkit.pages import encode, render_page
from worker.boot import build_runner
from worker.engines import OcrEngine, Recognition
from worker.pipeline import JobRunner
from worker.routing import EngineRouter
from worker.webhooks.dispatcher import event_body


def test_ranges_are_planned_read_and_assembled_in_page_order(runner: JobRunner, submit) -> None:
    runner.settings = runner.settings.model_copy(update={"page_range_size": 2})
    images = [render_page([(f"Page {n}", 24)], 300) for n in range(1, 6)]
    job_id = submit(
        encode(images[0], "TIFF", save_all=True, append_images=images[1:]), "image/tiff"
    )

    assert runner.run(job_id) is JobStatus.running  # planned; range 0 read here
    assert runner.store.plan_of(job_id) == (3, 2)
    # waiting to be sent (this runner has no Celery app); an API of another test on this db may
    # have run its orphan sweep meanwhile, which sends them
    assert set(runner.store.pending_range_sends(job_id)) <= {(job_id, 1), (job_id, 2)}
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


def test_a_page_events_webhook_body_carries_the_pages_outcome() -> None:
    record = JobRecord(job_id="a" * 32, status=JobStatus.running, created_at=utcnow())
    fields = {
        "kind": "page",
        "job_id": "a" * 32,
        "at": utcnow().isoformat(),
        "pages_done": "7",
        "pages_failed": "1",
        "pages_total": "12",
        "page": "7",
        "outcome": "failed",
        "code": "image_too_large",
    }
    body = json.loads(event_body("d", JobEvent.from_entry("1-0", fields), record))
    assert body["progress"] == {"pages_done": 7, "pages_total": 12, "pages_failed": 1}
    assert body["page"] == {"number": 7, "outcome": "failed", "code": "image_too_large"}
    requeued = {"kind": "requeued", "job_id": "a" * 32, "at": utcnow().isoformat(), "range": "2"}
    body = json.loads(event_body("d", JobEvent.from_entry("2-0", requeued), record))
    assert body["status"] == "running" and "page" not in body


@dataclass
class CrashingEngine:
    """The real engine, except on pages `width` pixels wide: it crashes there `crashes` times
    (a bug of the engine on that page, not an EngineError), then reads it."""

    inner: OcrEngine
    width: int
    crashes: int
    calls: int = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def scripts(self) -> frozenset[str]:
        return self.inner.scripts

    def recognize(self, image: Image.Image) -> Recognition:
        if image.width == self.width and self.calls < self.crashes:
            self.calls += 1
            raise RuntimeError("index out of range in the detector")
        return self.inner.recognize(image)


def _runner(settings, engine) -> JobRunner:
    store = JobStore(connect_redis(settings.redis_url), 600)
    return build_runner(settings, store, EngineRouter([engine]), "t:1")[0]


def _three_pages_one_odd(submit) -> str:
    frames = [render_page([(f"Page {n}", 24)], 333 if n == 2 else 300) for n in (1, 2, 3)]
    tiff = encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    return submit(tiff, "image/tiff")


def test_an_engine_crash_on_one_page_is_tried_again_then_fails_that_page_alone(
    settings, engine, submit
) -> None:
    once = CrashingEngine(engine, width=333, crashes=1)
    runner = _runner(settings, once)
    job_id = _three_pages_one_odd(submit)
    assert runner.run(job_id) is JobStatus.succeeded
    assert runner.store.require(job_id).pages_failed == 0  # the second try read it
    assert once.calls == 1

    always = CrashingEngine(engine, width=333, crashes=99)
    runner = _runner(settings, always)
    job_id = _three_pages_one_odd(submit)
    assert runner.run(job_id) is JobStatus.succeeded
    assert always.calls == 2  # tried twice, then failed alone
    pages = json.loads(runner._files(job_id).result_path("json").read_text())["pages"]
    assert [(p["index"], (p["error"] or {}).get("code")) for p in pages] == [
        (1, None),
        (2, "recognition_failed"),
        (3, None),
    ]
    assert "index out of range" in pages[1]["error"]["message"]
    assert pages[2]["text"] == "Page 3"
