"""A `high` job sent after a flood of 50 `batch` jobs runs before most of the flood: one warm
worker (the session's) takes its engine's queues highest priority first."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest

from testkit.pages import encode, render_page
from testkit.stack import Stack, wait_terminal

pytestmark = pytest.mark.integration

FLOOD = 50


def _submit(api: httpx.Client, png: bytes, priority: str) -> str:
    response = api.post("/jobs", files={"file": ("p.png", png)}, data={"priority": priority})
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def _at(body: dict, field: str) -> datetime:
    return datetime.fromisoformat(body[field])


def test_a_high_job_overtakes_a_batch_flood(stack: Stack, api: httpx.Client) -> None:
    png = encode(render_page([("Batch page 42", 24)], width=320))  # a cheap real page
    urgent_png = encode(render_page([("Urgent scan 7", 24)], width=320))
    with ThreadPoolExecutor(4) as pool:
        flood = list(pool.map(lambda _: _submit(api, png, "batch"), range(FLOOD)))
    urgent = _submit(api, urgent_png, "high")

    high = wait_terminal(api, urgent, timeout=60)
    # the flood has made its point: cancel what still waits, so the test stays short
    for job_id in flood:
        api.delete(f"/jobs/{job_id}")
    jobs = [wait_terminal(api, job_id, timeout=60) for job_id in flood]

    assert high["status"] == "succeeded"
    done_first = [
        j for j in jobs if j["finished_at"] and _at(j, "finished_at") < _at(high, "finished_at")
    ]
    assert len(done_first) < FLOOD // 2, f"{len(done_first)} batch jobs finished before it"
    # once it was queued, the worker started at most the batch job it already held...
    started_between = [
        j
        for j in jobs
        if j["started_at"]
        and _at(high, "created_at") < _at(j, "started_at") < _at(high, "started_at")
    ]
    assert len(started_between) <= 1, started_between
    # ...and the flood was still waiting when it came: most of it had not started
    waiting_then = [
        j for j in jobs if not j["started_at"] or _at(j, "started_at") > _at(high, "created_at")
    ]
    assert len(waiting_then) >= FLOOD // 2
    text = api.get(f"/jobs/{urgent}/result", params={"format": "text"}).text
    assert "Urgent" in text
