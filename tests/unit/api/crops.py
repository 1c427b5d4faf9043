"""A job played through to its end with an image crop, as the worker leaves it, in whichever
storage its settings name (tests of the crop route and of `?delivery=url`)."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from PIL import Image

from shared.jobs import Claim, JobStore
from shared.results import Block
from shared.settings import Settings
from shared.storage import JobFiles, job_files
from testkit.pages import encode, render_page
from tests.unit.api.owners import ALICE
from worker.engines import Recognition
from worker.page_reading import recognized_result
from worker.pages import Page
from worker.results import build_document, write_results

CROP = "p1-fig.jpg"  # the crop's name in the result


def submit_png(client: TestClient, headers: dict[str, str] = ALICE) -> str:
    png = encode(render_page([("Figure 1", 30)], width=300))
    response = client.post("/jobs", files={"file": ("a.png", png)}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(out, format="JPEG")
    return out.getvalue()


def finish_with_crop(settings: Settings, store: JobStore, job_id: str) -> JobFiles:
    """Play the worker: the source kept, a page whose engine cut out a figure, the results
    written as the worker writes them, the job succeeded."""
    assert store.claim(job_id, "w1:1", 30) is Claim.claimed
    files = job_files(settings, job_id)
    files.keep_source()
    page = Page(index=1, image=None, width=300, height=200, dpi=None)
    recognition = Recognition(
        blocks=[Block(type="figure", text="", bbox=[0, 0, 40, 30])],
        markdown='Before\n\n<div><img src="fig.jpg" alt="Image" /></div>',
        images={"fig.jpg": jpeg_bytes()},
    )
    result = recognized_result(job_id, page, "paddleocr-vl", recognition)
    write_results(files, build_document(job_id, "paddleocr-vl", [result]))
    assert store.succeed(job_id)
    return files
