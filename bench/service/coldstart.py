"""Part 2, cold start: a job submitted the moment a worker process starts, steady-state latency,
and a job submitted right after `/ready` says warm, over several worker restarts."""

from __future__ import annotations

import statistics
import sys
import time

import httpx

from bench.pages import BenchPage
from bench.procs import load_average
from bench.service.results import Results, log
from bench.servicekit import BenchStack, submit, wait_done, warm_seconds_from_log

RESTARTS = 4  # cold-start measurements of "first job right after /ready says warm"


def run_coldstart(redis_url: str, page: BenchPage, steady: int, res: Results) -> None:
    res.loads["coldstart"] = load_average()
    res.sizes_steady = steady
    stack = BenchStack.create(redis_url)
    out = res.coldstart
    poll = 0.02
    try:
        stack.start_api()
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            client.get("/health")
            log("coldstart: worker started, job submitted at once")
            spawned = time.perf_counter()
            name, proc = stack.spawn_worker()
            posted = time.perf_counter()
            job_id = submit(client, page, "en")
            warm_seen = None
            while True:
                if warm_seen is None:
                    detail = stack.worker_detail(name)
                    if detail and detail["warm"]:
                        warm_seen = time.perf_counter() - spawned
                        out["ready_warmup_seconds"] = detail["warmup_seconds"]
                body = client.get(f"/jobs/{job_id}").json()
                if body["status"] == "succeeded":
                    break
                if body["status"] in ("failed", "canceled"):
                    raise RuntimeError(f"cold-start job {body}")
                time.sleep(poll)
            client.get(f"/jobs/{job_id}/result").raise_for_status()
            out["first_latency"] = time.perf_counter() - posted
            out["first_wait"], out["first_run"] = _wait_and_run(body)
            out["spawn_to_warm_seen"] = warm_seen or float("nan")
            out["log_warmup_seconds"] = warm_seconds_from_log(stack.worker_log(name)) or 0.0

            log(f"  first job {out['first_latency']:.2f} s; {steady} steady jobs")
            out["steady_latency"], out["steady_run"] = _steady(client, page, poll, steady)
            res.steady_latencies = [out["steady_latency"]]
            for n in range(RESTARTS):
                log(f"  restart {n + 1}: job submitted right after /ready says warm")
                stack.stop_worker(proc)
                spawned = time.perf_counter()
                name, proc = stack.spawn_worker()
                while not ((d := stack.worker_detail(name)) and d["warm"]):
                    time.sleep(poll)
                restart = {"spawn_to_warm": time.perf_counter() - spawned}
                restart["warmup_seconds"] = d["warmup_seconds"]
                restart["first_latency"], body = _one_job(client, page, poll)
                restart["first_wait"], restart["first_run"] = _wait_and_run(body)
                restart["steady_latency"], restart["steady_run"] = _steady(
                    client, page, poll, steady
                )
                res.restarts.append(restart)
                log(f"    {restart['first_latency'] / restart['steady_latency']:.2f}x steady")
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.close()


def _steady(client: httpx.Client, page: BenchPage, poll: float, count: int) -> tuple[float, float]:
    """Median latency and median run time of `count` jobs sent one after another."""
    latencies, runs = [], []
    for _ in range(count):
        latency, body = _one_job(client, page, poll)
        latencies.append(latency)
        runs.append(_wait_and_run(body)[1])
    return statistics.median(latencies), statistics.median(runs)


def _one_job(client: httpx.Client, page: BenchPage, poll: float) -> tuple[float, dict]:
    started = time.perf_counter()
    job_id = submit(client, page, "en")
    body, _ = wait_done(client, job_id, poll)
    client.get(f"/jobs/{job_id}/result").raise_for_status()
    return time.perf_counter() - started, body


def _wait_and_run(body: dict) -> tuple[float, float]:
    from bench.servicekit import _ts

    created, started, finished = (_ts(body[k]) for k in ("created_at", "started_at", "finished_at"))
    return started - created, finished - started
