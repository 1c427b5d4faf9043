"""Multi-page documents through the real processes: progress moves page by page."""

from __future__ import annotations

import time

import httpx
import pytest

from testkit.pages import encode, normalize_lines, render_page
from testkit.stack import wait_terminal

pytestmark = pytest.mark.integration

PAGES = [
    [(f"Report section {n} of six", 40), (f"Figure {n * 11} shows growth", 30)] for n in range(1, 7)
]


def _pdf() -> bytes:
    images = [render_page(lines, width=1400) for lines in PAGES]
    return encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=100)


def test_pdf_progress_moves_per_page_and_text_matches(api: httpx.Client) -> None:
    job_id = api.post("/jobs", files={"file": ("report.pdf", _pdf())}).json()["job_id"]

    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = api.get(f"/jobs/{job_id}").json()
        seen.append((job["status"], job["progress"]["pages_done"]))
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)

    assert job["status"] == "succeeded", job
    assert job["progress"] == {"pages_done": 6, "pages_total": 6, "pages_failed": 0}
    running_counts = sorted({done for status, done in seen if status == "running"})
    assert len([d for d in running_counts if 0 < d < 6]) >= 2, seen  # watched it move
    document = api.get(f"/jobs/{job_id}/result").json()
    assert [normalize_lines(p["text"]) for p in document["pages"]] == [
        [t for t, _ in page] for page in PAGES
    ]
    text = api.get(f"/jobs/{job_id}/result", params={"format": "text"}).text
    assert text.count("\f") == 5  # pages separated by form feeds


def test_page_range_through_the_service(api: httpx.Client) -> None:
    response = api.post("/jobs", files={"file": ("r.pdf", _pdf())}, data={"pages": "2,5-6"})
    assert response.status_code == 202

    job = wait_terminal(api, response.json()["job_id"])

    assert job["status"] == "succeeded" and job["progress"]["pages_total"] == 3
    document = api.get(f"/jobs/{job['job_id']}/result").json()
    assert [p["index"] for p in document["pages"]] == [2, 5, 6]
