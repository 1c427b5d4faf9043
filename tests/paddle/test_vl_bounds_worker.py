"""A worker on the real paddleocr-vl engine (.venv-paddle, vllm-server backend, layout off)
against the stand-in VL server: a page that loops, or that the server never answers, fails only
its own job, with its own code, while the jobs beside it succeed; the hung page ends
within PAGE_TIMEOUT_SECONDS and the worker is not restarted for it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis

pytest.importorskip(
    "paddleocr", reason="real-library tests: run in .venv-paddle (make test-paddle)"
)

from PIL import Image

from testkit.stack import Stack
from testkit.vl_server import VlServer, page_text
from tests.conftest import UNIT_REDIS_URL
from tests.paddle.conftest import page_maker, png_job, vl_worker_env

PAGE_TIMEOUT = 10
new_page = page_maker(300, 140)


@pytest.fixture(scope="module")
def vl() -> Iterator[VlServer]:
    with VlServer(latency=0.2) as server:
        yield server


@pytest.fixture(scope="module")
def stack(vl: VlServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    redis.Redis.from_url(UNIT_REDIS_URL).flushdb()
    running = Stack(
        base=tmp_path_factory.mktemp("vl-bounds"),
        redis_url=UNIT_REDIS_URL,
        extra_env=vl_worker_env(
            vl.url,
            PADDLEOCR_VL_MAX_NEW_TOKENS="700",
            PAGE_TIMEOUT_SECONDS=str(PAGE_TIMEOUT),
            BATCH_SIZE="4",
        ),
    )
    try:
        with running.serving():
            yield running
    finally:
        redis.Redis.from_url(UNIT_REDIS_URL).flushdb()


@pytest.fixture
def api(stack: Stack, vl: VlServer) -> Iterator[httpx.Client]:
    vl.clear_faults()
    vl.reset_stats()
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def submit(api: httpx.Client, images: list[Image.Image]) -> list[str]:
    ids = []
    for image in images:
        response = api.post("/jobs", files={"file": png_job(image)})
        assert response.status_code == 202, response.text
        ids.append(response.json()["job_id"])
    return ids


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


def text_of(api: httpx.Client, job_id: str) -> str:
    result = api.get(f"/jobs/{job_id}/result")
    assert result.status_code == 200, result.text
    [page] = result.json()["pages"]
    return page["text"]


def test_a_page_that_loops_fails_only_its_job_with_vl_output_repetitive(api, vl):
    looping, others = new_page(), [new_page() for _ in range(3)]
    vl.loop_size(*looping.size)

    ids = submit(api, [looping, *others])
    bodies = wait_all(api, ids)

    failed = bodies[ids[0]]
    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] == "vl_output_repetitive"
    assert "repetition_penalty=1.1" in failed["error"]["message"]
    assert [bodies[i]["status"] for i in ids[1:]] == ["succeeded"] * 3
    for job_id, image in zip(ids[1:], others, strict=True):
        assert text_of(api, job_id) == page_text(*image.size)
    # read twice (greedy, then with the loop retry's settings), each capped at 700 tokens
    sent = [(s.max_tokens, s.repetition_penalty, s.temperature) for s in vl.seen if s.looped]
    assert sent == [(700, None, 0.0), (700, 1.1, 0.3)]


def test_a_page_the_server_never_answers_fails_its_job_within_the_page_limit(api, vl, stack):
    hung, others = new_page(), [new_page() for _ in range(3)]
    vl.hang_size(*hung.size)
    worker = stack.workers[0]

    ids = submit(api, [hung, *others])
    bodies = wait_all(api, ids, timeout=6 * PAGE_TIMEOUT)

    failed = bodies[ids[0]]
    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] == "vl_server_error"
    assert f"PAGE_TIMEOUT_SECONDS={PAGE_TIMEOUT}" in failed["error"]["message"]
    assert [bodies[i]["status"] for i in ids[1:]] == ["succeeded"] * 3
    # the engine's own bound ended the request: the worker was not restarted as hung
    assert worker.poll() is None and stack.workers == [worker]
    # the hung page was sent once per attempt of the OpenAI client (1 retry), no more
    assert [s.width for s in vl.seen].count(hung.width) == 2
