"""The fair share (FAIR_SHARE): what it costs a submission, and what it buys a lone key.

    .venv/bin/python -m bench.fair_share [--redis-url redis://127.0.0.1:6379/4] [--jobs 200]
        [--flood 200] [--rounds 3] [--clients 4]

Everything through the real processes (testkit/stack.py via bench/servicekit.py: `python -m
api`, `python -m worker`) on real Redis, with two API keys (API_KEYS_FILE):

1. submit latency and jobs/s, no worker: two APIs up at once, FAIR_SHARE=on on the URL's db and
   off on the next, `--jobs` small PNG jobs from `--clients` threads (two keys, alternately) sent
   to each in turn, `--rounds` rounds (on, off, on, off...: the machine's other load hits both);
   p50/p95 of each request's latency over every round, jobs/s the best round's. The Redis
   commands per job are `INFO commandstats` deltas over each round (the other API idles then;
   its background, about a second's, is in it), the median round.
2. the same cost measured in-process, with nothing else on Redis: `Dispatch.submit` of one
   job (the record and its queueing: what the API does), then a worker's `taken` (with
   FAIR_SHARE=on the key's next work is released as a worker takes a message): commands per
   job, by command.
3. the flood: one rapidocr worker, key A sends `--flood` single-page jobs, then key B sends one;
   B's wait (its job's created_at to finished_at) and how many of A's ended before it, with
   FAIR_SHARE on and off (the on run cancels A's rest once B ended).

Redis: the URL's db and the next, flushed at start and end. Writes the `fair-share` section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import httpx
import redis

from bench.procs import cpu_seconds, load_average
from bench.report import machine_line, markdown_table, update_section
from bench.scaling import RedisSnapshot
from bench.servicekit import SCRATCH, BenchStack
from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, utcnow
from shared.jobs.dispatch import Dispatch
from shared.jobs.queues import queue_name
from shared.queue import make_celery
from shared.settings import Settings
from testkit.pages import encode, render_page

KEYS = ("bench-key-a-5d2f90c1e7b3a846", "bench-key-b-0e8c4a71f9d26b35")
RAPID_ENV = {"OCR_ENGINE": "rapidocr", "OCR_FALLBACK_ENGINES": "", "RAPIDOCR_THREADS": "1"}
QUEUE = queue_name("rapidocr", "normal")


def _db(url: str, offset: int) -> str:
    base, _, db = url.rpartition("/")
    return f"{base}/{int(db) + offset}"


def _pngs(count: int) -> list[bytes]:
    return [encode(render_page([(f"Fair page {n:04d}", 24)], width=320)) for n in range(count)]


def _key_env(folder: Path) -> dict[str, str]:
    path = folder / "api-keys"
    path.write_text("".join(f"{key}\n" for key in KEYS))
    return {"API_KEYS_FILE": str(path), "MAX_QUEUED_JOBS": "1000000"}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _submit(client: httpx.Client, png: bytes, key: str) -> tuple[str, float]:
    started = time.perf_counter()
    response = client.post("/jobs", files={"file": ("p.png", png)}, headers=_auth(key))
    elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.text
    return response.json()["job_id"], elapsed


def _message_args(raw: bytes) -> list:
    return json.loads(base64.b64decode(json.loads(raw)["body"]))[0]


def _drain(url: str, fair: bool, stop: EventType) -> None:
    """A stand-in worker (a process of its own, as a worker is): take each message off the
    queue as it comes and, as a worker's task does first, tell the fair share (its next job is
    released); no OCR."""
    store = JobStore(connect_redis(url), 600)
    dispatch = Dispatch(store, make_celery(Settings(redis_url=url)), fair_share=fair)
    while not stop.is_set():
        popped = store.redis.brpop([QUEUE], timeout=0.2)
        if popped:
            args = _message_args(popped[1])
            dispatch.taken(args[0], args[1] if len(args) > 1 else None)
    store.close()


def _round(
    stack: BenchStack, pngs: list[bytes], clients: int, fair: bool
) -> tuple[list[float], float, Counter, tuple[float, float]]:
    """Submit every png once while a stand-in worker drains the queue: (latencies, wall
    seconds, Redis commands by name, CPU seconds of the API and of the stand-in worker)."""
    client = redis.Redis.from_url(stack.redis_url)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    drainer = context.Process(target=_drain, args=(stack.redis_url, fair, stop))
    drainer.start()
    time.sleep(3)  # the process started and connected
    before = RedisSnapshot.take(client)
    api_cpu, drain_cpu = stack.api_cpu(), cpu_seconds(drainer.pid)
    with (
        httpx.Client(base_url=stack.url, timeout=30) as http,
        ThreadPoolExecutor(clients) as pool,
    ):
        started = time.perf_counter()
        results = list(pool.map(lambda n: _submit(http, pngs[n], KEYS[n % 2]), range(len(pngs))))
        wall = time.perf_counter() - started
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        client.llen(QUEUE) or client.hget("ocrq:fair:waiting", QUEUE) not in (None, b"0")
    ):
        time.sleep(0.05)
    cpu = (stack.api_cpu() - api_cpu, cpu_seconds(drainer.pid) - drain_cpu)
    stop.set()
    drainer.join(10)
    calls, _ = RedisSnapshot.take(client).since(before)
    calls["info"] = 0  # the snapshots' own
    return [r[1] for r in results], wall, calls, cpu


def submit_cost(url: str, jobs: int, rounds: int, clients: int, folder: Path) -> dict:
    pngs = _pngs(jobs)
    stacks = {
        fair: BenchStack.create(_db(url, n), {**_key_env(folder), "FAIR_SHARE": fair})
        for n, fair in enumerate(("on", "off"))
    }
    found: dict[str, dict] = {
        fair: {"latencies": [], "rates": [], "calls": [], "api_cpu": [], "take_cpu": []}
        for fair in stacks
    }
    try:
        for stack in stacks.values():
            stack.start_api()
        for _ in range(rounds):
            for fair, stack in stacks.items():
                stack.flush()
                time.sleep(0.5)
                latencies, wall, calls, cpu = _round(stack, pngs, clients, fair == "on")
                found[fair]["api_cpu"].append(1000 * cpu[0] / jobs)
                found[fair]["take_cpu"].append(1000 * cpu[1] / jobs)
                found[fair]["latencies"] += latencies
                found[fair]["rates"].append(jobs / wall)
                found[fair]["calls"].append(sum(calls.values()) / jobs)
    finally:
        for stack in stacks.values():
            stack.close()
    return {
        fair: {
            "p50_ms": 1000 * statistics.median(f["latencies"]),
            "p95_ms": 1000 * statistics.quantiles(f["latencies"], n=20)[-1],
            "jobs_per_s": statistics.median(f["rates"]),
            "api_cpu_ms": statistics.median(f["api_cpu"]),
            "take_cpu_ms": statistics.median(f["take_cpu"]),
            "calls_per_job": statistics.median(f["calls"]),
        }
        for fair, f in found.items()
    }


def in_process_cost(url: str, jobs: int) -> dict[str, dict]:
    """Commands per job of the API's create + dispatch and a worker's `taken`, alone on Redis."""
    client = redis.Redis.from_url(url)
    found = {}
    for fair in ("on", "off"):
        client.flushdb()
        settings = Settings(redis_url=url)
        store = JobStore(connect_redis(url), 600)
        dispatch = Dispatch(store, make_celery(settings), fair_share=fair == "on")
        records = [
            JobRecord(
                job_id=f"bench-{fair}-{n}",
                status=JobStatus.queued,
                created_at=utcnow(),
                owner=KEYS[n % 2],
                queue=QUEUE,
            )
            for n in range(jobs)
        ]
        dispatch.submit(records[0])  # warm: scripts loaded, kombu's queue declared
        dispatch.taken(records[0].job_id)
        before = RedisSnapshot.take(client)
        submit_times, take_times = [], []
        for record in records[1:]:
            started = time.perf_counter()
            dispatch.submit(record)  # what the API does: record and queue
            submit_times.append(time.perf_counter() - started)
        middle = RedisSnapshot.take(client)
        for record in records[1:]:
            client.rpop(QUEUE)  # a worker takes a message...
            started = time.perf_counter()
            dispatch.taken(record.job_id)  # ...and says so first thing
            take_times.append(time.perf_counter() - started)
        after = RedisSnapshot.take(client)
        submit_calls, _ = middle.since(before)
        take_calls, _ = after.since(middle)
        take_calls["rpop"] -= jobs - 1  # the stand-in worker's own pop
        for calls in (submit_calls, take_calls):
            calls["info"] = 0  # the snapshots' own
        count = jobs - 1
        found[fair] = {
            "submit": sum(submit_calls.values()) / count,
            "take": sum((+take_calls).values()) / count,
            "submit_ms": 1000 * statistics.median(submit_times),
            "take_ms": 1000 * statistics.median(take_times),
            "by_command": {
                k: round(v / count, 2) for k, v in (submit_calls + (+take_calls)).most_common()
            },
        }
        store.close()
    client.flushdb()
    return found


def _at(body: dict, field: str) -> datetime:
    return datetime.fromisoformat(body[field])


def _terminal(http: httpx.Client, job_id: str, key: str, timeout: float = 1800) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = http.get(f"/jobs/{job_id}", headers=_auth(key)).json()
        if body["status"] in ("succeeded", "failed", "canceled"):
            return body
        time.sleep(0.2)
    raise TimeoutError(job_id)


def flood(url: str, size: int, folder: Path) -> dict[str, dict]:
    pngs = _pngs(size + 1)
    found = {}
    for fair in ("on", "off"):
        stack = BenchStack.create(url, {**_key_env(folder), **RAPID_ENV, "FAIR_SHARE": fair})
        try:
            stack.start_api()
            stack.start_workers(1)
            with httpx.Client(base_url=stack.url, timeout=30) as http:
                with ThreadPoolExecutor(4) as pool:
                    flood_ids = list(
                        pool.map(lambda n: _submit(http, pngs[n], KEYS[0])[0], range(size))
                    )
                lone, _ = _submit(http, pngs[size], KEYS[1])
                lone_job = _terminal(http, lone, KEYS[1])
                if fair == "on":
                    for job_id in flood_ids:
                        http.delete(f"/jobs/{job_id}", headers=_auth(KEYS[0]))
                jobs = [_terminal(http, job_id, KEYS[0]) for job_id in flood_ids]
            sent, end = _at(lone_job, "created_at"), _at(lone_job, "finished_at")
            ended = [_at(j, "finished_at") for j in jobs if j["finished_at"]]
            found[fair] = {
                "wait_s": (end - sent).total_seconds(),
                "before_sent": sum(1 for at in ended if at < sent),
                "ahead": sum(1 for at in ended if sent <= at < end),
            }
        finally:
            stack.close()
    return found


def report(submit: dict, inproc: dict, waits: dict, args: argparse.Namespace, loads: tuple) -> str:
    on, off = submit["on"], submit["off"]

    def change(a: float, b: float) -> str:
        return f"{100 * (a - b) / b:+.0f} %"

    submit_table = markdown_table(
        [
            "FAIR_SHARE",
            "p50 ms",
            "p95 ms",
            "jobs/s",
            "API CPU ms / job",
            "stand-in worker CPU ms / job",
            "Redis commands / job",
        ],
        [
            [
                fair,
                f"{s['p50_ms']:.1f}",
                f"{s['p95_ms']:.1f}",
                f"{s['jobs_per_s']:.0f}",
                f"{s['api_cpu_ms']:.2f}",
                f"{s['take_cpu_ms']:.2f}",
                f"{s['calls_per_job']:.1f}",
            ]
            for fair, s in submit.items()
        ]
        + [
            [
                "on vs off",
                change(on["p50_ms"], off["p50_ms"]),
                change(on["p95_ms"], off["p95_ms"]),
                change(on["jobs_per_s"], off["jobs_per_s"]),
                change(on["api_cpu_ms"], off["api_cpu_ms"]),
                f"{on['take_cpu_ms'] - off['take_cpu_ms']:+.2f} ms",
                f"{on['calls_per_job'] - off['calls_per_job']:+.1f}",
            ]
        ],
    )
    cost_table = markdown_table(
        [
            "FAIR_SHARE",
            "commands at submit",
            "ms at submit (median)",
            "commands at take",
            "ms at take (median)",
            "commands / job",
            "ms / job",
            "by command (per job)",
        ],
        [
            [
                fair,
                f"{c['submit']:.1f}",
                f"{c['submit_ms']:.2f}",
                f"{c['take']:.1f}",
                f"{c['take_ms']:.2f}",
                f"{c['submit'] + c['take']:.1f}",
                f"{c['submit_ms'] + c['take_ms']:.2f}",
                ", ".join(f"{k} {v:g}" for k, v in c["by_command"].items()),
            ]
            for fair, c in inproc.items()
        ],
    )
    flood_table = markdown_table(
        [
            "FAIR_SHARE",
            "B's job: created to finished s",
            "A's jobs that ended while it waited",
            f"A's that ended before it was sent (of {args.flood})",
        ],
        [[fair, f"{w['wait_s']:.1f}", w["ahead"], w["before_sent"]] for fair, w in waits.items()],
    )
    return f"""## The fair share: cost and a lone key's wait (`python -m bench.fair_share`)

{machine_line()}; load average {loads[0]:.1f} before, {loads[1]:.1f} after (the machine is
shared: other loads slow both sides). FAIR_SHARE_IN_FLIGHT_PER_TENANT=2 (the default), two API
keys.

**Submissions** (two APIs up at once, on and off, {args.jobs} small PNG jobs from
{args.clients} threads per round, the keys alternating, {args.rounds} rounds taken in turn; no
OCR: a stand-in worker in the bench takes each message off the queue as it comes and, as a
worker's task does first, tells the fair share, which releases the key's next job; a process
of its own): p50/p95 over every request of every round; jobs/s, CPU per job (from /proc) and
Redis commands per job (`INFO commandstats` deltas: API and stand-in worker, commands run
inside Lua scripts count too, the idle API's background is in it) the median round's. On this
shared 2-core machine the other loads move latency and jobs/s by 20 % or more from one run to
the next (both ways); CPU per job is the steadier measure of cost.

{submit_table}

**Cost per job alone on Redis** (in-process: `Dispatch.submit`, the record and its queueing, as
the API does; then a worker's `taken` as each task starts; commands include those inside scripts
(`evalsha` is the round trip), {args.jobs} jobs of two keys, no contention). With the fair
share a job's Celery message is sent when it is released: at submit only while its key has
fewer than 2 in flight, else when a worker takes the key's previous message (here: at take).
So compare the sums per job:

{cost_table}

**A lone key behind a flood**: one rapidocr worker, key A sends {args.flood} single-page jobs (4
threads), then key B sends one page.

{flood_table}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--flood", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--parts",
        default="submit,cost,flood",
        help="which parts to run; the others' figures are the last run's (var/bench)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    before = load_average()
    found: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        runs = {
            "submit": lambda: submit_cost(
                args.redis_url, args.jobs, args.rounds, args.clients, Path(folder)
            ),
            "cost": lambda: in_process_cost(args.redis_url, args.jobs),
            "flood": lambda: flood(args.redis_url, args.flood, Path(folder)),
        }
        for part, run in runs.items():
            kept = SCRATCH / f"fair-share-{part}.json"
            if part in parts or not kept.exists():
                SCRATCH.mkdir(parents=True, exist_ok=True)
                kept.write_text(json.dumps(run(), indent=1))
            found[part] = json.loads(kept.read_text())
            print(part, found[part])
    body = report(found["submit"], found["cost"], found["flood"], args, (before, load_average()))
    print(body)
    if not args.no_write:
        update_section("fair-share", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
