"""`ocrq` as a batch script runs it: a real subprocess against the real API and worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from testkit.pages import encode, normalize_lines, render_page
from testkit.stack import ROOT, Stack

pytestmark = pytest.mark.integration


def ocrq_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ocrq_client", *args]


def run_ocrq(stack_url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ocrq_command(*args),
        cwd=ROOT,
        env={**os.environ, "OCRQ_URL": stack_url},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_count(stack: Stack) -> int:
    client = redis.Redis.from_url(stack.redis_url)
    return sum(1 for _ in client.scan_iter(match="ocrq:job:*", count=1000))


def write_page(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(render_page([(line, 34) for line in lines], width=640)))


def write_pdf(path: Path, pages: list[list[str]]) -> None:
    images = [render_page([(line, 34) for line in page], width=640) for page in pages]
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, "PDF", save_all=True, append_images=images[1:], resolution=200.0)


def read_report(path: Path) -> dict:
    return json.loads(path.read_text())


def test_folder_tree_waited_for_then_a_second_run_submits_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    tree, out = tmp_path / "scans", tmp_path / "out"
    expected: dict[str, list[str]] = {}
    for n in range(30):
        folder = ["", "north/", "north/archive/"][n % 3]
        name = f"{folder}item{n:02d}.png"
        expected[name] = [f"Batch item {n:03d}"]
        write_page(tree / name, expected[name])
    for k in (1, 2):
        pages = [[f"Report {k} page {p}"] for p in (1, 2)]
        write_pdf(tree / f"reports/report{k}.pdf", pages)
        expected[f"reports/report{k}.pdf"] = [line for page in pages for line in page]
    (tree / "north" / "readme.txt").write_text("not a page")
    jobs_before = job_count(stack)

    first = run_ocrq(
        stack.url, "submit", str(tree), "--recursive", "--out", str(out), "--format", "text",
        "--concurrency", "4", "--report", str(tmp_path / "first.json"),
    )  # fmt: skip

    assert first.returncode == 0, first.stderr
    report = read_report(tmp_path / "first.json")
    assert (report["files"], report["submitted"], report["succeeded"]) == (32, 32, 32)
    assert (report["failed"], report["pages"]) == (0, 34)
    for name, lines in expected.items():
        assert normalize_lines((out / f"{name}.txt").read_text()) == lines, name
    assert not list(out.rglob(".*"))  # no partial downloads left behind
    assert "succeeded" in first.stderr and "32" in first.stderr  # the summary table
    assert job_count(stack) == jobs_before + 32

    second = run_ocrq(
        stack.url, "submit", str(tree), "-r", "--out", str(out), "--format", "text",
        "--report", str(tmp_path / "second.json"),
    )  # fmt: skip

    assert second.returncode == 0, second.stderr
    report = read_report(tmp_path / "second.json")
    assert (report["skipped"], report["submitted"], report["reused"]) == (32, 0, 0)
    assert job_count(stack) == jobs_before + 32

    # without --out nothing is skipped, but the content hashes find the jobs made before
    third = run_ocrq(stack.url, "submit", str(tree), "-r", "--report", str(tmp_path / "3.json"))

    assert third.returncode == 0, third.stderr
    report = read_report(tmp_path / "3.json")
    assert (report["submitted"], report["reused"]) == (0, 32)
    listed = [line.split("\t") for line in third.stdout.splitlines()]
    assert len(listed) == 32 and {status for _, status, _ in listed} == {"succeeded"}
    assert job_count(stack) == jobs_before + 32

    job_id = next(j for j, _, name in listed if name == "reports/report2.pdf")
    ocrq = str(Path(sys.executable).with_name("ocrq"))  # the installed console script
    env = {**os.environ, "OCRQ_URL": stack.url}
    status = subprocess.run([ocrq, "status", job_id], env=env, capture_output=True, text=True)
    assert status.returncode == 0 and "succeeded" in status.stdout and "2/2" in status.stdout
    result = run_ocrq(stack.url, "result", job_id, "--format", "markdown")
    assert "<!-- page 2 -->" in result.stdout and "Report 2 page 2" in result.stdout


def test_worker_stopped_halfway_then_restarted_completes_without_duplicates(
    stack: Stack, tmp_path: Path
) -> None:
    tree, out = tmp_path / "tree", tmp_path / "out"
    expected = {}
    for n in range(20):
        name = f"{'ab'[n % 2]}/page{n:02d}.png"
        expected[name] = [f"Resume check {n:03d}", "Signed and approved"]
        write_page(tree / name, expected[name])
    args = ("submit", str(tree), "-r", "--out", str(out), "--format", "text")
    jobs_before = job_count(stack)
    log = (tmp_path / "run1.err").open("w")
    run1 = subprocess.Popen(
        ocrq_command(*args, "--report", str(tmp_path / "run1.json")),
        cwd=ROOT,
        env={**os.environ, "OCRQ_URL": stack.url},
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    try:
        stack.wait_for(lambda: len(list(out.rglob("*.txt"))) >= 3, timeout=60)
        stack.stop_worker(stack.workers[0])
        time.sleep(1)  # the CLI keeps polling; nothing moves now
        run1.send_signal(signal.SIGINT)  # Ctrl-C
        assert run1.wait(timeout=20) == 130
    finally:
        if run1.poll() is None:
            run1.kill()
        log.close()
        if not stack.workers:
            stack.start_worker()

    stderr = (tmp_path / "run1.err").read_text()
    assert "Run the same command again to resume" in stderr and "ocrq submit" in stderr
    report1 = read_report(tmp_path / "run1.json")
    assert report1["interrupted"] and report1["submitted"] == 20
    done_before = len(list(out.rglob("*.txt")))
    assert 3 <= done_before < 20
    assert job_count(stack) == jobs_before + 20

    run2 = run_ocrq(stack.url, *args, "--report", str(tmp_path / "run2.json"))

    assert run2.returncode == 0, run2.stderr
    report2 = read_report(tmp_path / "run2.json")
    assert report2["skipped"] == done_before
    assert (report2["submitted"], report2["reused"]) == (0, 20 - done_before)
    assert report2["succeeded"] == 20 - done_before
    for name, lines in expected.items():
        assert normalize_lines((out / f"{name}.txt").read_text()) == lines, name
    assert job_count(stack) == jobs_before + 20  # not one job twice


def test_full_queue_makes_ocrq_back_off_instead_of_failing(stack: Stack, tmp_path: Path) -> None:
    bounded = Stack(base=stack.base, redis_url=stack.redis_url, extra_env={"MAX_QUEUED_JOBS": "1"})
    tree, out = tmp_path / "few", tmp_path / "out"
    for n in range(8):
        write_page(tree / f"p{n}.png", [f"Queue limit {n:03d}", "Second line of text"])
    try:
        bounded.start_api()
        run = run_ocrq(
            bounded.url, "submit", str(tree), "--out", str(out), "--format", "text",
            "--concurrency", "4", "--report", str(tmp_path / "r.json"),
        )  # fmt: skip
    finally:
        bounded.stop()

    assert run.returncode == 0, run.stderr
    report = read_report(tmp_path / "r.json")
    assert (report["submitted"], report["succeeded"], report["failed"]) == (8, 8, 0)
    assert report["retries"] >= 1  # it met 429 queue_full and waited
    assert normalize_lines((out / "p7.png.txt").read_text())[0] == "Queue limit 007"


def test_ocrq_cancel_stops_a_running_pdf_between_pages(stack: Stack, tmp_path: Path) -> None:
    lines = [f"Long document line {n}" for n in range(8)]
    pdf = tmp_path / "long.pdf"
    write_pdf(pdf, [[f"Page {p} of the long one", *lines] for p in range(1, 16)])
    api = httpx.Client(base_url=stack.url, timeout=10)
    job_id = api.post("/jobs", files={"file": ("long.pdf", pdf.read_bytes())}).json()["job_id"]
    stack.wait_for(lambda: api.get(f"/jobs/{job_id}").json()["progress"]["pages_done"] >= 1)

    canceled = run_ocrq(stack.url, "cancel", job_id)

    assert canceled.returncode == 0, canceled.stderr
    assert canceled.stdout.strip() == f"{job_id} canceled"
    stopped = f"job={job_id} canceled; stopped"  # the worker notices before its next page
    stack.wait_for(lambda: any(stopped in p.read_text() for p in stack.base.glob("test-w*.log")))
    body = api.get(f"/jobs/{job_id}").json()
    assert body["status"] == "canceled" and body["progress"]["pages_done"] < 15
    assert api.get(f"/jobs/{job_id}/result").json()["error"]["code"] == "job_canceled"
    assert not (stack.base / "output" / job_id).exists()
    assert not (stack.base / "temp" / job_id).exists()
    again = run_ocrq(stack.url, "cancel", job_id)
    assert again.returncode == 0
    unknown = run_ocrq(stack.url, "cancel", "0" * 32)
    assert unknown.returncode == 1 and "job_not_found" in unknown.stderr
    api.close()


def test_concurrent_identical_submits_make_one_job(stack: Stack) -> None:
    """Eight clients, one key at the same moment: one 202, seven replays of that job."""
    from concurrent.futures import ThreadPoolExecutor

    from ocrq_client.client import OcrqClient, file_idempotency_key

    data = encode(render_page([("Only once please 4711", 34)], width=640))
    key = file_idempotency_key(data)
    jobs_before = job_count(stack)
    with OcrqClient(stack.url) as client, ThreadPoolExecutor(8) as pool:
        jobs = list(
            pool.map(
                lambda _: client.submit(data, filename="same.png", idempotency_key=key), range(8)
            )
        )
        final = client.wait(jobs[0].job_id, timeout=60)

    assert len({j.job_id for j in jobs}) == 1
    assert sorted(j.replayed for j in jobs) == [False] + [True] * 7
    assert job_count(stack) == jobs_before + 1
    assert final.status == "succeeded"
