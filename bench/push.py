"""How many HTTP requests `ocrq submit --wait` makes on a batch: polling before, events after.

    .venv/bin/python -m bench.push [--files 200] [--before main] [--no-write]

Starts the API and one warm rapidocr worker (testkit's Stack) on Redis db OCRQ_BENCH_DB (5,
emptied at start and end: only that db), renders tiny one-line PNGs (a fast path: the OCR is
not what is measured), and runs the real `ocrq submit DIR --wait` subprocess through a counting
proxy (testkit/http_proxy.py) that records every request the API gets:
  before   the client of git revision --before (main), extracted with `git archive`: it polls
  after    this checkout's client: it follows each job's event stream
  fallback this checkout's client, the proxy answering /events 404 as a server without it does
Each run gets its own files (different text), so no Idempotency-Key finds another run's job.
Writes the `push` section of BENCHMARKS.md unless --no-write.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from io import BytesIO
from pathlib import Path

import redis

from bench.report import machine_line, markdown_table, update_section
from testkit.http_proxy import CountingProxy
from testkit.pages import encode, render_page
from testkit.stack import ROOT, Stack

KINDS = ["POST /jobs", "GET /jobs/{id}", "GET /jobs/{id}/events"]
RUNS = ("before", "after", "fallback")


def old_client(revision: str, into: Path) -> Path:
    """The `ocrq_client` package of `revision`, from git objects (no checkout is touched)."""
    archive = subprocess.run(
        ["git", "archive", revision, "ocrq_client"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def make_files(folder: Path, count: int, tag: str) -> None:
    folder.mkdir(parents=True)
    for n in range(count):
        page = render_page([(f"{tag} {n:04d}", 30)], width=360)
        (folder / f"{tag}{n:04d}.png").write_bytes(encode(page))


def run_client(proxy: CountingProxy, folder: Path, client_root: Path, report: Path) -> dict:
    """One `ocrq submit --wait` run; its report, wall time and the requests the API got."""
    before = len(proxy.requests)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ocrq_client", "submit", str(folder), "--wait",
         "--no-progress", "--report", str(report)],
        cwd=client_root,
        env={**os.environ, "OCRQ_URL": proxy.url, "PYTHONPATH": str(client_root)},
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800,
    )  # fmt: skip
    wall = time.perf_counter() - started
    counts = Counter(r.kind for r in proxy.requests[before:])
    return {"report": json.loads(report.read_text()), "wall": wall, "counts": counts}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.push",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--before", default="main", help="git revision of the polling client")
    parser.add_argument("--runs", default=",".join(RUNS), help="which of before,after,fallback")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    runs = [r for r in args.runs.split(",") if r]

    redis_base = os.environ.get("OCRQ_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    redis_url = f"{redis_base}/{os.environ.get('OCRQ_BENCH_DB', '5')}"
    redis.Redis.from_url(redis_url).flushdb()
    base = Path(tempfile.mkdtemp(prefix="ocrq-bench-push-"))
    old_root = old_client(args.before, base / "old-client")
    stack = Stack(base=base / "stack", redis_url=redis_url, extra_env={"LOG_LEVEL": "WARNING"})
    stack.base.mkdir()
    results: dict[str, dict] = {}
    load_before = os.getloadavg()[0]
    try:
        stack.start_api()
        stack.start_worker(wait_warm=False)
        # a loaded machine warms rapidocr slowly: wait longer than the tests do
        stack.wait_for(lambda: stack.worker_warm("test-worker-0"), timeout=600)
        for name in runs:
            folder = base / name
            make_files(folder, args.files, name)
            with CountingProxy(stack.port, hide_events=name == "fallback") as proxy:
                root = old_root if name == "before" else ROOT
                results[name] = run_client(proxy, folder, root, base / f"{name}.json")
            report = results[name]["report"]
            assert report["succeeded"] == args.files, report
            print(name, dict(results[name]["counts"]), f"{results[name]['wall']:.1f} s")
    finally:
        stack.stop()
        redis.Redis.from_url(redis_url).flushdb()
        shutil.rmtree(base, ignore_errors=True)
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"

    labels = {
        "before": f"before: polling (`{args.before}`)",
        "after": "after: event streams",
        "fallback": "after, server without /events (polls)",
    }
    rows = []
    for name, result in results.items():
        counts = result["counts"]
        total = sum(counts.values())
        rows.append(
            [labels[name], args.files, f"{result['wall']:.1f}"]
            + [counts[k] for k in KINDS]
            + [total - sum(counts[k] for k in KINDS), total, f"{total / args.files:.2f}"]
        )
    headers = ["client", "files", "wall s", *KINDS, "other", "total", "per file"]
    table = markdown_table(headers, rows)
    print(table)
    print(load)
    if args.no_write:
        return
    update_section(
        "push",
        f"""## Push instead of poll: requests of `ocrq submit --wait` (`python -m bench.push`)

{machine_line()}; {load} (the machine is shared). One API process and one warm rapidocr
worker, Redis local; {args.files} tiny one-line PNGs per run (a fast path: the OCR is not what
is measured), `ocrq submit DIR --wait` with its defaults (4 uploads at a time; the new client
follows 8 event streams at a time, oldest job first). Every request the API got is counted by
a proxy in front of it (`testkit/http_proxy.py`). *before*: the client of `{args.before}`,
which polls the oldest 16 unfinished jobs every 0.3 s, backing off to 2 s when nothing moved.
*after*: this client. *fallback*: this client against a server without the route (the proxy
answers `GET /jobs/{{id}}/events` 404 `not_found`): asked once, then each job is polled.

{table}

Polling costs `files` uploads plus `min(16, unfinished)` GETs per round, a round every
0.3-2 s for as long as the batch runs: it grows with the batch's wall time, not with news.
Events cost `files` uploads plus one stream per job (a job already finished answers its
state and closes at once), plus one more per broken stream (resumed with Last-Event-ID):
`2 x files` whatever the batch's duration.
""",
    )


if __name__ == "__main__":
    main()
