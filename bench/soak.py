"""Soak: thousands of jobs from many concurrent clients; none lost, none run twice.

    .venv/bin/python -m bench.soak [--jobs 2000] [--clients 100] [--workers 2] [--redis-db 6]
    .venv/bin/python -m bench.soak --worker-max-jobs 100 [--worker-max-rss-mb 0] [--redis-url URL]

Starts one API and WORKERS worker processes (testkit/stack.py) on their own Redis database and
a scratch folder. The db must be empty (or pass --flush) and is flushed at
the end: on a shared Redis, two runs on one db take each other's jobs and flush each other.
Submits JOBS small distinct PNGs from CLIENTS concurrent clients and accounts for every one
(testkit/soak.py: lost, duplicated, mismatched).

Prints the counts, the API's RSS (start, peak, end; /proc/<pid>/status) and the wall time,
writes the `soak` section of BENCHMARKS.md, and exits 1 if anything was lost or duplicated.
With --worker-max-jobs / --worker-max-rss-mb (WORKER_MAX_JOBS / WORKER_MAX_RSS_MB: workers
recycled between jobs) it also samples each worker process's RSS every second and writes the
`soak-recycling` section instead: RSS over time, and how many worker processes each recycle made.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import redis

from bench.procs import load_average
from bench.report import machine_line, markdown_table, update_section
from bench.worker_memory import WorkerMemorySampler
from testkit.soak import SoakReport, run_soak
from testkit.stack import Stack


def _summary(report: SoakReport, workers: int) -> str:
    rows = [
        ["jobs / clients / workers", f"{report.jobs} / {report.clients} / {workers}"],
        ["submitted (accepted)", report.submitted],
        ["refused after retries", report.refused],
        ["succeeded", report.succeeded],
        ["failed", report.failed],
        ["canceled", report.canceled],
        ["**lost**", report.lost],
        ["**duplicated**", report.duplicated],
        ["text not the job's own", report.mismatched],
        ["submit retries (429/503/...)", report.submit_retries],
        ["all submitted in", f"{report.submit_seconds} s"],
        ["all terminal in (wall)", f"{report.wall_seconds} s"],
        ["throughput", f"{report.succeeded / max(report.wall_seconds, 0.001):.1f} jobs/s"],
        [
            "API RSS start / peak / end",
            "{start} / {peak} / {end} MB".format(**report.rss_mb),
        ],
    ]
    return markdown_table(["", "value"], rows)


def _memory_table(sampler: WorkerMemorySampler, recycles: int, workers: int) -> str:
    rows = sampler.timeline()
    table = markdown_table(
        ["t (s)", "worker processes alive", "RSS min / max (MB)", "processes so far"], rows
    )
    return (
        f"{table}\n\nRecycles (supervisor log): {recycles}; worker processes seen: "
        f"{len(sampler.pids)} for {workers} supervisor(s); peak worker RSS "
        f"{sampler.peak_mb():.0f} MB."
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("OCRQ_SOAK_DB", 6)))
    parser.add_argument(
        "--redis-url", help="the Redis db to use, instead of 127.0.0.1:6379/--redis-db"
    )
    parser.add_argument("--worker-max-jobs", type=int, default=0, help="WORKER_MAX_JOBS")
    parser.add_argument(
        "--engine",
        default="rapidocr",
        help="OCR_ENGINE of the workers (tesseract: no fallback engine, warms in about a second)",
    )
    parser.add_argument("--worker-max-rss-mb", type=float, default=0, help="WORKER_MAX_RSS_MB")
    parser.add_argument("--flush", action="store_true", help="empty a non-empty --redis-db first")
    parser.add_argument("--deadline", type=float, default=1800, help="seconds for all jobs")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args()

    redis_url = args.redis_url or f"redis://127.0.0.1:6379/{args.redis_db}"
    db = redis.Redis.from_url(redis_url)
    if db.dbsize() and not args.flush:
        raise SystemExit(f"Redis db {redis_url} is not empty: pick an empty one or --flush")
    db.flushdb()
    base = Path(tempfile.mkdtemp(prefix="ocrq-soak-"))
    recycling = args.worker_max_jobs > 0 or args.worker_max_rss_mb > 0
    load = load_average()
    env = {
        # one onnxruntime thread per worker process: WORKERS processes share the cores
        "RAPIDOCR_THREADS": "1",
        "OCR_ENGINE": args.engine,
        **(
            {"OCR_FALLBACK_ENGINES": "", "OMP_THREAD_LIMIT": "1"}
            if args.engine == "tesseract"
            else {}
        ),
        "WORKER_MAX_JOBS": str(args.worker_max_jobs),
        "WORKER_MAX_RSS_MB": f"{args.worker_max_rss_mb:g}",
        # the beat a recycled process hands over outlives its successor's start
        "WORKER_HEARTBEAT_TTL": "15",
    }
    stack = Stack(base=base, redis_url=redis_url, extra_env=env)
    sampler = WorkerMemorySampler([])
    try:
        stack.start_api()
        assert stack.api is not None
        names = [f"test-worker-{i}" for i in range(args.workers)]
        for _ in names:
            stack.start_worker(wait_warm=False)
        stack.wait_for(lambda: all(stack.worker_warm(name) for name in names), timeout=180)
        sampler = WorkerMemorySampler([w.pid for w in stack.workers])
        with sampler:
            report = asyncio.run(
                run_soak(
                    stack.url,
                    stack.api.pid,
                    redis_url,
                    base / "output",
                    args.jobs,
                    args.clients,
                    args.deadline,
                )
            )
        recycles = sum(
            (base / f"{name}.log").read_text().count("starting a fresh one") for name in names
        )
        alive = all(w.poll() is None for w in stack.workers) and stack.api.poll() is None
    finally:
        stack.stop()
        db.flushdb()
    table = _summary(report, args.workers)
    print(table)
    for problem in report.problems[:20]:
        print("  ", problem, file=sys.stderr)
    if len(report.problems) > 20:
        print(f"   ... and {len(report.problems) - 20} more", file=sys.stderr)
    summary = {k: v for k, v in asdict(report).items() if k != "problems"}
    print(summary | {"processes_alive": alive}, file=sys.stderr)
    if report.ok and alive:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"logs kept in {base}", file=sys.stderr)
    if recycling:
        memory = _memory_table(sampler, recycles, args.workers)
        print(memory)
    if not args.no_write and recycling:
        update_section(
            "soak-recycling",
            "## Soak with recycled workers (`python -m bench.soak --worker-max-jobs N`)\n\n"
            f"{machine_line()}; load average {load:.1f} at the start. As the `soak` section "
            f"(OCR_ENGINE={args.engine}), with WORKER_MAX_JOBS="
            f"{args.worker_max_jobs} and WORKER_MAX_RSS_MB={args.worker_max_rss_mb:g} (0 = "
            "off): each worker process is recycled between jobs once past a limit and its "
            "supervisor starts a fresh one at once. RSS is each worker process's VmRSS (the "
            "supervisor's child), sampled every second; *processes so far* counts every worker "
            "process seen (the first ones plus one per recycle).\n\n"
            + table
            + "\n\nWorker memory over the run:\n\n"
            + memory,
        )
    elif not args.no_write:
        update_section(
            "soak",
            "## Soak: many jobs, many clients (`python -m bench.soak`)\n\n"
            f"{machine_line()}. One API process, {args.workers} worker processes "
            "(RAPIDOCR_THREADS=1), Redis local; each job a distinct 320x133 PNG "
            '("Soak 00042", about 2.6 KB, about 0.1 s of OCR). All jobs are submitted '
            "first (Idempotency-Key on each, 429/503 retried), then polled to a terminal "
            "state. *lost*: accepted, never terminal or record gone; *duplicated*: a job "
            "that ran more than once (its record's `attempts`), an id handed out twice, or a "
            "result folder that is not exactly its three files; *text not the job's own*: the "
            "result does not read back the job's own number. The machine is shared: other "
            "loads slow both sides.\n\n" + table,
        )
    return 0 if report.ok and alive else 1


if __name__ == "__main__":
    raise SystemExit(main())
