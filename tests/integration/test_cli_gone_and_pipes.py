"""`ocrq` against the real API and worker: a file whose earlier job succeeded but whose result
files are gone (results removed, `make clean`, another STORAGE_URL) is submitted anew instead of
failing on every run; `ocrq submit DIR | head -3` ends quietly."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from testkit.stack import ROOT, Stack
from tests.integration.test_batch_cli import ocrq_command, run_ocrq, write_page

pytestmark = pytest.mark.integration


def _items(report: Path) -> list[dict]:
    return json.loads(report.read_text())["items"]


def test_a_job_whose_result_is_gone_is_submitted_anew(stack: Stack, tmp_path: Path) -> None:
    scans, out, report = tmp_path / "scans", tmp_path / "out", tmp_path / "report.json"
    write_page(scans / "gone.png", ["Result gone 7731"])
    args = ("submit", str(scans), "--out", str(out), "--format", "text", "--report", str(report))

    first = run_ocrq(stack.url, *args)
    assert first.returncode == 0, first.stderr
    [item] = _items(report)
    old_job = item["job_id"]
    assert "7731" in (out / "gone.png.txt").read_text()

    # the service lost the job's files (as `make clean` would); the client lost its copy too
    shutil.rmtree(stack.base / "output" / old_job)
    (out / "gone.png.txt").unlink()
    with httpx.Client(base_url=stack.url) as api:
        gone = api.get(f"/jobs/{old_job}")
        assert (gone.status_code, gone.json()["error"]["code"]) == (410, "result_gone")

    again = run_ocrq(stack.url, *args)

    assert again.returncode == 0, again.stderr
    [item] = _items(report)
    assert item["state"] == "succeeded" and item["job_id"] != old_job
    assert "7731" in (out / "gone.png.txt").read_text()
    # a third run finds the successor by its derived key: no third job
    (out / "gone.png.txt").unlink()
    third = run_ocrq(stack.url, *args)
    assert third.returncode == 0, third.stderr
    assert _items(report)[0]["job_id"] == item["job_id"] and _items(report)[0]["reused"]


def test_a_closed_pipe_ends_submit_quietly(stack: Stack, tmp_path: Path) -> None:
    scans = tmp_path / "many"
    for n in range(8):
        write_page(scans / f"p{n}.png", [f"Piped page {n} 5521"])
    env = {"OCRQ_URL": stack.url, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [*ocrq_command("submit", str(scans), "--concurrency", "1")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines = [proc.stdout.readline() for _ in range(3)]  # as `| head -3` reads
    proc.stdout.close()  # ... and goes away
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=120)

    assert all(line.count(b"\t") == 2 for line in lines), lines
    assert proc.returncode == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
