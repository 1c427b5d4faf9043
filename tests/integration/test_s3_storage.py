"""STORAGE_URL=s3://: the API and two named workers share one Redis db and one bucket (moto on
loopback) and nothing else: each process has folders of its own, so no file can pass through a
disk. Jobs succeed on both workers, results and format=pdf come back, the bucket holds the
expected keys, a refused upload leaves nothing, and retention empties the bucket."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pypdf import PdfReader

from testkit.pages import encode, normalize_lines, render_page, text_pdf
from testkit.s3server import S3Server
from testkit.stack import WARM_TIMEOUT, Stack, wait_terminal

pytestmark = pytest.mark.integration

PREFIX = "ocrq"
TTL = 30  # seconds a finished job's record lives: then retention empties the bucket
WORKERS = ("s3-worker-a", "s3-worker-b")


def _own_dirs(base: Path, name: str) -> dict[str, str]:
    return {"TEMP_DIR": str(base / name / "temp"), "OUTPUT_DIR": str(base / name / "output")}


def _local_files(base: Path) -> list[Path]:
    """Files under every process's TEMP_DIR/OUTPUT_DIR (their logs and TMPDIR are elsewhere)."""
    roots = [base / name for name in ("api", *WORKERS)]
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


def _succeeded_on(stack: Stack, name: str) -> set[str]:
    log = (stack.base / f"{name}.log").read_text()
    return {line.split("job=")[1].split()[0] for line in log.splitlines() if "succeeded:" in line}


def _check_results(api: httpx.Client, job_id: str, name: str, png_lines: list) -> None:
    """The job's text, JSON, markdown and searchable PDF, served from the bucket."""
    pages = 2 if name.endswith(".pdf") else 1
    document = api.get(f"/jobs/{job_id}/result").json()
    assert len(document["pages"]) == pages
    if pages == 1:
        text = api.get(f"/jobs/{job_id}/result", params={"format": "text"})
        assert normalize_lines(text.text) == [line for line, _ in png_lines]
    else:
        assert "Second page here" in document["text"]
        markdown = api.get(f"/jobs/{job_id}/result", params={"format": "markdown"})
        assert "Second page here" in markdown.text
    archive = api.get(f"/jobs/{job_id}/result", params={"format": "pdf"})
    assert archive.status_code == 200, archive.text
    assert archive.headers["content-type"] == "application/pdf"
    assert len(PdfReader(io.BytesIO(archive.content)).pages) == pages


def _check_from_bucket(api: httpx.Client, stack: Stack, job_id: str, png: bytes) -> str:
    """`?delivery=url`: the API's 307 to a pre-signed URL of the bucket, `ocrq result` (whose
    client asks for it) and `ocrq submit --out` (the async client's) get the bytes the API
    streams. The id of the job `ocrq submit` made."""
    streamed = api.get(f"/jobs/{job_id}/result/pdf").content
    link = api.get(f"/jobs/{job_id}/result/pdf", params={"delivery": "url"})
    assert link.status_code == 307, link.text
    assert httpx.get(link.headers["location"]).content == streamed
    out = stack.base / "cli-result.pdf"
    command = ["result", job_id, "--format", "pdf", "--url", stack.url, "--out", str(out)]
    run = subprocess.run(
        [sys.executable, "-m", "ocrq_client", *command], capture_output=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == streamed

    folder, results, report = (stack.base / name for name in ("cli-in", "cli-out", "cli.json"))
    folder.mkdir()
    (folder / "scan.png").write_bytes(png)
    command = ["submit", str(folder), "--out", str(results), "--format", "text"]
    command += ["--url", stack.url, "--report", str(report)]
    run = subprocess.run(
        [sys.executable, "-m", "ocrq_client", *command], capture_output=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    made = json.loads(report.read_text())["items"][0]["job_id"]
    (written,) = results.iterdir()
    assert written.read_bytes() == api.get(f"/jobs/{made}/result/text").content
    return made


def test_api_and_two_workers_share_only_redis_and_the_bucket(
    side_stack: Callable[..., Stack], s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    stack = side_stack(
        **s3_server.env(bucket, PREFIX),
        JOB_TTL_SECONDS=str(TTL),
        RETENTION_SWEEP_SECONDS="1",
        RETENTION_GRACE_SECONDS="2",
        MAX_UPLOAD_MB="1",
        OCR_FALLBACK_ENGINES="",  # rapidocr alone: one engine to warm per worker
    )
    stack.extra_env.update(_own_dirs(stack.base, "api"))
    stack.start_api()
    for name in WORKERS:
        stack.start_worker(wait_warm=False, name=name, env=_own_dirs(stack.base, name))
    for name in WORKERS:  # warming side by side, on a loaded machine each may take longer
        stack.wait_for(lambda name=name: stack.worker_warm(name), timeout=2 * WARM_TIMEOUT)

    png_lines = [("Bucket storage works", 40), ("Invoice 4521", 32)]
    png = encode(render_page(png_lines, width=700))
    pdf = text_pdf([["First page of two"], ["Second page here"]])
    with httpx.Client(base_url=stack.url, timeout=30) as api:
        assert api.get("/ready").json()["workers"] == 2

        # refused uploads: 415 (no supported type), 413 (over MAX_UPLOAD_MB=1) leave nothing
        refused = api.post("/jobs", files={"file": ("x.png", b"not an image at all" * 20)})
        assert refused.status_code == 415, refused.text
        too_big = api.post("/jobs", files={"file": ("big.png", png + b"\0" * (2 << 20))})
        assert too_big.status_code == 413, too_big.text
        assert s3_server.keys(bucket) == [] and s3_server.open_uploads(bucket) == []

        uploads = [("scan.png", png)] * 4 + [("two.pdf", pdf)] * 2
        ids = [api.post("/jobs", files={"file": upload}).json()["job_id"] for upload in uploads]
        # each job is read as soon as it ends (in submission order, as the queue runs them):
        # its record lives only TTL seconds from then
        for job_id, (name, _) in zip(ids, uploads, strict=True):
            final = wait_terminal(api, job_id, timeout=120)
            assert final["status"] == "succeeded", (final, stack.logs())
            _check_results(api, job_id, name, png_lines)
            if job_id == ids[-1]:
                ids_by_cli = [_check_from_bucket(api, stack, job_id, png)]
            keys = set(s3_server.keys(bucket))
            assert {
                f"{PREFIX}/output/{job_id}/result.json",
                f"{PREFIX}/output/{job_id}/result.md",
                f"{PREFIX}/output/{job_id}/result.txt",
                f"{PREFIX}/output/{job_id}/result.pdf",  # rendered on request just now
                f"{PREFIX}/sources/{job_id}/input",
            } <= keys

        ran = {name: _succeeded_on(stack, name) for name in WORKERS}
        assert all(ran.values()), f"one worker ran every job: {ran}"
        assert set().union(*ran.values()) == set(ids) | set(ids_by_cli)
        # each upload goes once its job succeeded (just after the record says so)
        stack.wait_for(lambda: not [k for k in s3_server.keys(bucket) if "/temp/" in k])
        assert _local_files(stack.base) == []  # nothing went through a disk

        deadline = time.monotonic() + TTL + 30
        while s3_server.keys(bucket) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert s3_server.keys(bucket) == [], stack.logs()
        assert api.get(f"/jobs/{ids[0]}").status_code == 404
