"""`ocrq submit` and files whose job succeeded with failed pages: reported apart from clean ones,
exit 1, a note beside the result, and `--retry-failed` submits the whole file again.

A real API process and the real `ocrq` subprocess; the test plays the worker (the worker's
per-page outcomes are issue 28's ranges change), writing the record and result it writes."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from shared.error_codes import ErrorCode
from shared.jobs import Claim, JobStatus, JobStore, connect_redis, keys
from shared.results import Block, PageError, PageResult
from shared.storage import JobFiles
from testkit.stack import ROOT, Stack
from tests.conftest import UNIT_REDIS_URL
from tests.failed_pages import record_pages
from tests.integration.test_batch_cli import (
    job_count,
    ocrq_command,
    read_report,
    run_ocrq,
    write_page,
    write_pdf,
)
from worker.results import build_document, write_results

BROKEN = "page 2: broken object 7 0 R"


def _finish(stack: Stack, store: JobStore, job_id: str, pages: int, failed: set[int]) -> None:
    """Play the worker: `pages` pages read, those in `failed` recorded as failed."""
    assert store.claim(job_id, "w1:1", 60) is Claim.claimed
    code = ErrorCode.pdf_corrupt
    record_pages(store, job_id, {n: code if n in failed else None for n in range(1, pages + 1)})
    results = []
    for n in range(1, pages + 1):
        if n in failed:
            error = PageError(code=ErrorCode.pdf_corrupt, message=BROKEN)
            results.append(PageResult(index=n, width=0, height=0, error=error))
        else:
            block = Block(text=f"Read page {n}", bbox=[10, 10, 300, 50])
            results.append(
                PageResult(index=n, width=640, height=200, blocks=[block], text=f"Read page {n}")
            )
    files = JobFiles(stack.base / "temp", stack.base / "output", job_id)
    write_results(files, build_document(job_id, "rapidocr", results))
    assert store.succeed(job_id)


def _job_ids() -> set[str]:
    client = redis.Redis.from_url(UNIT_REDIS_URL, decode_responses=True)
    prefix = keys.job("")
    return {key.removeprefix(prefix) for key in client.scan_iter(match=prefix + "*")}


def test_failed_pages_are_reported_apart_and_retry_failed_submits_the_file_again(
    side_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = side_stack()
    stack.start_api()
    store = JobStore(connect_redis(UNIT_REDIS_URL), 3600)
    tree, out = tmp_path / "scans", tmp_path / "out"
    write_page(tree / "clean.png", ["Clean page"])
    write_pdf(tree / "partial.pdf", [["Page one"], ["Page two"]])

    queued = run_ocrq(stack.url, "submit", str(tree))  # no --wait: a job id per file
    assert queued.returncode == 0, queued.stderr
    ids = {name: job for job, _, name in (line.split("\t") for line in queued.stdout.splitlines())}
    _finish(stack, store, ids["clean.png"], 1, set())
    _finish(stack, store, ids["partial.pdf"], 2, {2})

    first = run_ocrq(
        stack.url, "submit", str(tree), "--out", str(out), "--format", "text",
        "--report", str(tmp_path / "first.json"),
    )  # fmt: skip

    assert first.returncode == 1, first.stderr  # not every page was read
    report = read_report(tmp_path / "first.json")
    assert (report["succeeded"], report["with_failed_pages"], report["failed"]) == (1, 1, 0)
    assert report["pages_failed"] == 1
    item = next(i for i in report["items"] if i["name"] == "partial.pdf")
    assert item["state"] == "succeeded" and item["pages_failed"] == 1
    assert item["page_errors"] == [f"2: pdf_corrupt: {BROKEN}"]
    err = " ".join(first.stderr.split())
    assert re.search(r"succeeded\W+1\W.*with failed pages\W+1 \(1 pages\)\W.*failed\W+0\W", err)
    assert "pages failed partial.pdf: 1 of 2 page(s) could not be read" in err
    assert "--retry-failed" in err
    assert (out / "partial.pdf.txt").read_text().split("\f") == [
        "Read page 1",
        "[page 2 could not be read: pdf_corrupt]\n",
    ]
    note = json.loads((out / "partial.pdf.txt.failed-pages.json").read_text())
    assert note["job_id"] == ids["partial.pdf"] and note["pages"] == item["page_errors"]
    assert not (out / "clean.png.txt.failed-pages.json").exists()

    jobs_before = job_count(stack)
    again = run_ocrq(stack.url, "submit", str(tree), "--out", str(out), "--format", "text")
    assert again.returncode == 0, again.stderr  # results there: skipped, nothing sent
    assert job_count(stack) == jobs_before

    known = _job_ids()
    retry = subprocess.Popen(
        ocrq_command(
            "submit", str(tree), "--out", str(out), "--format", "text", "--retry-failed",
            "--report", str(tmp_path / "retry.json"),
        ),
        cwd=ROOT,
        env={**stack.env, "OCRQ_URL": stack.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (new := _job_ids() - known) and time.monotonic() < deadline:
            time.sleep(0.2)
        (successor,) = new
        while store.status(successor) is not JobStatus.queued:
            time.sleep(0.1)
        _finish(stack, store, successor, 2, set())  # read whole this time
        _, stderr = retry.communicate(timeout=60)
    finally:
        retry.kill()

    assert retry.returncode == 0, stderr
    report = read_report(tmp_path / "retry.json")
    assert (report["skipped"], report["succeeded"], report["with_failed_pages"]) == (1, 1, 0)
    assert report["submitted"] == 1  # the whole file, as a new job
    assert (out / "partial.pdf.txt").read_text().split("\f") == ["Read page 1", "Read page 2\n"]
    assert not (out / "partial.pdf.txt.failed-pages.json").exists()
