"""Redis killed with SIGKILL mid-queue: with AOF (as make run, compose and k8s run it) no job lost.

The Redis here is started by scripts/ensure-redis.sh with REDIS_DATA_DIR, as `make run` starts
one, on a port and in a folder of this test's own; the real API and worker run against it.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from testkit.pages import encode, normalize_lines, render_page
from testkit.stack import LocalRedis, Stack, free_port, wait_terminal

pytestmark = pytest.mark.integration

FAST_RECOVERY = {
    "JOB_LEASE_SECONDS": "4",
    "ORPHAN_SWEEP_SECONDS": "0.5",
    "WORKER_HEARTBEAT_TTL": "3",
}


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    server = LocalRedis(port=free_port(), data_dir=tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(redis.ConnectionError):  # already down
            server.kill(signal.SIGTERM)


def _squeezed(lines: list[str]) -> list[str]:
    return [line.replace(" ", "") for line in lines]


def _page(n: int) -> list[tuple[str, int]]:
    return [(f"Chapter {n} of the annual report", 36), (f"Revenue grew {n * 7} percent", 28)]


def _png(n: int) -> bytes:
    return encode(render_page(_page(n), width=1600))


def test_redis_killed_mid_queue_keeps_every_job_and_each_ends_succeeded(
    aof_redis: LocalRedis, tmp_path: Path
) -> None:
    base = tmp_path / "stack"
    base.mkdir()
    stack = Stack(base=base, redis_url=aof_redis.url, extra_env=FAST_RECOVERY)
    long_pages = [_page(n) for n in range(1, 9)]
    images = [render_page(lines, width=1600) for lines in long_pages]
    pdf = encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=100)
    expected: dict[str, list[str]] = {}
    try:
        stack.start_api()
        stack.start_worker()
        with httpx.Client(base_url=stack.url, timeout=10) as api:

            def submit(name: str, body: bytes, pages: list[list[tuple[str, int]]]) -> str:
                response = api.post("/jobs", files={"file": (name, body)})
                assert response.status_code == 202, response.text
                job_id = response.json()["job_id"]
                expected[job_id] = [text for page in pages for text, _ in page]
                return job_id

            done = submit("done.png", _png(0), [_page(0)])
            assert wait_terminal(api, done)["status"] == "succeeded"
            running = submit("long.pdf", pdf, long_pages)
            queued = [submit(f"q{n}.png", _png(n), [_page(n)]) for n in (11, 12, 13)]
            stack.wait_for(lambda: api.get(f"/jobs/{running}").json()["status"] == "running")
            before = {job_id: api.get(f"/jobs/{job_id}").json()["status"] for job_id in expected}
            assert before[done] == "succeeded" and before[running] == "running"
            assert {before[q] for q in queued} == {"queued"}, before

            aof_redis.kill(signal.SIGKILL)
            aof_redis.start()

            stack.wait_for(lambda: api.get("/ready").status_code == 200)  # Redis answers again
            after = {job_id: api.get(f"/jobs/{job_id}") for job_id in expected}
            lost = [job_id for job_id, response in after.items() if response.status_code != 200]
            assert lost == [], f"records lost with Redis: {len(lost)} of {len(expected)}"

            for job_id, lines in expected.items():
                job = wait_terminal(api, job_id, timeout=120)
                assert job["status"] == "succeeded", job
                text = api.get(f"/jobs/{job_id}/result", params={"format": "text"}).text
                # word gaps are the engine's guess ("35percent"); the words and their order are not
                assert _squeezed(normalize_lines(text)) == _squeezed(lines), job_id
        assert (aof_redis.data_dir / "appendonlydir").is_dir()
        assert all(w.poll() is None for w in stack.workers) and stack.api.poll() is None
    except BaseException:
        print(stack.logs()[-6000:])
        raise
    finally:
        stack.stop()
