"""deploy/all-in-one.sh: API and worker in one container behind one health path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from testkit.pages import encode, render_page
from testkit.stack import ROOT, free_port, wait_terminal
from tests.conftest import UNIT_REDIS_URL

pytestmark = pytest.mark.integration
SCRIPT = ROOT / "deploy" / "all-in-one.sh"


def start(tmp_path: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    # The unit-test Redis db (flushed by redis_client): this worker must not take the jobs of
    # the session's integration stack, whose upload folder it cannot see.
    full_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "REDIS_URL": UNIT_REDIS_URL,
        "TEMP_DIR": str(tmp_path / "temp"),
        "OUTPUT_DIR": str(tmp_path / "output"),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WORKER_HEARTBEAT_TTL": "3",
        **env,
    }
    log = open(tmp_path / "all-in-one.log", "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        ["bash", str(SCRIPT), "--name", "aio"], cwd=ROOT, env=full_env, stdout=log, stderr=log
    )


def wait_until(check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"not true after {timeout} s")


@pytest.fixture
def container(tmp_path: Path, redis_client: redis.Redis) -> Iterator[tuple[httpx.Client, Path]]:
    port = free_port()
    proc = start(tmp_path, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client, tmp_path
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        print((tmp_path / "all-in-one.log").read_text()[-3000:])  # shown when a test fails


def test_health_answers_at_once_and_jobs_run_once_warm(
    container: tuple[httpx.Client, Path],
) -> None:
    client, _ = container
    started = time.monotonic()
    wait_until(lambda: client.get("/health").status_code == 200, timeout=15)
    assert time.monotonic() - started < 15
    wait_until(lambda: client.get("/ready").json()["engines_warm"], timeout=90)
    page = encode(render_page([("Invoice number 20461", 40)]))
    job = client.post("/jobs", files={"file": ("p.png", page, "image/png")}).json()
    assert wait_terminal(client, job["job_id"])["status"] == "succeeded"
    text = client.get(f"/jobs/{job['job_id']}/result", params={"format": "text"}).text
    assert "20461" in text


def test_container_exits_when_the_worker_cannot_start(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    """A dead worker behind a live /health would accept jobs forever: stop the whole thing."""
    port = free_port()
    proc = start(tmp_path, port, OCR_ENGINE="no-such-engine")
    assert proc.wait(timeout=60) == 3  # the worker's exit code: engine error
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)


def test_sigterm_stops_both_processes(tmp_path: Path, redis_client: redis.Redis) -> None:
    port = free_port()
    proc = start(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{url}/health").status_code == 200, timeout=15)
    # Celery's SIGTERM handler (warm shutdown, heartbeat removed) exists once it says ready.
    log = tmp_path / "all-in-one.log"
    wait_until(lambda: "ocr@aio ready." in log.read_text(), timeout=90)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=1)
    assert redis_client.get("ocrq:worker:aio") is None, "the worker removed its heartbeat"
