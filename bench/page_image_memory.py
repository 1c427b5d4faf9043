"""Peak memory of the API process drawing page pictures of a tiny upload with many pixels.

    .venv/bin/python -m bench.page_image_memory [--redis-url redis://127.0.0.1:6379/13] [--root DIR]
        [--label after] [--no-write]

A 10000x10000 1-bit PNG is about 25 KB. The script starts a real API process (testkit Stack,
of the checkout --root names), stores such jobs as a worker leaves them (source kept, result
written, succeeded), then asks GET /jobs/{id}/pages/1/image (or --path) once, 12 times at once
for one job, and once each for 12 jobs at once, each case on a freshly started API. It prints the
API's RSS before, its peak (VmHWM) and its RSS after. Each run's figures go to
var/bench/page-image-memory-<label>.json; the `page-image-memory` section of BENCHMARKS.md shows
every label (run it with --label before --root of the old code to compare).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.procs import memory_mb
from bench.report import labelled_runs, machine_line, markdown_table, update_section
from shared.jobs import JobStore, connect_redis
from testkit.page_pictures import many_pixels_png, store_succeeded_job
from testkit.stack import ROOT, Stack

LABELS = ("before", "after")
CASES = [("1 request", 1, 1), ("12 at once, one page", 1, 12), ("12 jobs at once", 12, 12)]


def measure(
    stack: Stack, job_ids: list[str], requests: int, path: str
) -> tuple[list[int], float, float, float]:
    """Start the API, ask for `path` of the jobs (`requests` at once), stop it: the statuses, RSS
    before, peak RSS and RSS after, in MB."""
    stack.start_api()
    assert stack.api is not None
    try:
        before, _ = memory_mb(stack.api.pid)
        urls = [f"{stack.url}/jobs/{job_ids[i % len(job_ids)]}/{path}" for i in range(requests)]
        with ThreadPoolExecutor(requests) as pool:
            statuses = list(pool.map(lambda url: httpx.get(url, timeout=300).status_code, urls))
        after, peak = memory_mb(stack.api.pid)
    finally:
        stack.stop()
        stack.api = None
    return sorted(set(statuses)), before, peak, after


def render(results: dict[str, dict], path: str) -> str:
    """The BENCHMARKS.md section: one table per label."""
    parts = [
        "## Page pictures of a tiny upload with many pixels (`python -m bench.page_image_memory`)",
        "",
        "A 10000x10000 1-bit PNG (about 25 KB) stored as a succeeded job; a freshly started API "
        f"process answers `GET /jobs/{{id}}/{path}` once, 12 times at once for one job, and once "
        "each for 12 jobs at once. *Peak* is the API's VmHWM. `before`: the code before issue "
        "23's fixes (`--label before --root` of that checkout); `after`: with them.",
    ]
    for label, run in results.items():  # in LABELS' order
        parts += ["", f"**{label}** ({run['machine']}; load average {run['load']:.1f}):", ""]
        parts.append(
            markdown_table(
                ["case", "statuses", "RSS before MB", "peak MB", "RSS after MB"],
                [
                    [row["case"], " ".join(sorted(set(map(str, row["statuses"])))), *row["mb"]]
                    for row in run["rows"]
                ],
            )
        )
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument(
        "--path", default="pages/1/image", help="what to ask of each job, e.g. result?format=pdf"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose API runs")
    parser.add_argument("--label", default="after", choices=LABELS)
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args()
    source = many_pixels_png()
    scratch = ROOT / "var" / "bench"
    scratch.mkdir(parents=True, exist_ok=True)
    store = JobStore(connect_redis(args.redis_url), 3600)
    print(f"upload: 10000x10000 1-bit PNG, {len(source)} bytes; {args.path} of {args.root}")
    rows = []
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        for name, jobs, requests in CASES:
            base = Path(tmp) / name.replace(" ", "-").replace(",", "")
            base.mkdir()
            stack = Stack(base=base, redis_url=args.redis_url, root=args.root)
            job_ids = [
                store_succeeded_job(store, base / "temp", base / "output", source, "image/png")
                for _ in range(jobs)
            ]
            statuses, before, peak, after = measure(stack, job_ids, requests, args.path)
            print(
                f"{name:22} statuses {statuses}  RSS before {before:.0f} MB  "
                f"peak {peak:.0f} MB  RSS after {after:.0f} MB",
                flush=True,
            )
            rows.append(
                {
                    "case": name,
                    "statuses": statuses,
                    "mb": [round(before), round(peak), round(after)],
                }
            )
            for job_id in job_ids:
                store.delete(job_id)
    run = {"machine": machine_line(), "load": os.getloadavg()[0], "rows": rows}
    if args.no_write:
        print(render({args.label: run}, args.path))
        return
    text = render(labelled_runs("page-image-memory", args.label, run, LABELS), args.path)
    print(text)
    update_section("page-image-memory", text)


if __name__ == "__main__":
    main()
