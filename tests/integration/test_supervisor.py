"""`python -m worker` killed with SIGKILL: its worker process dies too, no orphan lives on.

The job that process was running is then recovered through its lease, as for any dead worker.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import httpx
import pytest
import redis

from shared.jobs import WorkerRegistry
from testkit.pages import encode, normalize_lines, render_page
from testkit.stack import Stack, pid_alive, wait_terminal

pytestmark = pytest.mark.integration

PAGES = [[(f"Chapter {n} of the annual report", 36)] for n in range(1, 9)]


def test_worker_process_exits_when_its_supervisor_is_killed(
    side_stack: Callable[..., Stack],
) -> None:
    stack = side_stack(JOB_LEASE_SECONDS="4", ORPHAN_SWEEP_SECONDS="0.5")
    stack.start_api()
    supervisor = stack.start_worker()
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    registry = WorkerRegistry(client)
    beat = registry.get("test-worker-0")
    assert beat is not None and beat.pid != supervisor.pid
    child = beat.pid
    images = [render_page(lines, width=1600) for lines in PAGES]
    pdf = encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=100)
    with httpx.Client(base_url=stack.url, timeout=10) as api:
        job_id = api.post("/jobs", files={"file": ("r.pdf", pdf)}).json()["job_id"]
        stack.wait_for(lambda: api.get(f"/jobs/{job_id}").json()["status"] == "running")

        supervisor.kill()
        supervisor.wait()
        deadline = time.monotonic() + 5
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(child):
            os.kill(child, signal.SIGKILL)  # leave no orphan behind, even when failing
            pytest.fail("the worker process outlived its supervisor")

        # what a container's restart policy does: a new worker; the lease brings the job back
        stack.start_worker()
        job = wait_terminal(api, job_id, timeout=60)
        assert job["status"] == "succeeded", job
        attempts = client.hget(f"ocrq:job:{job_id}", "attempts")
        assert int(attempts) == 2, "killed once with its supervisor, run once more"
        text = api.get(f"/jobs/{job_id}/result", params={"format": "text"}).text
        assert [line.split()[1] for line in normalize_lines(text)] == [str(n) for n in range(1, 9)]
