"""Peak memory of a worker reading a long PDF: pages are rendered one at a time, so RSS stays flat.

    .venv/bin/python -m bench.pdf_memory [--pages 300]

Builds a PDF of N text pages, runs it through the real JobRunner with the rapidocr engine (the
worker's code path, minus Celery: the job, then each of its page ranges in turn), samples the
process RSS after every page and prints a table;
writes the "pdf-memory" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.report import machine_line, markdown_table, update_section
from shared.error_codes import ErrorCode
from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, utcnow
from shared.settings import Settings
from shared.storage import JobFiles
from testkit.pages import encode, render_page
from worker.boot import build_runner
from worker.engines import build_engine
from worker.routing import EngineRouter


def _scratch_dir() -> Path:
    """Scratch space under ./var (git-ignored), never the system temp dir."""
    path = Path(__file__).resolve().parents[1] / "var" / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class SamplingStore(JobStore):
    """JobStore that records RSS every time a page is done."""

    samples: list[tuple[int, float]]

    def page_done(
        self, job_id: str, page: int, failed_code: ErrorCode | None = None, **usage: Any
    ) -> None:
        super().page_done(job_id, page, failed_code, **usage)
        self.samples.append((len(self.samples) + 1, rss_mb()[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=_scratch_dir()) as tmp:
        settings = Settings(
            redis_url=args.redis_url, temp_dir=Path(tmp) / "t", output_dir=Path(tmp) / "o"
        )
        page = render_page(
            [(f"Line {i} of a long scanned contract, clause {i}", 24) for i in range(12)]
        )
        pages = [page] * args.pages
        pdf = encode(pages[0], "PDF", save_all=True, append_images=pages[1:], resolution=150)
        engine = build_engine(settings)
        engine.warm()
        store = SamplingStore(connect_redis(settings.redis_url), 3600)
        store.samples = []
        job_id = uuid.uuid4().hex
        files = JobFiles(settings.temp_dir, settings.output_dir, job_id)
        files.make_input_dir()
        files.input_path.write_bytes(pdf)
        store.create(
            JobRecord(
                job_id=job_id,
                status=JobStatus.queued,
                created_at=utcnow(),
                media_type="application/pdf",
            )
        )
        del pages
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
        rss_before, _ = rss_mb()
        started = time.perf_counter()
        runner, watch = build_runner(settings, store, EngineRouter([engine]), "bench:1")
        watch.start()  # renews the job's lease, as in the worker: a long job outlives it
        try:
            # a job of several page ranges: this one worker reads them all, one by one (as it
            # would with no other worker), the last one assembling the result
            status = runner.run_whole(job_id)
        finally:
            watch.stop()
        seconds = time.perf_counter() - started
        if status is not JobStatus.succeeded:
            raise SystemExit(f"the PDF job ended {status}, not succeeded: nothing written")
        store.delete(job_id)
    _, peak = rss_mb()
    checkpoints = [s for s in store.samples if s[0] in {1, 10, 50, 100, 200, args.pages}]
    rows = [[n, f"{rss:.0f}"] for n, rss in checkpoints]
    table = markdown_table(["pages done", "RSS MB"], rows)
    summary = (
        f"{args.pages}-page PDF ({len(pdf) / 1e6:.1f} MB), status {status}, {seconds:.0f} s "
        f"({args.pages / seconds:.2f} pages/s); RSS before the job {rss_before:.0f} MB, "
        f"peak during the job {peak:.0f} MB."
    )
    print(table + "\n\n" + summary)
    update_section(
        "pdf-memory",
        "## Memory on a long PDF (`python -m bench.pdf_memory`)\n\n"
        f"{machine_line()}. Pages are rendered at 200 dpi and recognized one at a time; RSS is "
        "sampled after each page. The RSS before the job is the warm engine's: onnxruntime's "
        "memory arena, grown by the page-sized warm-up, is kept between pages (about 12% "
        "faster pages; see the `service` section, changes, item 3).\n\n" + table + "\n\n" + summary,
    )


if __name__ == "__main__":
    main()
