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
2. the same cost measured in-process, with nothing else on Redis: `JobStore.create` and the
   dispatch of one job (what the API does), then a worker's `taken` (with FAIR_SHARE=on the
   key's next work is released as a worker takes a message): commands per job, by command.
3. the flood: one rapidocr worker, key A sends `--flood` single-page jobs, then key B sends one;
   B's wait (its job's created_at to finished_at) and how many of A's ended before it, with
   FAIR_SHARE on and off (the on run cancels A's rest once B ended).

Redis: the URL's db and the next, flushed at start and end. Writes the `fair-share` section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import redis

from bench.procs import load_average
from bench.report import machine_line, markdown_table, update_section
from bench.scaling import RedisSnapshot
from bench.servicekit import BenchStack
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


def _round(
    stack: BenchStack, pngs: list[bytes], clients: int
) -> tuple[list[float], float, Counter]:
    """Submit every png once: (latencies, wall seconds, Redis commands by name)."""
    client = redis.Redis.from_url(stack.redis_url)
    before = RedisSnapshot.take(client)
    with httpx.Client(base_url=stack.url, timeout=30) as http, ThreadPoolExecutor(clients) as pool:
        started = time.perf_counter()
        results = list(pool.map(lambda n: _submit(http, pngs[n], KEYS[n % 2]), range(len(pngs))))
        wall = time.perf_counter() - started
    calls, _ = RedisSnapshot.take(client).since(before)
    return [r[1] for r in results], wall, calls


def submit_cost(url: str, jobs: int, rounds: int, clients: int, folder: Path) -> dict:
    pngs = _pngs(jobs)
    stacks = {
        fair: BenchStack.create(_db(url, n), {**_key_env(folder), "FAIR_SHARE": fair})
        for n, fair in enumerate(("on", "off"))
    }
    found: dict[str, dict] = {fair: {"latencies": [], "rates": [], "calls": []} for fair in stacks}
    try:
        for stack in stacks.values():
            stack.start_api()
        for _ in range(rounds):
            for fair, stack in stacks.items():
                stack.flush()
                time.sleep(0.5)
                latencies, wall, calls = _round(stack, pngs, clients)
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
            "jobs_per_s": max(f["rates"]),
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
        dispatch.job(records[0])  # warm: scripts loaded, kombu's queue declared
        dispatch.taken(records[0].job_id)
        before = RedisSnapshot.take(client)
        started = time.perf_counter()
        for record in records[1:]:
            store.create(record)
            dispatch.job(record)
        submit_wall = time.perf_counter() - started
        middle = RedisSnapshot.take(client)
        started = time.perf_counter()
        for record in records[1:]:
            client.rpop(QUEUE)  # a worker takes a message...
            dispatch.taken(record.job_id)  # ...and says so first thing
        take_wall = time.perf_counter() - started
        after = RedisSnapshot.take(client)
        submit_calls, _ = middle.since(before)
        take_calls, _ = after.since(middle)
        take_calls["rpop"] -= jobs - 1  # the stand-in worker's own pop
        count = jobs - 1
        found[fair] = {
            "submit": sum(submit_calls.values()) / count,
            "take": sum((+take_calls).values()) / count,
            "submit_ms": 1000 * submit_wall / count,
            "take_ms": 1000 * take_wall / count,
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
            end = _at(lone_job, "finished_at")
            found[fair] = {
                "wait_s": (end - _at(lone_job, "created_at")).total_seconds(),
                "ahead": sum(1 for j in jobs if j["finished_at"] and _at(j, "finished_at") < end),
            }
        finally:
            stack.close()
    return found


def report(submit: dict, inproc: dict, waits: dict, args: argparse.Namespace, loads: tuple) -> str:
    on, off = submit["on"], submit["off"]

    def change(a: float, b: float) -> str:
        return f"{100 * (a - b) / b:+.0f} %"

    submit_table = markdown_table(
        ["FAIR_SHARE", "p50 ms", "p95 ms", "jobs/s", "Redis commands / job (API, commandstats)"],
        [
            [
                fair,
                f"{s['p50_ms']:.1f}",
                f"{s['p95_ms']:.1f}",
                f"{s['jobs_per_s']:.0f}",
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
                f"{on['calls_per_job'] - off['calls_per_job']:+.1f}",
            ]
        ],
    )
    cost_table = markdown_table(
        [
            "FAIR_SHARE",
            "commands at submit",
            "ms at submit",
            "commands at take",
            "ms at take",
            "by command (per job)",
        ],
        [
            [
                fair,
                f"{c['submit']:.1f}",
                f"{c['submit_ms']:.2f}",
                f"{c['take']:.1f}",
                f"{c['take_ms']:.2f}",
                ", ".join(f"{k} {v:g}" for k, v in c["by_command"].items()),
            ]
            for fair, c in inproc.items()
        ],
    )
    flood_table = markdown_table(
        [
            "FAIR_SHARE",
            "B's job: created to finished s",
            f"A's jobs ended before it (of {args.flood})",
        ],
        [[fair, f"{w['wait_s']:.1f}", w["ahead"]] for fair, w in waits.items()],
    )
    return f"""## The fair share: cost and a lone key's wait (`python -m bench.fair_share`)

{machine_line()}; load average {loads[0]:.1f} before, {loads[1]:.1f} after (the machine is
shared: other loads slow both sides). FAIR_SHARE_IN_FLIGHT_PER_TENANT=2 (the default), two API
keys.

**Submissions, no worker** (two APIs up at once, on and off, {args.jobs} small PNG jobs from
{args.clients} threads per round, the keys alternating, {args.rounds} rounds taken in turn):
p50/p95 over every request of every round, jobs/s the best round's, Redis commands per job the
median round's `INFO commandstats` delta (commands run inside Lua scripts count too; the idle
API's background is in it).

{submit_table}

**Cost per job alone on Redis** (in-process: `JobStore.create` and the job's dispatch, as the
API does; then a worker's `taken` as each task starts; commands include those inside scripts
(`evalsha` is the round trip), {args.jobs} jobs of two keys, no contention):

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
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    before = load_average()
    with tempfile.TemporaryDirectory() as folder:
        submit = submit_cost(args.redis_url, args.jobs, args.rounds, args.clients, Path(folder))
        print(submit)
        inproc = in_process_cost(args.redis_url, args.jobs)
        print(inproc)
        waits = flood(args.redis_url, args.flood, Path(folder))
        print(waits)
    body = report(submit, inproc, waits, args, (before, load_average()))
    print(body)
    if not args.no_write:
        update_section("fair-share", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
