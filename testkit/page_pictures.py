"""Inputs for the page pictures' memory checks (tests and bench.page_image_memory): a tiny
upload with many pixels, and a job left as a worker leaves a succeeded one."""

from __future__ import annotations

import io
import uuid
import warnings
from pathlib import Path

from PIL import Image, ImageDraw

from shared.jobs import Claim, JobRecord, JobStatus, JobStore, utcnow
from shared.results import DocumentResult, PageResult
from shared.storage import JobFiles


def many_pixels_png(side: int = 10_000) -> bytes:
    """A `side` x `side` 1-bit PNG of a few ruled lines: 100 MP in about 25 KB at 10000."""
    image = Image.new("1", (side, side), 1)
    draw = ImageDraw.Draw(image)
    for y in range(side // 10, side, side // 10):
        draw.line((side // 20, y, side - side // 20, y), fill=0, width=8)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def store_succeeded_job(
    store: JobStore, temp_dir: Path, output_dir: Path, source: bytes, media_type: str
) -> str:
    """A succeeded one-page job of `source` (kept), its result naming the page's size."""
    job_id = uuid.uuid4().hex
    store.create(
        JobRecord(
            job_id=job_id, status=JobStatus.queued, created_at=utcnow(), media_type=media_type
        )
    )
    files = JobFiles(temp_dir, output_dir, job_id)
    files.make_input_dir()
    files.input_path.write_bytes(source)
    assert store.claim(job_id, "stand-in-worker:1", 60) is Claim.claimed
    files.keep_source()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # its size only
        with Image.open(io.BytesIO(source)) as image:
            page = PageResult(index=1, width=image.width, height=image.height)
    document = DocumentResult(job_id=job_id, engine="rapidocr", pages=[page], text="", markdown="")
    files.write_result("json", document.model_dump_json().encode())
    assert store.succeed(job_id)
    return job_id
