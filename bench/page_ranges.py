"""Page ranges: one long PDF on one worker vs two, single-page jobs before vs after, a 1,000-page
PDF's memory and first page, and a worker killed mid-document.

    .venv/bin/python -m bench.page_ranges --before DIR [--quick] [--long-workers 1,2]
        [--paddle-python .venv-paddle/bin/python] [--vl-latency 0.3] [--redis-url URL]

Everything runs through the real processes (testkit/stack.py: `python -m api`, `python -m
worker`) on real Redis, on pages rendered by testkit/pages.py:

1. a 32-page PDF on 1 worker and on 2 (rapidocr, `RAPIDOCR_THREADS=1` each, the default
   PAGE_RANGE_SIZE: ranges of 8): time from the job's creation to its end (the job's own
   `created_at`/`finished_at`); both stacks up at once (a db each), the PDF run on each in
   turn, 3 rounds, the best of each (the machine's other load hits both alike), with the
   workers' median time per page (from their logs: a page slower with 2 workers means the
   cores were not free);
2. the same on the paddleocr-vl engine (the real paddleocr library, run by `--paddle-python`,
   layout off) against testkit's VL stand-in server with `--vl-latency` per request;
   PAGE_RANGE_SIZE=8 (its default, 32, would make the PDF one range);
3. 24 single-page PDF jobs submitted at once to 1 worker, rapidocr and the VL stand-in: this
   checkout ("after") and `--before` (the commit before page ranges, its own worktree and venv)
   both up at once on two Redis dbs, batches run alternately (before, after, before, after) so
   the machine's load hits both; 3 rounds, the best of each;
4. a 1,000-page PDF of one short line per page at 100 dpi (rapidocr, 1 worker, and 2 with
   `--long-workers 1,2`): the RSS peak of the worker's process tree (supervisor and its child,
   summed; sampled every 0.15 s) and the time from creation to the first page done
   (`pages_done` >= 1, polled every 0.05 s);
5. 2 workers, a 24-page PDF, PAGE_RANGE_SIZE=4: the worker holding a range (not the first)
   with 2 or more of its pages read, not its last, is SIGKILLed (its child process, the lease
   holder); pages read twice are counted from the
   workers' logs (`job=<id> range K page N`); the job must still succeed.

`--quick`: smaller sizes (16 pages, 12 jobs, 200 pages), one round each. Redis: two dbs
(URL's and the next), flushed at start and end. Writes the `page-ranges` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import redis

from bench.procs import load_average, tree
from bench.report import machine_line, markdown_table, update_section
from bench.servicekit import ROOT, BenchStack
from testkit.pages import encode, render_page
from testkit.vl_server import VlServer

RAPID_ENV = {"OCR_ENGINE": "rapidocr", "OCR_FALLBACK_ENGINES": "", "RAPIDOCR_THREADS": "1"}
PADDLE_HOME = ROOT / "var" / "paddle-tests"  # paddlex's caches, as tests/paddle (no downloads)
PADDLE_CACHES = {
    "PADDLE_PDX_CACHE_HOME": str(PADDLE_HOME / "paddlex"),
    "HF_HOME": str(PADDLE_HOME / "huggingface"),
    "MODELSCOPE_CACHE": str(PADDLE_HOME / "modelscope"),
    "XDG_CACHE_HOME": str(PADDLE_HOME / "cache"),
}
TERMINAL = ("succeeded", "failed", "canceled")
KEEP = bool(os.environ.get("OCRQ_BENCH_KEEP"))  # keep each run's folder (its logs) in var/bench


def vl_env(server: VlServer) -> dict[str, str]:
    return {
        **PADDLE_CACHES,
        "OCR_ENGINE": "paddleocr-vl",
        "OCR_FALLBACK_ENGINES": "",
        "PADDLEOCR_VL_BACKEND": "vllm-server",
        "PADDLEOCR_VL_SERVER_URL": server.url,
        "PADDLEOCR_VL_DEVICE": "cpu",
        "PADDLEOCR_VL_LAYOUT": "off",
    }


def _line(n: int) -> str:
    return f"Ledger page {n} total {n * 37}"


def document_pdf(pages: int) -> bytes:
    """`pages` pages of 8 lines each (a short letter), 150 dpi."""
    images = [
        render_page([(f"{_line(n)}, clause {i} of the agreement", 24) for i in range(8)])
        for n in range(1, pages + 1)
    ]
    return encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=150)


def line_pdf(pages: int) -> bytes:
    """`pages` small pages of one short line each, 100 dpi (a quick page to read)."""
    images = [render_page([(_line(n), 30)], width=700) for n in range(1, pages + 1)]
    return encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=100)


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def submit(client: httpx.Client, pdf: bytes) -> str:
    answer = client.post("/jobs", files={"file": ("doc.pdf", pdf, "application/pdf")})
    if answer.status_code != 202:
        raise RuntimeError(f"POST /jobs answered {answer.status_code}: {answer.text}")
    return answer.json()["job_id"]


def wait_all(client: httpx.Client, ids: list[str], timeout: float = 900) -> list[dict]:
    """Poll each job until every one is terminal; raise unless all succeeded."""
    bodies: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(bodies) < len(ids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(ids) - len(bodies)} job(s) not done after {timeout} s")
        for job_id in ids:
            if job_id not in bodies:
                body = client.get(f"/jobs/{job_id}").json()
                if body["status"] in TERMINAL:
                    bodies[job_id] = body
        time.sleep(0.1)
    bad = [b for b in bodies.values() if b["status"] != "succeeded"]
    if bad:
        raise RuntimeError(f"job(s) not succeeded: {bad[:2]}")
    return [bodies[i] for i in ids]


def span(bodies: list[dict]) -> float:
    """From the first job's creation to the last one's end (the jobs' own timestamps)."""
    return max(_ts(b["finished_at"]) for b in bodies) - min(_ts(b["created_at"]) for b in bodies)


@contextmanager
def running(
    redis_url: str,
    env: dict[str, str],
    workers: int,
    root: Path = ROOT,
    python: str | None = None,
) -> Iterator[BenchStack]:
    """API + `workers` warm workers of `root`'s code run by `python`; closed (and its db
    flushed) at the end, its logs printed if anything failed."""
    stack = BenchStack.create(redis_url, env)
    stack.root = root
    if python:
        stack.python = python
    try:
        stack.start_api()
        stack.start_workers(workers)
        yield stack
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.close(keep=KEEP)


def add_worker(stack: BenchStack) -> None:
    name, _ = stack.spawn_worker()
    stack.wait_for(lambda: stack.worker_warm(name), timeout=300)


def page_seconds(stack: BenchStack, job_id: str) -> list[float]:
    """The workers' own time per page of the job (`job=<id> range K page N (...) in X s`)."""
    pattern = re.compile(rf"job={job_id}(?: range \d+)? page \d+ \(.* in ([0-9.]+) s")
    found: list[float] = []
    for name in stack.worker_names.values():
        found += [float(s) for s in pattern.findall(stack.worker_log(name))]
    return found


def one_document(stack: BenchStack, pdf: bytes) -> tuple[float, float]:
    """(creation to end, median page seconds in the workers) of one job of `pdf`."""
    with httpx.Client(base_url=stack.url, timeout=120) as client:
        job_id = submit(client, pdf)
        seconds = span(wait_all(client, [job_id]))
    return seconds, statistics.median(page_seconds(stack, job_id))


# -- 1, 2: one PDF, 1 worker vs 2 -----------------------------------------------------------


def one_vs_two(
    redis_url: str, env: dict[str, str], pdf: bytes, python: str | None, rounds: int
) -> dict:
    """Two stacks up at once (1 worker, 2 workers; a db each), the PDF run on each in turn
    `rounds` times: the best time of each, and the median page time in those runs."""
    other_db = re.sub(r"/(\d+)$", lambda m: f"/{int(m.group(1)) + 1}", redis_url)
    runs: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
    with (
        running(redis_url, env, 1, python=python) as one,
        running(other_db, env, 2, python=python) as two,
    ):
        for _ in range(rounds):
            for count, stack in ((1, one), (2, two)):
                seconds, page = one_document(stack, pdf)
                runs[count].append((seconds, page, load_average()))
    best = {count: min(found) for count, found in runs.items()}
    return {
        "one": best[1][0],
        "two": best[2][0],
        "ratio": best[1][0] / best[2][0],
        "page_one": best[1][1],
        "page_two": best[2][1],
        "runs": runs,
    }


# -- 3: single-page jobs, before vs after ----------------------------------------------------


def single_pages(
    redis_url: str,
    env: dict[str, str],
    jobs: int,
    rounds: int,
    before: Path,
    before_python: str,
    python: str | None,
) -> dict:
    pdf = document_pdf(1)
    other_db = re.sub(r"/(\d+)$", lambda m: f"/{int(m.group(1)) + 1}", redis_url)
    times: dict[str, list[float]] = {"before": [], "after": []}
    cpu: dict[str, list[float]] = {"before": [], "after": []}
    with (
        running(other_db, env, 1, root=before, python=python or before_python) as old,
        running(redis_url, env, 1, python=python) as new,
    ):
        for _ in range(rounds):
            for label, stack in (("before", old), ("after", new)):
                with httpx.Client(base_url=stack.url, timeout=120) as client:
                    used = stack.worker_cpu()
                    ids = [submit(client, pdf) for _ in range(jobs)]
                    times[label].append(span(wait_all(client, ids)))
                    cpu[label].append(stack.worker_cpu() - used)
    return {"times": times, "cpu": cpu}


# -- 4: a 1,000-page PDF: RSS peak and first page ---------------------------------------------


@dataclass
class TreeSampler:
    """Samples the RSS (MB) of each worker's process tree, summed per worker, every `every` s."""

    stack: BenchStack
    every: float = 0.15
    peak: float = 0.0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def tree_rss(self) -> float:
        sizes = []
        for proc in self.stack.workers:
            total = 0.0
            for pid in tree(proc.pid):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                found = re.search(r"VmRSS:\s+(\d+)", status)
                total += int(found.group(1)) / 1024 if found else 0.0
            sizes.append(total)
        return max(sizes, default=0.0)

    def run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self.tree_rss())
            self.samples += 1

    def __enter__(self) -> TreeSampler:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def long_pdf(stack: BenchStack, pdf: bytes) -> dict:
    store = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    idle = TreeSampler(stack).tree_rss()
    with httpx.Client(base_url=stack.url, timeout=300) as client, TreeSampler(stack) as sampler:
        job_id = submit(client, pdf)
        first = None
        while first is None:
            if int(store.hget(f"ocrq:job:{job_id}", "pages_done") or 0) >= 1:
                first = time.time()
            elif store.hget(f"ocrq:job:{job_id}", "status") in TERMINAL:
                break
            time.sleep(0.05)
        body = wait_all(client, [job_id], timeout=1800)[0]
    created = _ts(body["created_at"])
    return {
        "idle_mb": idle,
        "peak_mb": sampler.peak,
        "samples": sampler.samples,
        "first_page": (first - created) if first else None,
        "total": span([body]),
        "pages_done": body["progress"]["pages_done"] if body.get("progress") else None,
    }


# -- 5: a worker killed mid-document ---------------------------------------------------------


def pages_read(stack: BenchStack, job_id: str) -> Counter[int]:
    pattern = re.compile(rf"job={job_id}(?: range \d+)? page (\d+) \(")
    read: Counter[int] = Counter()
    for name in stack.worker_names.values():
        read.update(int(n) for n in pattern.findall(stack.worker_log(name)))
    return read


def killed_worker(redis_url: str, pages: int, size: int) -> dict:
    env = {
        **RAPID_ENV,
        "PAGE_RANGE_SIZE": str(size),
        "JOB_LEASE_SECONDS": "4",
        "ORPHAN_SWEEP_SECONDS": "0.5",
    }
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    with running(redis_url, env, 2) as stack, httpx.Client(base_url=stack.url, timeout=60) as api:
        job_id = submit(api, document_pdf(pages))
        victim, killed_range = None, None
        deadline = time.monotonic() + 300
        while victim is None and time.monotonic() < deadline:
            read = pages_read(stack, job_id)
            for part in range(1, pages // size):  # not range 0: its run also planned the job
                holder = store.get(f"ocrq:lease:{job_id}/{part}")
                first = part * size + 1
                if holder and read[first + 1] and not read[first + size - 1]:
                    victim, killed_range = holder, part
                    break
            time.sleep(0.05)
        if victim is None:
            raise RuntimeError("no range caught half read")
        os.kill(int(victim.rsplit(":", 1)[1]), signal.SIGKILL)
        killed_at = time.time()
        body = wait_all(api, [job_id], timeout=600)[0]
        read = pages_read(stack, job_id)
    return {
        "status": body["status"],
        "twice": sum(c - 1 for c in read.values()),
        "all_read": set(read) == set(range(1, pages + 1)),
        "range": killed_range,
        "after_kill": _ts(body["finished_at"]) - killed_at,
        "total": span([body]),
    }


def rounds_text(runs: dict[int, list[tuple[float, float, float]]], pages: bool = True) -> str:
    """Each round: 1 worker's time / 2 workers' (and the median page time in each)."""
    out = []
    for (one, page_one, _), (two, page_two, _) in zip(runs[1], runs[2], strict=True):
        text = f"{one:.1f}/{two:.1f} s" if pages else f"{one:.2f}/{two:.2f} s"
        out.append(text + (f" (page {page_one:.2f}/{page_two:.2f} s)" if pages else ""))
    return ", ".join(out)


# -- the table -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one batch each")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--before", type=Path, required=True, help="checkout of 5e50dac")
    parser.add_argument("--paddle-python", default=str(ROOT / ".venv-paddle" / "bin" / "python"))
    parser.add_argument("--vl-latency", type=float, default=0.3)
    parser.add_argument("--long-workers", default="1", help="worker counts for the long PDF")
    args = parser.parse_args()
    before = args.before.resolve()
    before_python = str(before / ".venv" / "bin" / "python")
    doc_pages, jobs, long_pages, rounds = (16, 12, 200, 1) if args.quick else (32, 24, 1000, 3)
    kill_pages, kill_size = 24, 4
    load_start = load_average()
    started = time.perf_counter()
    rows: list[list[object]] = []
    verdicts: list[str] = []

    pdf = document_pdf(doc_pages)
    rapid = one_vs_two(args.redis_url, RAPID_ENV, pdf, None, rounds)
    print("rapidocr 1 vs 2:", rapid, flush=True)
    rows.append(
        [
            f"{doc_pages}-page PDF, rapidocr, ranges of 8",
            f"1 worker {rapid['one']:.1f} s, 2 workers {rapid['two']:.1f} s (best of {rounds}; "
            f"rounds, 1/2 workers: {rounds_text(rapid['runs'])})",
            f"**{rapid['ratio']:.2f}x**",
            ">= 1.6x",
            "met" if rapid["ratio"] >= 1.6 else "**missed**",
        ]
    )

    with VlServer(latency=args.vl_latency) as server:
        vl_ranges_env = {**vl_env(server), "PAGE_RANGE_SIZE": "8"}
        vl = one_vs_two(args.redis_url, vl_ranges_env, pdf, args.paddle_python, rounds)
        print("VL 1 vs 2:", vl, flush=True)
        rows.append(
            [
                f"{doc_pages}-page PDF, VL stand-in ({args.vl_latency:g} s/request), ranges of 8",
                f"1 worker {vl['one']:.2f} s, 2 workers {vl['two']:.2f} s (best of {rounds}; "
                f"rounds: {rounds_text(vl['runs'], pages=False)})",
                f"**{vl['ratio']:.2f}x**",
                ">= 1.0x",
                "met" if vl["ratio"] >= 1.0 else "**missed**",
            ]
        )
        vl_single = single_pages(
            args.redis_url, vl_env(server), jobs, rounds, before, before_python, args.paddle_python
        )
        print("VL single pages:", vl_single, flush=True)

    rapid_single = single_pages(
        args.redis_url, RAPID_ENV, jobs, rounds, before, before_python, None
    )
    print("rapidocr single pages:", rapid_single, flush=True)
    for label, single in (("rapidocr", rapid_single), ("VL stand-in", vl_single)):
        times, cpu = single["times"], single["cpu"]
        old, new = min(times["before"]), min(times["after"])
        runs = ", ".join(
            f"{b:.1f}/{a:.1f}" for b, a in zip(times["before"], times["after"], strict=True)
        )
        rows.append(
            [
                f"{jobs} single-page jobs, {label}, 1 worker",
                f"before {old:.1f} s, after {new:.1f} s (best; rounds before/after: {runs}); "
                f"worker CPU (median) before {statistics.median(cpu['before']):.1f} s, after "
                f"{statistics.median(cpu['after']):.1f} s",
                f"**{new / old:.2f}x** the time",
                "<= 1.0x (noise ~5%)",
                "met" if new <= old * 1.05 else "**missed**",
            ]
        )

    long = line_pdf(long_pages)
    long_env = {**RAPID_ENV, "MAX_PAGES": str(long_pages)}  # 500 by default
    for count in [int(n) for n in args.long_workers.split(",")]:
        with running(args.redis_url, long_env, count) as stack:
            result = long_pdf(stack, long)
        print(f"{long_pages} pages, {count} worker(s):", result, flush=True)
        first = result["first_page"]
        rows.append(
            [
                f"{long_pages}-page PDF ({len(long) / 1e6:.1f} MB, one line a page), rapidocr, "
                f"{count} worker(s)",
                f"worker RSS idle {result['idle_mb']:.0f} MB, peak {result['peak_mb']:.0f} MB; "
                f"whole job {result['total']:.0f} s",
                f"first page done in **{first:.2f} s**" if first else "no page seen",
                "flat RSS, first page early",
                "-",
            ]
        )

    kill = killed_worker(args.redis_url, kill_pages, kill_size)
    print("killed worker:", kill, flush=True)
    rows.append(
        [
            f"{kill_pages}-page PDF, 2 workers, ranges of {kill_size}, one SIGKILLed in range "
            f"{kill['range']}",
            f"job {kill['status']} {kill['after_kill']:.1f} s after the kill "
            f"(whole job {kill['total']:.1f} s), every page in: {kill['all_read']}",
            f"**{kill['twice']}** page(s) read twice",
            f"<= {kill_size} (one range)",
            "met" if kill["twice"] <= kill_size and kill["status"] == "succeeded" else "**missed**",
        ]
    )

    seconds = time.perf_counter() - started
    table = markdown_table(["case", "measured", "figure", "target", ""], rows)
    command = "python -m bench.page_ranges" + (" --quick" if args.quick else "")
    summary = (
        f"{machine_line()}; load average {load_start:.1f} at start, {load_average():.1f} at "
        f"the end; whole run {seconds / 60:.1f} min. Times are the jobs' own, from creation to "
        "the end (`created_at` to `finished_at`). Before = commit 5e50dac (the parent of page "
        "ranges) in its own worktree; both checkouts up at once, batches alternated."
    )
    verdicts = [row[-1] for row in rows]
    print(table + "\n\n" + summary)
    print("targets:", Counter(verdicts))
    update_section(
        "page-ranges",
        f"## Page ranges (`{command}`)\n\n"
        "One document read by several workers, range by range (issue 28). Rapidocr workers run "
        "`RAPIDOCR_THREADS=1` each; the VL stand-in is testkit/vl_server.py answering after a "
        "fixed latency, read by the real paddleocr library (`.venv-paddle`, layout off). "
        "Pages read twice come from the workers' logs (one line per page read).\n\n"
        + table
        + "\n\n"
        + summary
        + "\n\nMedian of the single-page rounds' times: "
        + "; ".join(
            f"{label} before {statistics.median(single['times']['before']):.1f} s, after "
            f"{statistics.median(single['times']['after']):.1f} s"
            for label, single in (("rapidocr", rapid_single), ("VL", vl_single))
        )
        + ".",
    )


if __name__ == "__main__":
    main()
