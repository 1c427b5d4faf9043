"""The client and `ocrq submit --wait` on the job's event stream, against the real stack, with a
counting proxy in front that can cut the streams mid-message or hide the route."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocrq_client.client import Job, OcrqClient
from testkit.http_proxy import CountingProxy
from testkit.pages import encode, normalize_lines, render_page
from testkit.stack import ROOT, Stack

pytestmark = pytest.mark.integration

EVENTS, POLL = "GET /jobs/{id}/events", "GET /jobs/{id}"


def pdf(pages: int, tag: str) -> bytes:
    images = [render_page([(f"{tag} page {p}", 34)], width=640) for p in range(1, pages + 1)]
    return encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=200)


def page_counts(seen: list[Job]) -> list[int]:
    return [job.progress.pages_done for job in seen]


def pages_run(seen: list[Job], total: int) -> bool:
    """Every page from the first one seen to the last, each once: none missed, none twice."""
    pages = [j.progress.pages_done for j in seen if j.status == "running" and j.progress.pages_done]
    return pages == list(range(pages[0], total + 1)) if pages else True


def test_wait_returns_the_final_job_from_its_events(stack: Stack) -> None:
    with CountingProxy(stack.port) as proxy, OcrqClient(proxy.url) as client:
        job_id = client.submit(pdf(3, "Streamed"), filename="three.pdf").job_id
        seen: list[Job] = []
        job = client.wait(job_id, timeout=120, on_update=seen.append)

    assert job.status == "succeeded" and job.progress.pages_done == 3
    assert seen[-1] == job and page_counts(seen) == sorted(page_counts(seen))
    assert pages_run(seen, 3)
    assert proxy.counts() == {"POST /jobs": 1, EVENTS: 1}  # one stream, no polls


def test_a_stream_cut_mid_message_twice_resumes_and_still_returns(stack: Stack) -> None:
    # each of the first two streams is dropped inside its second message
    with (
        CountingProxy(stack.port, cut_events=2, cut_in_message=2) as proxy,
        OcrqClient(proxy.url) as client,
    ):
        job_id = client.submit(pdf(3, "Resumed"), filename="resumed.pdf").job_id
        seen: list[Job] = []
        job = client.wait(job_id, timeout=120, on_update=seen.append)

    assert job.status == "succeeded" and job.progress.pages_done == 3
    assert page_counts(seen) == sorted(page_counts(seen)) and pages_run(seen, 3)
    assert [j.status for j in seen].count("succeeded") == 1
    streams = [r for r in proxy.requests if r.kind == EVENTS]
    assert len(streams) == 3 and proxy.counts()[POLL] == 0
    resumed = [r.headers.get("last-event-id") for r in streams]
    assert resumed[0] is None and all(resumed[1:]), resumed  # reopened after the last whole one


def test_a_server_without_the_route_is_polled(stack: Stack) -> None:
    with CountingProxy(stack.port, hide_events=True) as proxy, OcrqClient(proxy.url) as client:
        first = client.submit(pdf(1, "Polled"), filename="polled.pdf").job_id
        second = client.submit(pdf(1, "Polled again"), filename="again.pdf").job_id
        done = [client.wait(job_id, timeout=120) for job_id in (first, second)]

    assert [job.status for job in done] == ["succeeded", "succeeded"]
    counts = proxy.counts()
    assert counts[EVENTS] == 1 and counts[POLL] >= 2  # asked once, then polled


def test_ocrq_submit_wait_follows_events(stack: Stack, tmp_path: Path) -> None:
    tree, out = tmp_path / "scans", tmp_path / "out"
    tree.mkdir()
    for n in range(6):
        (tree / f"scan{n}.png").write_bytes(
            encode(render_page([(f"Event driven {n:03d}", 34)], width=640))
        )
    with CountingProxy(stack.port) as proxy:
        run = subprocess.run(
            [sys.executable, "-m", "ocrq_client", "submit", str(tree), "--out", str(out),
             "--format", "text", "--streams", "2", "--no-progress"],
            cwd=ROOT,
            env={**os.environ, "OCRQ_URL": proxy.url},
            capture_output=True,
            text=True,
            timeout=180,
        )  # fmt: skip

    assert run.returncode == 0, run.stderr
    for n in range(6):
        assert normalize_lines((out / f"scan{n}.png.txt").read_text()) == [f"Event driven {n:03d}"]
    assert proxy.counts() == {"POST /jobs": 6, EVENTS: 6, "GET /jobs/{id}/result": 6}
