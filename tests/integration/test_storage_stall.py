"""A stalled bucket (moto paused with SIGSTOP) slows only what needs the bucket: while result
requests hang on it, GET /jobs/{id} and a status stream, which need only Redis, answer at once;
the hanging requests end in 503 storage_unavailable (bounded bucket timeouts) rather than
holding their threads for minutes, and once the bucket is back everything works again."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from testkit.pages import encode, render_page
from testkit.s3server import S3Server
from testkit.stack import Stack, wait_terminal

pytestmark = pytest.mark.integration

STALL_SECONDS = 30
# more than starlette's shared pool has threads (40): on one pool they would take them all
RESULT_REQUESTS = 45
PROMPT = 5.0  # seconds: generous for a Redis read, far below the stall


def _first_bytes(url: str) -> int:
    """The status of a GET whose first body bytes came within PROMPT s (else httpx raises)."""
    with httpx.stream("GET", url, timeout=PROMPT) as response:
        next(response.iter_bytes())
        return response.status_code


def test_status_routes_answer_while_the_bucket_stalls(
    side_stack: Callable[..., Stack], s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    stack = side_stack(**s3_server.env(bucket), OCR_FALLBACK_ENGINES="")
    stack.start_api()
    worker = stack.start_worker()
    png = encode(render_page([("A stalled bucket", 40)], width=600))
    with httpx.Client(base_url=stack.url, timeout=60) as api:
        done = api.post("/jobs", files={"file": ("a.png", png)}).json()["job_id"]
        assert wait_terminal(api, done, timeout=120)["status"] == "succeeded", stack.logs()
        stack.stop_worker(worker)  # the next job stays queued: a live job to follow
        queued = api.post("/jobs", files={"file": ("b.png", png)}).json()["job_id"]

        answers: list[tuple[int, str]] = []

        def fetch_result() -> None:
            response = httpx.get(f"{stack.url}/jobs/{done}/result", timeout=180)
            answers.append((response.status_code, response.text))

        s3_server.process.send_signal(signal.SIGSTOP)
        stalled = time.monotonic()
        try:
            fetchers = [threading.Thread(target=fetch_result) for _ in range(RESULT_REQUESTS)]
            for fetcher in fetchers:
                fetcher.start()
            time.sleep(1)  # the result requests are in, waiting on the bucket

            # Redis-only answers, each within PROMPT s while the stall lasts
            assert api.get(f"/jobs/{queued}", timeout=PROMPT).json()["status"] == "queued"
            assert _first_bytes(f"{stack.url}/jobs/{queued}/events") == 200
            # a succeeded job's result check gives up on the stalled bucket: Redis's word stands
            assert api.get(f"/jobs/{done}", timeout=PROMPT).json()["status"] == "succeeded"
            assert api.get("/ready", timeout=PROMPT).status_code == 200
            assert time.monotonic() - stalled < STALL_SECONDS  # all of it during the stall
            time.sleep(max(0.0, STALL_SECONDS - (time.monotonic() - stalled)))
        finally:
            s3_server.process.send_signal(signal.SIGCONT)

        for fetcher in fetchers:
            fetcher.join(timeout=180)
        codes = sorted({code for code, _ in answers})
        assert len(answers) == RESULT_REQUESTS and set(codes) <= {200, 503}, answers[:3]
        # those the stall outlasted failed cleanly, with the stable code
        failed = [body for code, body in answers if code == 503]
        assert failed and all('"storage_unavailable"' in body for body in failed), codes

        # the bucket is back: everything works without a restart
        assert api.get(f"/jobs/{done}/result").status_code == 200
        assert api.get(f"/jobs/{done}").json()["status"] == "succeeded"
        again = api.post("/jobs", files={"file": ("c.png", png)})
        assert again.status_code == 202, again.text
