"""Worker recycling for real: WORKER_MAX_JOBS ends worker processes between jobs, the supervisor
starts fresh ones, and no job is lost, failed or run twice; with a pool holding several jobs
(a batching engine's threads) every held job finishes and is acked before the process exits."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from shared.jobs import QUEUE, JobStore, WorkerRegistry
from testkit.pages import encode, render_page
from testkit.stack import Stack, wait_terminal
from tests.conftest import UNIT_REDIS_URL
from worker.exit_codes import EXIT_RECYCLE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KOMBU_UNACKED = "unacked"  # kombu's Redis hash of delivered, not yet acked messages


class _ReadySampler:
    """Reads GET /ready every 0.1 s in a thread: the worker ids each answer listed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[set[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while not self._stop.wait(0.1):
                body = client.get("/ready").json()
                self.samples.append({w["worker_id"] for w in body["worker_details"]})

    def __enter__(self) -> _ReadySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_recycled_worker_loses_no_job_and_stays_listed(side_stack: Callable[..., Stack]) -> None:
    # tesseract warms in about a second: three warm-ups (two recycles) stay cheap. A longer
    # heartbeat TTL than the stack's 3 s: the handed-over beat must outlive a process start.
    stack = side_stack(
        WORKER_MAX_JOBS="2", OCR_ENGINE="tesseract", WORKER_HEARTBEAT_TTL="15", LOG_LEVEL="INFO"
    )
    stack.start_api()
    stack.start_worker()
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    registry = WorkerRegistry(client)
    first = registry.get("test-worker-0")
    assert first is not None and first.warm
    texts = [f"Invoice {n} paid in full" for n in range(1, 6)]
    with _ReadySampler(stack.url) as ready, httpx.Client(base_url=stack.url, timeout=10) as api:
        ids = [
            api.post("/jobs", files={"file": (f"p{n}.png", encode(render_page([(t, 32)])))}).json()[
                "job_id"
            ]
            for n, t in enumerate(texts)
        ]
        jobs = [wait_terminal(api, job_id, timeout=120) for job_id in ids]
        assert [j["status"] for j in jobs] == ["succeeded"] * 5, jobs
        for job_id, text in zip(ids, texts, strict=True):
            got = api.get(f"/jobs/{job_id}/result", params={"format": "text"}).text
            assert " ".join(got.split()) == text
        # after jobs 2 and 4: the third process takes job 5, and stays
        stack.wait_for(lambda: (b := registry.get("test-worker-0")) is not None and b.warm)
    store = JobStore(client, 60)
    assert [store.get(j).attempts for j in ids] == [1] * 5, "no job ran twice"  # type: ignore[union-attr]
    last = registry.get("test-worker-0")
    assert last is not None and last.pid != first.pid and not last.rewarming
    assert client.hlen(KOMBU_UNACKED) == 0 and client.llen(QUEUE) == 0
    assert stack.workers[0].poll() is None, "the supervisor lives on"
    log = (stack.base / "test-worker-0.log").read_text()
    assert log.count("recycling this worker process: 2 jobs done (WORKER_MAX_JOBS=2)") == 2
    assert log.count("starting a fresh one") == 2 and "restarting in" not in log
    # acked before the exit: a message handed back unacked would come again to the next
    # process, which would find its job ended ("already succeeded; nothing to do")
    assert "nothing to do" not in log and "redelivered" not in log
    assert ready.samples, "no /ready answer sampled"
    missing = [n for n, seen in enumerate(ready.samples) if "test-worker-0" not in seen]
    assert not missing, f"/ready lost the worker in {len(missing)} of {len(ready.samples)} reads"


# A Celery worker as boot.py starts a batching one (threads pool, one thread per held job),
# whose task sleeps: WORKER_MAX_JOBS=1 is passed by the first job to end while two more run.
HELD_JOBS_WORKER = """
import logging, sys, time
from pathlib import Path
from shared.queue import make_celery
from shared.settings import Settings
from worker.recycling import RecyclePolicy, Recycler

logging.basicConfig(level=logging.INFO)
marks = Path(sys.argv[1])
app = make_celery(Settings(redis_url=sys.argv[2]))
recycler = Recycler(RecyclePolicy(max_jobs=1))

@app.task(name="test.hold", acks_late=True, reject_on_worker_lost=True)
def hold(n, seconds):
    with marks.open("a") as f:
        f.write(f"start {n}\\n")
    time.sleep(seconds)
    with marks.open("a") as f:
        f.write(f"end {n}\\n")
    recycler.job_done()

worker = app.Worker(pool_cls="threads", concurrency=3, queues=["ocr"], without_gossip=True,
                    without_mingle=True, optimization="fair", loglevel="INFO")
worker.start()
raise SystemExit(worker.exitcode or 0)
"""


def test_a_process_holding_several_jobs_finishes_and_acks_them_all_before_it_exits(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    from shared.queue import make_celery
    from shared.settings import Settings

    app = make_celery(Settings(redis_url=UNIT_REDIS_URL))
    # the first ends after 0.5 s and recycles the process; the two others are held until 3 s
    for n, seconds in enumerate([0.5, 3, 3, 0.1, 0.1, 0.1]):
        app.send_task("test.hold", args=[n, seconds], queue=QUEUE)
    marks = tmp_path / "marks.txt"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(HELD_JOBS_WORKER), str(marks), UNIT_REDIS_URL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == EXIT_RECYCLE, result.stderr[-3000:]
    lines = marks.read_text().split("\n")
    started = {line.split()[1] for line in lines if line.startswith("start")}
    ended = {line.split()[1] for line in lines if line.startswith("end")}
    assert {"0", "1", "2"} <= started, "three held at once"
    assert started == ended, "every job it held ran to its end"
    assert redis_client.hlen(KOMBU_UNACKED) == 0, "and was acked before the exit"
    assert redis_client.llen(QUEUE) == 6 - len(started), "the rest wait in the queue"
    assert "recycling this worker process: 1 jobs done" in result.stderr
