"""The whole service measured against its engines alone, in one run, on the same pages.

    .venv/bin/python -m bench.service            # full run (about 15-20 min on 2 quiet cores)
    .venv/bin/python -m bench.service --quick    # few pages, for development (about 3 min)
    .venv/bin/python -m bench.service --parts overhead,coldstart --no-write

Parts (all by default):
  overhead   pages/s through API + Redis + one worker (submit all, poll, fetch the JSON result)
             over pages/s of the same engines in a plain loop in this process (built from
             Settings by worker.boot.build_engines, as the worker builds them): English pages
             with language=en and auto, the Russian eval pages with language=ru
  coldstart  a job submitted the moment a worker process starts; steady-state latency; a job
             submitted right after /ready says warm; the worker's warm-up time
  submit     POST /jobs latency with 1 MB PNGs (no worker): 1, 10 and 50 clients in a closed
             loop (jobs/s capacity), then 50 clients paced at 1, 2, 3 uploads/s each (offered
             50/100/150 jobs/s); API CPU per job, API RSS at rest and under load
  peer       the Tesseract CLI (Debian's, OMP_THREAD_LIMIT=1) on the Russian pages: pages/s,
             CER and word F1 beside the service with language=ru and language=auto
  scaling    pages/s with 1 and 2 worker processes x RAPIDOCR_THREADS 0 (auto), 1, 2

Uses Redis db 5 (OCRQ_BENCH_DB), which must be empty or is emptied with --flush; only that db
is ever flushed. Scratch files under ./var/bench. Writes the `service` section of
BENCHMARKS.md unless --no-write.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import sys
import time
from pathlib import Path

import redis

from bench.pages import english_pages, russian_pages
from bench.procs import load_average
from bench.service.coldstart import run_coldstart
from bench.service.overhead import run_overhead
from bench.service.peer import run_peer
from bench.service.report import publish, render

# Results and Sizes by name here too: a run pickled by the one-file bench/service.py refers to
# them as __main__.Results and __main__.Sizes, and `--render` still reads it.
from bench.service.results import LAST_RUN, PARTS, Results, Sizes, log
from bench.service.scaling import run_scaling
from bench.service.submit import run_submit
from bench.servicekit import BenchStack, service_batch


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="few pages: for development")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma list of " + ", ".join(PARTS)
    )
    # 20: with 10 (about 19 s a batch) service / loop moved by +-4% between runs
    parser.add_argument("--en-pages", type=int, default=20)
    parser.add_argument("--ru-pages", type=int, default=16)
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("OCRQ_BENCH_DB", 5)))
    parser.add_argument("--flush", action="store_true", help="empty the Redis db first")
    parser.add_argument("--no-write", action="store_true", help="print only, no BENCHMARKS.md")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="PICKLE",
        help=f"measure nothing: report the figures a run saved (each run saves {LAST_RUN})",
    )
    args = parser.parse_args()
    if args.render:
        with args.render.open("rb") as fh:
            saved = pickle.load(fh)
        publish(render(saved), args)
        return
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    sizes = Sizes.of(args)

    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    db = redis.Redis.from_url(redis_url)
    if db.dbsize() and not args.flush:
        sys.exit(f"Redis db {args.redis_db} holds {db.dbsize()} keys: pass --flush to empty it")
    db.flushdb()

    res = Results()
    res.loads["start"], res.loads["start5"], res.loads["start15"] = os.getloadavg()
    started = time.perf_counter()
    log(f"{os.cpu_count()} cores, {platform.machine()}; parts {', '.join(parts)}")
    en = english_pages(sizes.en_pages)
    ru = russian_pages(sizes.ru_pages)

    if "overhead" in parts:
        run_overhead(redis_url, en, ru, res, auto_ru="peer" in parts)
    if "peer" in parts:
        run_peer(ru, res)
        if "ru/auto" not in res.service:
            stack = BenchStack.create(redis_url)
            try:
                stack.start_api()
                stack.start_workers(1)
                res.service["ru/ru"] = service_batch(stack, ru, "ru", "service, language=ru")
                res.service["ru/auto"] = service_batch(stack, ru, "auto", "service, language=auto")
            finally:
                stack.close()
    if "coldstart" in parts:
        run_coldstart(redis_url, en[0], sizes.steady_jobs, res)
    if "submit" in parts:
        run_submit(redis_url, sizes.submit_requests, sizes.paced_seconds, res, sizes.paced_rates)
    if "scaling" in parts:
        reuse = res.service.get("en/en")
        en_scaling = en[: sizes.scaling_pages]
        if reuse is not None and len(reuse.pages) != len(en_scaling):
            reuse = None
        run_scaling(redis_url, en_scaling, ru, res, reuse)
    res.loads["end"] = load_average()
    db.flushdb()

    saved = {"res": res, "sizes": sizes, "en": en, "ru": ru}
    saved["seconds"] = time.perf_counter() - started
    LAST_RUN.parent.mkdir(parents=True, exist_ok=True)
    with LAST_RUN.open("wb") as fh:
        pickle.dump(saved, fh)
    publish(render(saved), args)


if __name__ == "__main__":
    main()
