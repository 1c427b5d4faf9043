"""A job by reference (`source_url`) vs an upload of the same file: time to `succeeded`.

    .venv/bin/python -m bench.source_url [--rounds 3] [--pdf-pages 20] [--redis-url URL]

The real processes (testkit/stack.py: `python -m api`, one `python -m worker`, rapidocr) on real
Redis, and testkit's document server on loopback (SOURCE_ALLOWED_NETWORKS=127.0.0.1/32). Two
documents rendered by testkit/pages.py as grey A4 scans at 200 dpi with a scanner's grain: a
1-page PNG, a `--pdf-pages` PDF, and a large PDF (as many pages at 300 dpi with heavy grain)
of which only page 1 is read (`pages=1`), so its size shows rather than its OCR. Each
round submits the document both ways, one after the other (the order alternates between rounds,
so the machine's other load hits both alike), each job alone on the worker:

- submit: the POST's answer time as the client sees it (an upload carries the bytes; by
  reference the API checks the URL and answers);
- to succeeded: from the POST's start until the client sees `succeeded` (GET /jobs/{id}?wait=,
  which answers as soon as the job changes); by reference this includes the worker's fetch.

Medians over `--rounds`; the 1-minute load average is noted before and after (the machine is
shared). Writes the `source-url` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
from PIL import Image

from bench.procs import load_average
from bench.report import machine_line, markdown_table, update_section
from bench.servicekit import BenchStack
from testkit.pages import encode, render_page
from testkit.source_server import SourceServer, serving_sources

A4_200DPI = (1654, 2339)
A4_300DPI = (2480, 3508)
ENV = {
    "OCR_ENGINE": "rapidocr",
    "OCR_FALLBACK_ENGINES": "",
    "SOURCE_ALLOWED_NETWORKS": "127.0.0.1/32",
}


@dataclass
class Timings:
    submit: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BenchDocument:
    file_name: str
    data: bytes
    fields: tuple[tuple[str, str], ...] = ()  # form fields sent either way (e.g. pages=1)


def _page(n: int) -> list[tuple[str, int]]:
    return [
        (f"Quarterly report, page {n}", 40),
        (f"Revenue grew {n * 3} percent over the year", 30),
        ("Signed and sealed by the board", 30),
    ]


def scan(n: int, size: tuple[int, int] = A4_200DPI, grain: float = 6) -> Image.Image:
    """Page `n` as a grey A4 scan: the text on a full page with the scanner's grain (so its
    file is as large as a real scan's, not a few KB of flat white)."""
    page = Image.new("L", size, 255)
    page.paste(render_page(_page(n), width=size[0]).convert("L"), (0, 0))
    noise = np.random.default_rng(n).normal(0, grain, (size[1], size[0]))
    pixels = np.clip(np.asarray(page, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _pdf(images: list[Image.Image], dpi: int) -> bytes:
    return encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=dpi)


def documents(pdf_pages: int) -> dict[str, BenchDocument]:
    """label -> the document: a 1-page PNG, a `pdf_pages` PDF read whole, and a large PDF
    (300 dpi, heavy grain) of which only page 1 is read, so its size, not its OCR, shows."""
    large = [scan(n, A4_300DPI, grain=24) for n in range(1, pdf_pages + 1)]
    return {
        "1-page PNG": BenchDocument("scan.png", encode(scan(1))),
        f"{pdf_pages}-page PDF": BenchDocument(
            "report.pdf", _pdf([scan(n) for n in range(1, pdf_pages + 1)], 200)
        ),
        f"{pdf_pages}-page PDF, 300 dpi, `pages=1`": BenchDocument(
            "large.pdf", _pdf(large, 300), (("pages", "1"),)
        ),
    }


def _until_succeeded(api: httpx.Client, job_id: str) -> None:
    while True:
        job = api.get(f"/jobs/{job_id}", params={"wait": 30}).json()
        if job["status"] == "succeeded":
            return
        if job["status"] in ("failed", "canceled"):
            raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")


def one_job(api: httpx.Client, form: dict, timings: Timings) -> None:
    started = time.perf_counter()
    answer = api.post("/jobs", files=form)
    timings.submit.append(time.perf_counter() - started)
    answer.raise_for_status()
    job_id = answer.json()["job_id"]
    _until_succeeded(api, job_id)
    timings.done.append(time.perf_counter() - started)
    timings.job_ids.append(job_id)


def fetch_seconds(worker_log: str, job_ids: list[str]) -> list[float]:
    """The worker's own time for each job's fetch (its `fetched ... in X s` line)."""
    found = {}
    for line in worker_log.splitlines():
        match = re.search(r"job=(\w+) fetched .* in ([\d.]+) s", line)
        if match:
            found[match[1]] = float(match[2])
    return [found[j] for j in job_ids if j in found]


def measure(
    api: httpx.Client, server: SourceServer, docs: dict[str, BenchDocument], rounds: int
) -> dict[str, dict[str, Timings]]:
    found: dict[str, dict[str, Timings]] = {}
    for label, doc in docs.items():
        url = server.add(doc.file_name, doc.data)
        fields = {k: (None, v) for k, v in doc.fields}
        ways = {
            "upload": {"file": (doc.file_name, doc.data), **fields},
            "source_url": {"source_url": (None, url), **fields},
        }
        timings = {way: Timings() for way in ways}
        one_job(api, ways["upload"], Timings())  # warm: first pages of this kind, caches
        for n in range(rounds):
            order = list(ways) if n % 2 == 0 else list(reversed(ways))
            for way in order:
                one_job(api, ways[way], timings[way])
            print(
                f"{label} round {n + 1}: "
                + ", ".join(f"{w} {timings[w].done[-1]:.2f} s" for w in ways),
                flush=True,
            )
        found[label] = timings
    return found


def _spread(values: list[float], unit: float, fmt: str) -> str:
    """median (min-max)"""
    return (
        f"{statistics.median(values) * unit:{fmt}} "
        f"({min(values) * unit:{fmt}}-{max(values) * unit:{fmt}})"
    )


def report(
    docs: dict[str, BenchDocument],
    found: dict[str, dict[str, Timings]],
    fetches: dict[str, list[float]],
    rounds: int,
    loads: tuple[float, float],
) -> str:
    rows = []
    for label, timings in found.items():
        up, ref = timings["upload"], timings["source_url"]
        up_done, ref_done = statistics.median(up.done), statistics.median(ref.done)
        rows.append(
            [
                label,
                f"{len(docs[label].data) / 1e6:.1f} MB",
                _spread(up.submit, 1000, ".0f") + " ms",
                _spread(ref.submit, 1000, ".0f") + " ms",
                _spread(fetches[label], 1000, ".0f") + " ms" if fetches[label] else "-",
                _spread(up.done, 1, ".2f") + " s",
                _spread(ref.done, 1, ".2f") + " s",
                f"{(ref_done - up_done) * 1000:+.0f} ms ({(ref_done / up_done - 1) * 100:+.1f} %)",
            ]
        )
    table = markdown_table(
        [
            "document",
            "size",
            "submit: upload",
            "submit: source_url",
            "worker's fetch",
            "to succeeded: upload",
            "to succeeded: source_url",
            "source_url vs upload (medians)",
        ],
        rows,
    )
    return f"""## Documents by reference: source_url vs upload (`bench/source_url.py`)

{machine_line()}; load average (1 min) {loads[0]:.2f} before, {loads[1]:.2f} after: the
machine is shared, so read the differences against the spread of the rounds.

The real API and one rapidocr worker on real Redis, documents served over loopback by
testkit's document server (`SOURCE_ALLOWED_NETWORKS=127.0.0.1/32`). Each round submits the
same bytes as an upload and as a `source_url` (order alternating), each job alone on the
worker; median (min-max) of {rounds} rounds. *submit*: the POST's answer time; *worker's
fetch*: the worker's own time to fetch and sniff the source (its log); *to succeeded*: from
the POST's start until the client sees `succeeded` (by reference, the fetch included).

{table}

By reference the API answers without reading the document: its submit time stays flat with
the size, while an upload's grows with it (the large PDF). *worker's fetch* is what by
reference adds before the first page (over loopback here; on a real network the source's
speed, spent in the worker, never holding an API connection); set it against the spread of
*to succeeded* before reading anything into the difference of the medians: OCR on this shared
machine varies by far more than such a fetch costs.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pdf-pages", type=int, default=20)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    docs = documents(args.pdf_pages)
    stack = BenchStack.create(args.redis_url, ENV)
    before = load_average()
    try:
        stack.start_api()
        [worker] = stack.start_workers(1)
        with serving_sources() as server, httpx.Client(base_url=stack.url, timeout=120) as api:
            found = measure(api, server, docs, args.rounds)
        log = stack.worker_log(worker)
    finally:
        stack.stop()
    fetches = {label: fetch_seconds(log, t["source_url"].job_ids) for label, t in found.items()}
    text = report(docs, found, fetches, args.rounds, (before, load_average()))
    print(text)
    update_section("source-url", text)


if __name__ == "__main__":
    main()
