"""Where the time goes besides recognition: API CPU per poll and result download, rapidocr's
input hand-over, the job runner's Redis round trips, decoding a page and writing its results."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import redis

from bench.pages import BenchPage
from bench.servicekit import POLL_SECONDS, SCRATCH, Batch, BenchStack


def request_costs(stack: BenchStack, batch: Batch, count: int = 200) -> list[list[object]]:
    """API CPU per poll (GET /jobs/{id}) and per JSON result download, on a finished job."""
    job_id = batch.jobs[0]["job_id"]
    rows = []
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        for label, path in (
            ("GET /jobs/{id} (one poll)", f"/jobs/{job_id}"),
            ("GET /jobs/{id}/result (JSON, one page)", f"/jobs/{job_id}/result"),
        ):
            client.get(path)
            cpu, wall = stack.api_cpu(), time.perf_counter()
            for _ in range(count):
                client.get(path).raise_for_status()
            wall = (time.perf_counter() - wall) / count * 1000
            cpu = (stack.api_cpu() - cpu) / count * 1000
            rows.append([label, f"{cpu:.2f} ms API CPU, {wall:.1f} ms round trip"])
    polls = sum(b.polls for b in [batch])
    rows.append(
        [
            "polling during the en batch",
            f"{polls} polls for {len(batch.pages)} jobs (every {POLL_SECONDS} s); API CPU in "
            f"the whole batch {batch.api_cpu:.2f} s = "
            f"{batch.api_cpu / len(batch.pages) * 1000:.0f} ms/page",
        ]
    )
    return rows


def handover_checks(router, pages: list[BenchPage]) -> list[list[object]]:
    """rapidocr's input: the old PNG round trip vs the BGR array handed over now (same pixels)."""
    import numpy as np
    from PIL import Image
    from rapidocr.utils.load_image import LoadImage

    from worker.engines.rapidocr_engine import _as_array

    load = LoadImage()
    images = [Image.open(io.BytesIO(p.png)).convert("RGB") for p in pages]

    def png_round_trip(image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        return load(buffer.getvalue())

    def array(image):
        return load(_as_array(image))

    timings, outputs = {}, {}
    for label, convert in (("PNG bytes", png_round_trip), ("BGR array", array)):
        convert(images[0])
        cpu = time.process_time()
        outputs[label] = [convert(image) for image in images]
        timings[label] = (time.process_time() - cpu) / len(images) * 1000
    same = all(
        np.array_equal(a, b)
        for a, b in zip(outputs["PNG bytes"], outputs["BGR array"], strict=True)
    )
    return [
        [
            "rapidocr input: PNG round trip (before) vs BGR array (now)",
            f"{timings['PNG bytes']:.0f} ms vs {timings['BGR array']:.0f} ms CPU per A4 page; "
            f"pixels {'identical' if same else 'DIFFERENT'}",
        ]
    ]


def runner_round_trips(redis_url: str, router, page: BenchPage) -> list[list[object]]:
    """Redis round trips of the worker's JobRunner for one one-page job (not Celery's own)."""
    import tempfile
    import uuid
    from collections import Counter

    from redis.client import Pipeline

    from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, utcnow
    from shared.options import parse_options
    from shared.settings import Settings
    from shared.storage import JobFiles
    from worker.boot import build_runner

    redis.Redis.from_url(redis_url).flushdb()
    trips: Counter[str] = Counter()
    execute_command, execute_pipeline = redis.Redis.execute_command, Pipeline.execute

    def counted_command(self, *args, **kwargs):
        if not isinstance(self, Pipeline):  # a pipeline's commands go in one trip, below
            trips[str(args[0])] += 1
        return execute_command(self, *args, **kwargs)

    def counted_pipeline(self, *args, **kwargs):
        trips["pipeline"] += 1
        return execute_pipeline(self, *args, **kwargs)

    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        settings = Settings(
            redis_url=redis_url, temp_dir=Path(tmp) / "t", output_dir=Path(tmp) / "o"
        )
        store = JobStore(connect_redis(redis_url), 600)
        runner, _ = build_runner(settings, store, router, "bench:1")
        job_id = uuid.uuid4().hex
        files = JobFiles(settings.temp_dir, settings.output_dir, job_id)
        files.make_input_dir()
        files.input_path.write_bytes(page.png)
        record = JobRecord(
            job_id=job_id, status=JobStatus.queued, created_at=utcnow(), media_type="image/png",
            options=parse_options({"language": "en"}),
        )  # fmt: skip
        store.create(record)
        redis.Redis.execute_command, Pipeline.execute = counted_command, counted_pipeline
        try:
            status = runner.run(job_id)
        finally:
            redis.Redis.execute_command, Pipeline.execute = execute_command, execute_pipeline
    redis.Redis.from_url(redis_url).flushdb()
    detail = ", ".join(f"{n} {name}" for name, n in trips.most_common())
    return [
        [
            "Redis round trips of the worker's job runner, one-page job (Celery's fetch and "
            "ack not counted)",
            f"{sum(trips.values())} ({detail}); job {status}",
        ]
    ]


def page_costs(en: list[BenchPage], ru: list[BenchPage], batch: Batch) -> list[list[object]]:
    """The worker's per-page work besides recognition: decode, and the result files."""
    import tempfile

    from PIL import Image

    from shared.results import Block, PageResult
    from shared.storage import JobFiles
    from worker.results import build_document, page_markdown, write_results

    rows = []
    for label, pages in (("English", en), ("Russian (grayscale)", ru)):
        cpu = time.process_time()
        for page in pages:
            Image.open(io.BytesIO(page.png)).convert("RGB")
        ms = (time.process_time() - cpu) / len(pages) * 1000
        rows.append([f"decode PNG to RGB, {label} A4 page", f"{ms:.0f} ms CPU"])
    text = batch.texts[batch.pages[0].name]
    lines = text.splitlines() or [""]
    blocks = [
        Block(type="text", text=line, bbox=[10.0, 10.0 + 40 * i, 900.0, 40.0 + 40 * i], score=0.98)
        for i, line in enumerate(lines)
    ]
    page = PageResult(
        index=1, width=1654, height=2339, dpi=200, engine="rapidocr", blocks=blocks,
        markdown=page_markdown(blocks), text=text,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        files = JobFiles(Path(tmp) / "t", Path(tmp) / "o", "0" * 32)
        cpu, count = time.process_time(), 50
        for _ in range(count):
            write_results(files, build_document(files.job_id, "rapidocr", [page]))
        ms = (time.process_time() - cpu) / count * 1000
    rows.append(
        [f"build + write result.json/.md/.txt, {len(blocks)}-line page", f"{ms:.1f} ms CPU"]
    )
    return rows
