"""Part 1, overhead: pages/s through API + Redis + one worker over pages/s of the same engines in
a plain loop in this process, on the same pages with the same language."""

from __future__ import annotations

import sys

from bench.pages import BenchPage
from bench.procs import load_average
from bench.service.costs import handover_checks, page_costs, request_costs, runner_round_trips
from bench.service.results import Results, log
from bench.servicekit import BenchStack, build_router, direct_batch, merge, service_batch


def run_overhead(
    redis_url: str, en: list[BenchPage], ru: list[BenchPage], res: Results, auto_ru: bool
) -> None:
    """One API + one worker (settings defaults); each direct loop right before its service run."""
    res.loads["overhead"] = load_average()
    router = build_router({})
    stack = BenchStack.create(redis_url)
    try:
        stack.start_api()
        stack.start_workers(1)
        runs = [("en", en, "en"), ("en", en, "auto"), ("ru", ru, "ru")]
        if auto_ru:
            runs.append(("ru", ru, "auto"))
        for key, pages, language in runs:
            # Each service run against a loop over the same pages with the same language (the
            # same engine choice). The loop reads half the pages before the service run and
            # half after, so that a load that drifts during the run weighs on both sides alike.
            run = f"{key}/{language}"
            log(f"overhead: loop {run} x{len(pages[0::2])}")
            first = direct_batch(pages[0::2], language, f"engine loop, {run}", router)
            log(f"  {first.pages_per_second:.3f} pages/s; service {run}")
            batch = service_batch(stack, pages, language, f"service, language={language}")
            res.service[run] = batch
            log(f"  {batch.pages_per_second:.3f} pages/s; loop {run} x{len(pages[1::2])}")
            second = direct_batch(pages[1::2], language, f"engine loop, {run}", router)
            res.direct[run] = merge(first, second, pages)
            log(f"  {second.pages_per_second:.3f} pages/s")
        res.checks += request_costs(stack, res.service["en/en"])
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.close()
    res.checks += handover_checks(router, en[:3])
    res.checks += runner_round_trips(redis_url, router, en[0])
    res.checks += page_costs(en[:3], ru[:3], res.service["en/en"])
