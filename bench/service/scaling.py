"""Part 5, scaling: pages/s with 1 and 2 worker processes x RAPIDOCR_THREADS 0 (auto), 1, 2."""

from __future__ import annotations

import sys

from bench.pages import BenchPage
from bench.procs import load_average
from bench.service.results import Results, log
from bench.servicekit import Batch, BenchStack, service_batch

THREAD_SETTINGS = ("0", "1", "2")


def run_scaling(
    redis_url: str, en: list[BenchPage], ru: list[BenchPage], res: Results, reuse: Batch | None
) -> None:
    res.loads["scaling"] = load_average()
    for workers in (1, 2):
        for threads in THREAD_SETTINGS:
            if (workers, threads) == (1, "0") and reuse is not None:
                res.scaling[(1, "0")] = reuse  # the overhead run is this configuration
                continue
            label = f"{workers} worker(s), RAPIDOCR_THREADS={threads}"
            res.scaling[(workers, threads)] = _scaled(redis_url, en, "en", workers, threads, label)
    if ru:
        if "ru/ru" in res.service:
            res.scaling_ru[1] = res.service["ru/ru"]
        else:
            res.scaling_ru[1] = _scaled(redis_url, ru, "ru", 1, "0", "1 worker, ru")
        res.scaling_ru[2] = _scaled(redis_url, ru, "ru", 2, "0", "2 workers, ru")


def _scaled(
    redis_url: str, pages: list[BenchPage], language: str, workers: int, threads: str, label: str
) -> Batch:
    log(f"scaling: {label}")
    stack = BenchStack.create(redis_url, {"RAPIDOCR_THREADS": threads})
    try:
        stack.start_api()
        stack.start_workers(workers)
        batch = service_batch(stack, pages, language, label)
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.close()
    log(f"  {batch.pages_per_second:.3f} pages/s")
    return batch
