"""Celery Flower started the way its users start it (`celery -A worker flower`) against the test
Redis: it finds the app, turns task events on in a real worker, and counts a job that failed as
a failed task and a job that succeeded as a succeeded one (docs/operations.md, Flower)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from testkit.pages import encode, render_page
from testkit.stack import Stack, free_port, wait_terminal

PNG = encode(render_page([("Flower test invoice 7", 30)], width=500), "PNG")


@contextmanager
def flower(stack: Stack) -> Iterator[httpx.Client]:
    """`celery -A worker flower` with the stack's environment, its API open without auth."""
    port = free_port()
    log = open(stack.base / "flower.log", "ab")  # noqa: SIM115 - closed below
    command = [Path(sys.executable).with_name("celery"), "-A", "worker", "flower"]
    proc = subprocess.Popen(
        [*command, f"--port={port}", "--address=127.0.0.1"],
        cwd=stack.root,
        env={**stack.env, "FLOWER_UNAUTHENTICATED_API": "true"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            stack.wait_for(lambda: client.get("/healthcheck").status_code == 200, timeout=60)
            yield client
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def until(check: Callable[[], object], what: str, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise TimeoutError(f"Flower never showed {what}")


def test_flower_counts_a_failed_job_as_a_failed_task_and_a_good_one_as_succeeded(
    side_stack: Callable[..., Stack],
) -> None:
    stack = side_stack()
    stack.start_api()
    with flower(stack) as monitor:
        stack.start_worker(name="flower-worker")

        def worker_counts() -> dict:
            workers = monitor.get("/workers", params={"json": 1}).json()["data"]
            return next((w for w in workers if w["hostname"].endswith("flower-worker")), {})

        until(worker_counts, "the worker's heartbeats")  # sent with or without task events
        # Flower broadcasts enable_events every 5 s: a task before that sends Flower nothing
        worker_log = stack.base / "flower-worker.log"
        until(lambda: "Events of group {task} enabled" in worker_log.read_text(), "events on")
        with httpx.Client(base_url=stack.url, timeout=10) as api:
            good = api.post("/jobs", files={"file": ("ok.png", PNG)}).json()["job_id"]
            bad = api.post("/jobs", files={"file": ("cut.png", PNG[:300])}).json()["job_id"]
            assert wait_terminal(api, good)["status"] == "succeeded"
            failed = wait_terminal(api, bad)
        assert failed["status"] == "failed" and failed["error"]["code"] == "invalid_image"

        def tasks_of_jobs() -> dict[str, dict]:
            tasks = monitor.get("/api/tasks").json().values()
            # args as the task-received event shows them (a repr)
            return {job: t for t in tasks for job in (good, bad) if job in (t.get("args") or "")}

        def states() -> dict[str, str] | None:
            found = {job: t["state"] for job, t in tasks_of_jobs().items()}
            ended = len(found) == 2 and set(found.values()) <= {"SUCCESS", "FAILURE"}
            return found if ended else None

        assert until(states, "both tasks ended") == {good: "SUCCESS", bad: "FAILURE"}
        task = tasks_of_jobs()[bad]
        counts = worker_counts()

    assert task["name"] == "ocr.run" and task["exception"] == f"JobFailed('job {bad} failed')"
    assert counts.get("task-failed") == 1 and counts.get("task-succeeded") == 1, counts
    # the job's own record is what it was: failed with its code, the worker alive
    assert all(w.poll() is None for w in stack.workers)
