"""Retention against real processes: an expired job's folders go, a fresh one stays."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from testkit.pages import encode, render_page
from testkit.stack import Stack, wait_terminal

pytestmark = pytest.mark.integration


def test_worker_sweeps_the_folders_of_expired_jobs(side_stack: Callable[..., Stack]) -> None:
    stack = side_stack(
        JOB_TTL_SECONDS="3", RETENTION_SWEEP_SECONDS="0.5", RETENTION_GRACE_SECONDS="60"
    )
    stack.start_api()
    stack.start_worker()
    temp, output = stack.base / "temp", stack.base / "output"
    png = encode(render_page([("Kept for three seconds", 30)], width=500))

    with httpx.Client(base_url=stack.url, timeout=10) as api:
        job_id = api.post("/jobs", files={"file": ("a.png", png)}).json()["job_id"]
        assert wait_terminal(api, job_id, timeout=30)["status"] == "succeeded"
        assert (output / job_id / "result.json").is_file()
        # older than the grace (60 s), as if it finished an hour ago
        hour_ago = time.time() - 3600
        for path in [*(output / job_id).iterdir(), output / job_id]:
            os.utime(path, (hour_ago, hour_ago))
        # folders without a record but younger than the grace: an upload in progress
        fresh = [temp / uuid.uuid4().hex, output / uuid.uuid4().hex]
        for folder in fresh:
            folder.mkdir()
            (folder / "input").write_bytes(b"arriving")

        deadline = time.monotonic() + 20
        while (output / job_id).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not (output / job_id).exists(), stack.logs()
        assert api.get(f"/jobs/{job_id}").status_code == 404  # the record expired first
        time.sleep(1.5)  # a few more sweeps
    assert all((folder / "input").is_file() for folder in fresh)
    log = (stack.base / "test-worker-0.log").read_text()
    assert f"job={job_id} expired: removed" in log
    assert all(folder.name not in log for folder in fresh)
