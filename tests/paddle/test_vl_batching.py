"""A worker running the real paddleocr-vl engine batches the pages of the jobs it holds.

Real processes (`python -m api`, `python -m worker` in .venv-paddle, OCR_ENGINE=paddleocr-vl on
the vllm-server backend, layout off) against testkit's stand-in VL server in this process. The
server answers each image with its size (`page_text`), and every page here has its own size, so
each test checks that every job got its own pages back.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

pytest.importorskip(
    "paddleocr", reason="real-library tests: run in .venv-paddle (make test-paddle)"
)

from PIL import Image

from shared.jobs import JobStore
from testkit.stack import ROOT, Stack
from testkit.vl_server import VlServer, page_text
from tests.conftest import UNIT_REDIS_URL
from tests.paddle.conftest import page_maker, png_job, vl_worker_env

WORKER = "test-worker-0"
BATCH_SIZE = 4
# Requests for a page whose every answer is a 500: the OpenAI client tries twice (the engine
# sets its retries to 1, VL_REQUEST_RETRIES) before the engine gives up on the page with
# vl_server_error.
PAGE_ATTEMPTS = 2
new_page = page_maker(200, 120)


def pdf_job(images: list[Image.Image]) -> tuple[str, bytes, str]:
    buffer = io.BytesIO()  # at 72 dpi (the stack's PDF_DPI) pages render back to these sizes
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:], resolution=72)
    return "doc.pdf", buffer.getvalue(), "application/pdf"


@pytest.fixture(scope="module")
def vl() -> Iterator[VlServer]:
    with VlServer(latency=0.2) as server:
        yield server


@pytest.fixture(scope="module")
def stack(vl: VlServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # the unit-test db: the session stack of tests/integration (if run alongside) keeps its own
    redis.Redis.from_url(UNIT_REDIS_URL).flushdb()
    running = Stack(
        base=tmp_path_factory.mktemp("vl-stack"),
        redis_url=UNIT_REDIS_URL,
        extra_env=vl_worker_env(
            vl.url, PDF_DPI="72", BATCH_SIZE=str(BATCH_SIZE), JOB_LEASE_SECONDS="6"
        ),
    )
    try:
        with running.serving():
            yield running
    finally:
        redis.Redis.from_url(UNIT_REDIS_URL).flushdb()


@pytest.fixture
def api(stack: Stack, vl: VlServer) -> Iterator[httpx.Client]:
    vl.latency = 0.2
    vl.clear_faults()
    vl.reset_stats()
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def submit_all(api: httpx.Client, jobs: list[tuple[str, bytes, str]]) -> list[str]:
    """POST every job at once (one thread each), as a folder-uploading client would."""

    def post(job: tuple[str, bytes, str]) -> str:
        response = api.post("/jobs", files={"file": job})
        assert response.status_code == 202, response.text
        return response.json()["job_id"]

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(post, jobs))


def wait_all(api: httpx.Client, ids: list[str], timeout: float = 120) -> dict[str, dict]:
    bodies: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(bodies) < len(ids) and time.monotonic() < deadline:
        for job_id in ids:
            if job_id not in bodies:
                body = api.get(f"/jobs/{job_id}").json()
                if body["status"] in ("succeeded", "failed", "canceled"):
                    bodies[job_id] = body
        time.sleep(0.1)
    assert len(bodies) == len(ids), f"not all jobs finished after {timeout} s: {bodies}"
    return bodies


def page_texts(api: httpx.Client, job_id: str) -> list[str]:
    result = api.get(f"/jobs/{job_id}/result")
    assert result.status_code == 200, result.text
    return [page["text"] for page in result.json()["pages"]]


def own_texts(images: list[Image.Image]) -> list[str]:
    return [page_text(i.width, i.height) for i in images]


def worker_view(stack: Stack) -> dict:
    body = httpx.get(f"{stack.url}/ready", timeout=5).json()
    return next(w for w in body["worker_details"] if w["worker_id"] == WORKER) | {
        "engines_available": body["engines_available"]
    }


def test_single_page_jobs_and_a_document_share_batches_each_job_gets_its_own_pages(
    api: httpx.Client, vl: VlServer
) -> None:
    singles = [new_page() for _ in range(12)]
    document = [new_page() for _ in range(6)]

    ids = submit_all(api, [png_job(i) for i in singles] + [pdf_job(document)])
    bodies = wait_all(api, ids)

    assert [bodies[i]["status"] for i in ids] == ["succeeded"] * len(ids)
    for job_id, image in zip(ids, singles, strict=False):
        assert page_texts(api, job_id) == own_texts([image])
    assert page_texts(api, ids[-1]) == own_texts(document)  # in page order
    assert bodies[ids[-1]]["progress"] == {"pages_done": 6, "pages_total": 6, "pages_failed": 0}
    stats = vl.stats
    assert stats.requests == 18 and stats.failures == 0
    assert stats.max_in_flight > 1  # pages went to the server together, not one by one


def test_a_page_the_server_keeps_failing_fails_only_its_own_job(
    api: httpx.Client, vl: VlServer
) -> None:
    vl.latency = 0.5
    doomed, others = new_page(), [new_page() for _ in range(3)]
    document = [new_page() for _ in range(5)]
    # every attempt at the doomed page fails (whatever else is in flight beside it): the
    # engine retries, then gives up on that page
    vl.fail_size(*doomed.size)
    [doomed_id] = submit_all(api, [png_job(doomed)])
    deadline = time.monotonic() + 10
    while vl.stats.failures == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    # its first attempt failed; while the engine retries it, more jobs reach the same worker
    ids = submit_all(api, [png_job(i) for i in others] + [pdf_job(document)])
    bodies = wait_all(api, [doomed_id, *ids])

    failed = bodies[doomed_id]
    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] == "vl_server_error"
    assert vl.stats.failures == PAGE_ATTEMPTS
    assert [bodies[i]["status"] for i in ids] == ["succeeded"] * len(ids)
    for job_id, image in zip(ids, others, strict=False):
        assert page_texts(api, job_id) == own_texts([image])
    assert page_texts(api, ids[-1]) == own_texts(document)


def test_canceling_one_job_mid_document_leaves_the_others_running(
    api: httpx.Client, vl: VlServer
) -> None:
    vl.latency = 0.5
    canceled_doc, kept_doc = [new_page() for _ in range(16)], [new_page() for _ in range(16)]
    canceled, kept = submit_all(api, [pdf_job(canceled_doc), pdf_job(kept_doc)])
    deadline = time.monotonic() + 60
    while api.get(f"/jobs/{canceled}").json()["progress"]["pages_done"] < 1:
        assert time.monotonic() < deadline, "no page of the job was read"
        time.sleep(0.05)
    assert api.delete(f"/jobs/{canceled}").status_code == 200

    bodies = wait_all(api, [canceled, kept])
    assert bodies[canceled]["status"] == "canceled"
    assert bodies[kept]["status"] == "succeeded"
    assert page_texts(api, kept) == own_texts(kept_doc)
    # the canceled job's pages not yet sent were dropped, not read
    assert vl.stats.requests < 32
    time.sleep(1)  # anything still in flight for it has landed by now
    assert api.get(f"/jobs/{canceled}").json()["status"] == "canceled"
    assert api.get(f"/jobs/{canceled}/result").status_code == 409


def test_a_vl_server_outage_holds_the_jobs_and_they_run_when_it_is_back(
    api: httpx.Client, vl: VlServer, stack: Stack
) -> None:
    images = [new_page() for _ in range(3)]
    document = [new_page() for _ in range(3)]
    vl.stop()
    try:
        ids = submit_all(api, [png_job(i) for i in images] + [pdf_job(document)])
        stack.wait_for(lambda: not worker_view(stack)["engine_available"], timeout=60)
        view = worker_view(stack)
        assert view["engine_error"] and not view["engines_available"]
        probe = subprocess.run(
            [sys.executable, "-m", "worker.probe", "--worker-id", WORKER],
            cwd=ROOT,
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert probe.returncode == 0, probe.stderr  # alive: a restart would not help
        assert "unavailable" in probe.stdout
        # held past the lease (6 s) and the engine's own retries: not failed, not requeued
        time.sleep(8)
        store = JobStore(redis.Redis.from_url(UNIT_REDIS_URL, decode_responses=True), 600)
        for job_id in ids:
            record = store.require(job_id)
            assert (record.status, record.attempts) == ("running", 1), record
    finally:
        vl.start()

    bodies = wait_all(api, ids, timeout=60)
    assert [bodies[i]["status"] for i in ids] == ["succeeded"] * len(ids)
    for job_id, image in zip(ids, images, strict=False):
        assert page_texts(api, job_id) == own_texts([image])
    assert page_texts(api, ids[-1]) == own_texts(document)
    stack.wait_for(lambda: worker_view(stack)["engine_available"], timeout=10)
