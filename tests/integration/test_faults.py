"""Break things on purpose: killed workers, workers that never return, stuck pages, Redis down.

Each test runs its own API and workers on its own Redis database (or its own Redis server),
with short leases so recovery happens in seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from shared.jobs import WorkerRegistry
from testkit.pages import encode, normalize_lines, render_page
from testkit.stack import Stack, free_port, wait_terminal
from tests.conftest import TEST_DBS, TEST_REDIS_URL
from tests.integration.conftest import REPORT_PAGES, report_pdf, wait_running

pytestmark = pytest.mark.integration

FAULT_DB = TEST_DBS["fault"]
FAST_RECOVERY = {
    "JOB_LEASE_SECONDS": "4",
    "ORPHAN_SWEEP_SECONDS": "0.5",
    "WORKER_HEARTBEAT_TTL": "3",
}


@pytest.fixture
def fault_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    url = f"{TEST_REDIS_URL}/{FAULT_DB}"
    redis.Redis.from_url(url).flushdb()
    env = {**FAST_RECOVERY, **getattr(request, "param", {})}
    stack = Stack(base=tmp_path, redis_url=url, extra_env=env)
    try:
        stack.start_api()
        yield stack
    finally:
        stack.stop()
        print(stack.logs()[-6000:])
        redis.Redis.from_url(url).flushdb()


def _child_pid(stack: Stack, name: str) -> int:
    beat = WorkerRegistry(redis.Redis.from_url(stack.redis_url, decode_responses=True)).get(name)
    assert beat is not None and beat.warm
    return beat.pid


def test_worker_killed_mid_job_ten_times_each_job_completes_once(fault_stack: Stack) -> None:
    fault_stack.start_worker()
    counts = {"succeeded": 0, "other": 0, "duplicated": 0}
    with httpx.Client(base_url=fault_stack.url, timeout=10) as api:
        for _ in range(10):
            job_id = api.post("/jobs", files={"file": ("r.pdf", report_pdf())}).json()["job_id"]
            wait_running(api, job_id)
            fault_stack.wait_for(lambda: _child_pid(fault_stack, "test-worker-0") > 0)
            os.kill(_child_pid(fault_stack, "test-worker-0"), signal.SIGKILL)

            job = wait_terminal(api, job_id, timeout=90)
            if job["status"] != "succeeded":
                counts["other"] += 1
                continue
            counts["succeeded"] += 1
            document = api.get(f"/jobs/{job_id}/result").json()
            texts = [normalize_lines(p["text"]) for p in document["pages"]]
            if texts != [[t for t, _ in page] for page in REPORT_PAGES]:
                counts["duplicated"] += 1  # pages repeated or lost would show here
            results = sorted(p.name for p in (fault_stack.base / "output" / job_id).iterdir())
            assert results == ["result.json", "result.md", "result.txt"]
            attempts = redis.Redis.from_url(fault_stack.redis_url).hget(
                f"ocrq:job:{job_id}", "attempts"
            )
            assert int(attempts) == 2  # killed once, run once more: no third run
    print(f"kill test: {counts}")
    assert counts == {"succeeded": 10, "other": 0, "duplicated": 0}
    assert fault_stack.workers[0].poll() is None  # the supervisor is still there


@pytest.mark.parametrize("fault_stack", [{"JOB_MAX_ATTEMPTS": "2"}], indirect=True)
def test_worker_that_never_comes_back_requeue_then_worker_lost(fault_stack: Stack) -> None:
    with httpx.Client(base_url=fault_stack.url, timeout=10) as api:
        job_id = api.post("/jobs", files={"file": ("r.pdf", report_pdf())}).json()["job_id"]
        for attempt in (1, 2):
            worker = fault_stack.start_worker()
            wait_running(api, job_id)
            child = _child_pid(fault_stack, f"test-worker-{attempt - 1}")
            worker.kill()  # the supervisor first, so nothing restarts the process
            with contextlib.suppress(ProcessLookupError):  # it dies with its supervisor
                os.kill(child, signal.SIGKILL)
            worker.wait()
            if attempt == 1:
                # no worker left: the API's sweeper puts the job back in the queue
                fault_stack.wait_for(
                    lambda: api.get(f"/jobs/{job_id}").json()["status"] == "queued", timeout=20
                )
        job = wait_terminal(api, job_id, timeout=30)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "worker_lost"
    assert not (fault_stack.base / "temp" / job_id).exists()  # a failed job keeps no upload


@pytest.mark.parametrize("fault_stack", [{"PAGE_TIMEOUT_SECONDS": "1"}], indirect=True)
def test_page_over_its_time_limit_fails_with_timeout_and_the_worker_lives_on(
    fault_stack: Stack,
) -> None:
    worker = fault_stack.start_worker()
    heavy = render_page(
        [
            (f"Line {i}: a long line of dense text to keep the engine busy {i}", 22)
            for i in range(90)
        ],
        width=1800,
    )
    with httpx.Client(base_url=fault_stack.url, timeout=10) as api:
        slow = api.post("/jobs", files={"file": ("dense.png", encode(heavy))}).json()["job_id"]
        job = wait_terminal(api, slow, timeout=60)
        assert job["status"] == "failed"
        assert job["error"]["code"] == "timeout"
        assert "PAGE_TIMEOUT_SECONDS=1" in job["error"]["message"]

        small = encode(render_page([("Still alive 42", 30)], width=400))
        quick = api.post("/jobs", files={"file": ("ok.png", small)}).json()["job_id"]
        assert wait_terminal(api, quick, timeout=60)["status"] == "succeeded"
    assert worker.poll() is None
    assert not (fault_stack.base / "temp" / slow).exists()


def test_redis_down_answers_503_fast_and_recovers_without_restarts(tmp_path: Path) -> None:
    port = free_port()
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    stack = Stack(base=tmp_path, redis_url=f"redis://127.0.0.1:{port}/0", extra_env=FAST_RECOVERY)
    png = encode(render_page([("Queue survives 2026", 36)], width=700))
    try:
        for _ in range(50):
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        stack.start_api()
        stack.start_worker()
        with httpx.Client(base_url=stack.url, timeout=10) as api:
            before = api.post("/jobs", files={"file": ("a.png", png)}).json()["job_id"]
            assert wait_terminal(api, before)["status"] == "succeeded"

            server.terminate()
            server.wait()
            for request in (
                lambda: api.post("/jobs", files={"file": ("a.png", png)}),
                lambda: api.get(f"/jobs/{before}"),
            ):
                started = time.perf_counter()
                response = request()
                assert time.perf_counter() - started < 2
                assert response.status_code == 503
                assert response.json()["error"]["code"] == "queue_unavailable"
            assert api.get("/health").status_code == 200
            assert [p for p in (tmp_path / "temp").rglob("*") if p.is_file()] == []

            server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            accepted = None
            while time.monotonic() < deadline:
                response = api.post("/jobs", files={"file": ("a.png", png)})
                if response.status_code == 202:
                    accepted = response.json()["job_id"]
                    break
                time.sleep(0.5)
            assert accepted, "the API did not recover by itself"
            job = wait_terminal(api, accepted, timeout=60)
            assert job["status"] == "succeeded"
            assert api.get(f"/jobs/{accepted}/result", params={"format": "text"}).text.strip() == (
                "Queue survives 2026"
            )
        assert all(w.poll() is None for w in stack.workers) and stack.api.poll() is None
    finally:
        stack.stop()
        server.terminate()
        server.wait()
