"""The fair share with the real API, real workers and two API keys (API_KEYS_FILE): one key's
flood of jobs (or of one document's page ranges) does not hold another key's page behind it,
priorities keep their meaning, and killing the API or a worker between the steps loses no job
and runs none twice. FAIR_SHARE=off shows the contrast: arrival order."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import redis

from testkit.pages import encode, render_page
from testkit.stack import Stack, wait_terminal
from tests.integration.conftest import wait_running

pytestmark = pytest.mark.integration

KEY_A, KEY_B = "tenant-a-4c1e9b27d05f83a6", "tenant-b-9a03f5e61c7d24b8"
FLOOD = 40
PNG = encode(render_page([("Invoice line 12", 24)], width=320))  # a cheap real page
FAST = {
    "OCR_FALLBACK_ENGINES": "",
    "RAPIDOCR_THREADS": "1",
    "JOB_LEASE_SECONDS": "4",
    "ORPHAN_SWEEP_SECONDS": "0.5",
}


def _stack(side_stack: Callable[..., Stack], tmp_path: Path, **env: str) -> Stack:
    keys = tmp_path / "api-keys"
    keys.write_text(f"{KEY_A}\n{KEY_B}\n")
    return side_stack(API_KEYS_FILE=str(keys), **FAST, **env)


def _start_workers(stack: Stack, *names: str) -> None:
    """Workers warm (a loaded machine may take minutes to warm an engine)."""
    for name in names:
        stack.start_worker(wait_warm=False, name=name)
    for name in names:
        stack.wait_for(lambda n=name: stack.worker_warm(n), timeout=600)


def _client(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.url, timeout=20, headers={"Authorization": f"Bearer {key}"})


def _submit(api: httpx.Client, body: bytes = PNG, name: str = "p.png", **data: str) -> str:
    response = api.post("/jobs", files={"file": (name, body)}, data=data)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def _at(body: dict, field: str) -> datetime:
    return datetime.fromisoformat(body[field])


def _ended_before(jobs: list[dict], moment: datetime) -> int:
    return sum(1 for j in jobs if j["finished_at"] and _at(j, "finished_at") < moment)


@pytest.mark.parametrize("fair", ["on", "off"])
def test_a_lone_keys_job_goes_between_another_keys_flood(
    side_stack: Callable[..., Stack], tmp_path: Path, fair: str
) -> None:
    stack = _stack(side_stack, tmp_path, FAIR_SHARE=fair)
    stack.start_api()
    _start_workers(stack, "fair-w1")  # one worker: the order it takes jobs in is the queue's
    with _client(stack, KEY_A) as a, _client(stack, KEY_B) as b:
        with ThreadPoolExecutor(4) as pool:
            flood = list(pool.map(lambda _: _submit(a), range(FLOOD)))
        lone = _submit(b)
        urgent = _submit(a, priority="high")  # the flooding key's own high job

        lone_job = wait_terminal(b, lone, timeout=120)
        urgent_job = wait_terminal(a, urgent, timeout=120)
        if fair == "on":  # the point is made: what still waits is canceled, to stay short
            for job_id in flood:
                a.delete(f"/jobs/{job_id}")
        jobs = [wait_terminal(a, job_id, timeout=120) for job_id in flood]

    assert lone_job["status"] == urgent_job["status"] == "succeeded"
    before_lone = _ended_before(jobs, _at(lone_job, "finished_at"))
    before_urgent = _ended_before(jobs, _at(urgent_job, "finished_at"))
    print(f"FAIR_SHARE={fair}: {before_lone} of A's {FLOOD} ended before B's job")
    if fair == "on":
        assert FLOOD - before_lone >= 30  # B's job ended while 30 of A's were unfinished
    else:
        assert before_lone == FLOOD  # arrival order: B waited behind all of A's
    # a high job goes before the normal ones of any key, the flooder's own waiting ones too
    assert FLOOD - before_urgent >= 30


def _pages_pdf(count: int) -> bytes:
    images = [render_page([(f"Ledger page {n}", 28)], width=360) for n in range(1, count + 1)]
    return encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=72)


def test_a_documents_page_ranges_take_turns_with_another_keys_page(
    side_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = _stack(side_stack, tmp_path, PAGE_RANGE_SIZE="1")
    stack.start_api()
    _start_workers(stack, "fair-w1", "fair-w2")
    with _client(stack, KEY_A) as a, _client(stack, KEY_B) as b:
        big = _submit(a, _pages_pdf(24), "ledger.pdf")
        wait_running(a, big)  # planned: its 23 other ranges wait in A's list
        lone = _submit(b)
        lone_job = wait_terminal(b, lone, timeout=120)
        big_then = a.get(f"/jobs/{big}").json()
        a.delete(f"/jobs/{big}")

    assert lone_job["status"] == "succeeded"
    # B's page went in while most of A's document was still to read, not after all 24 pages
    assert big_then["progress"]["pages_done"] <= 12, big_then["progress"]


def _try_submit(api: httpx.Client) -> str | None:
    """A submission the dying API may never answer: its job id, or None."""
    try:
        response = api.post("/jobs", files={"file": ("p.png", PNG)})
    except httpx.HTTPError:
        return None
    return response.json()["job_id"] if response.status_code == 202 else None


def test_killing_the_api_and_a_worker_between_steps_loses_no_job_and_runs_none_twice(
    side_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    # one range per job (the long one's lease is the job's), one message per key in flight
    stack = _stack(side_stack, tmp_path, FAIR_SHARE_IN_FLIGHT_PER_TENANT="1", PAGE_RANGE_SIZE="50")
    stack.start_api()
    _start_workers(stack, "fair-w1", "fair-w2")
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    with _client(stack, KEY_A) as a, _client(stack, KEY_B) as b:
        # the API dies (SIGKILL) while 24 submissions of both keys are under way: some were
        # recorded, some released and not sent, some not answered; it is started again
        with ThreadPoolExecutor(4) as pool:
            pending = [pool.submit(_try_submit, a if i % 3 else b) for i in range(24)]
            stack.wait_for(lambda: sum(f.done() for f in pending) >= 6)
            assert stack.api is not None
            stack.api.send_signal(signal.SIGKILL)
            stack.api.wait()
        accepted = [job for f in pending if (job := f.result())]
        stack.start_api()
        # a worker dies (SIGKILL) in the middle of B's 12-page job; its supervisor restarts it
        long_job = _submit(b, _pages_pdf(12), "twelve.pdf")
        wait_running(b, long_job)
        holder = client.get(f"ocrq:lease:{long_job}")
        assert holder, "the 12-page job ended before its worker could be killed"
        os.kill(int(holder.rsplit(":", 1)[1]), signal.SIGKILL)
        with ThreadPoolExecutor(4) as pool:
            accepted += pool.map(lambda i: _submit(a if i % 3 else b), range(12))
        jobs = {j: wait_terminal(a if _owned_by(a, j) else b, j, timeout=180) for j in accepted}
        jobs[long_job] = wait_terminal(b, long_job, timeout=180)

    attempts = {j: int(client.hget(f"ocrq:job:{j}", "attempts") or 0) for j in jobs}
    print(f"accepted {len(accepted)} single-page jobs; the long job ran {attempts[long_job]}x")
    assert {j["status"] for j in jobs.values()} == {"succeeded"}  # none lost
    assert max(attempts[j] for j in accepted) == 1  # each ran once
    assert attempts[long_job] == 2  # run again once after the kill, never a third time
    # released work a dead API did not send is sent by the sweep; nothing is left waiting
    stack.wait_for(lambda: client.zcard("ocrq:fair:sends") == 0)
    assert client.scard("ocrq:fair:active") == 0
    assert all(int(v) == 0 for v in client.hvals("ocrq:fair:waiting"))


def _owned_by(api: httpx.Client, job_id: str) -> bool:
    return api.get(f"/jobs/{job_id}").status_code == 200
