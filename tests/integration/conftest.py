from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from testkit.s3server import S3Server
from testkit.stack import Stack
from tests.conftest import TEST_DBS, TEST_REDIS_URL, UNIT_REDIS_URL, service_fixture

WEBHOOK_SECRET = "test-webhook-secret"
INTEGRATION_REDIS_URL = f"{TEST_REDIS_URL}/{TEST_DBS['stack']}"
SOURCE_TIMEOUT = 4  # seconds a worker of the session stack fetches one source_url
SOURCE_BUCKET = "ocrq-sources"  # its keys under in/ are allowed s3:// sources of the stack


@service_fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[Stack]:
    """The real service: API + one warm worker, on this pytest worker's stack db (flushed first;
    tests/conftest.py: TEST_DBS); under pytest-xdist each worker starts its own. Its files are
    local; the S3 server is there for s3:// sources (SOURCE_BUCKET, test_source_url.py)."""
    s3_env = s3_server.env(SOURCE_BUCKET)
    del s3_env["STORAGE_URL"]
    redis.Redis.from_url(INTEGRATION_REDIS_URL).flushdb()
    running = Stack(
        base=tmp_path_factory.mktemp("stack"),
        redis_url=INTEGRATION_REDIS_URL,
        # webhooks to the tests' loopback receivers (tests/integration/test_webhooks.py), and
        # documents by reference from their loopback server (test_source_url.py): 127.0.0.1
        # only, so a redirect to 127.0.0.2 is refused
        extra_env={
            "CALLBACK_ALLOWED_NETWORKS": "127.0.0.1/32",
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SOURCE_ALLOWED_NETWORKS": "127.0.0.1/32",
            "SOURCE_TIMEOUT_SECONDS": str(SOURCE_TIMEOUT),
            "SOURCE_S3_BUCKETS": f"{SOURCE_BUCKET}/in/",
            **s3_env,
        },
    )
    with running.serving():
        yield running


@service_fixture
def side_stack(tmp_path: Path, redis_client: redis.Redis) -> Iterator[Callable[..., Stack]]:
    """Make extra stacks with their own env (API_KEYS_FILE, a short JOB_TTL_SECONDS...).

    They use the unit-test Redis db (flushed by redis_client), so the session's worker never
    takes their jobs, nor theirs the session's. Start processes with start_api/start_worker.
    """
    made: list[Stack] = []

    def make(**env: str) -> Stack:
        base = tmp_path / f"side-{len(made)}"
        base.mkdir()
        made.append(Stack(base=base, redis_url=UNIT_REDIS_URL, extra_env=env))
        return made[-1]

    try:
        yield make
    finally:
        for stack in made:
            stack.stop()


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        yield client


def wait_running(api: httpx.Client, job_id: str, pages_done: int = 1) -> None:
    """Until the job runs and has `pages_done` pages done."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = api.get(f"/jobs/{job_id}").json()
        if job["status"] == "running" and job["progress"]["pages_done"] >= pages_done:
            return
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} never ran")


# a 4-page report: long enough to act on a job while it runs
REPORT_PAGES = [
    [(f"Chapter {n} of the annual report", 36), (f"Revenue grew {n * 7} percent", 28)]
    for n in range(1, 5)
]


def report_pdf() -> bytes:
    from testkit.pages import encode, render_page

    images = [render_page(lines, width=1600) for lines in REPORT_PAGES]
    return encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=100)


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
