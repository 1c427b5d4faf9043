"""Jobs/s that `ocrq submit` gets into a local API: one command, its own API, no worker.

    .venv/bin/python -m bench.submit_rate [--redis-db 13] [--files 300] [--concurrency 1,4,8,16]

Starts `python -m api` on a free port against an *empty* Redis database (it refuses a db with
keys in it, and empties it between runs and at the end), renders distinct small PNGs (and a few
1 MB incompressible ones), then times the real `ocrq submit DIR` subprocess per concurrency:
fresh uploads (every file a new job) and a replay (same files again: the Idempotency-Key finds
every job, the uploads are read and dropped). Writes the `submit-rate` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from bench.report import machine_line, markdown_table, update_section

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_files(folder: Path, small: int, large: int) -> None:
    """Distinct bytes per file, so no upload is an idempotent replay of another."""
    from PIL import Image

    from testkit.pages import encode, render_page

    folder.mkdir(parents=True)
    for n in range(small):
        page = render_page([(f"Benchmark page {n:05d}", 30)], width=500)
        (folder / f"small{n:05d}.png").write_bytes(encode(page))
    for n in range(large):
        noise = Image.frombytes("RGB", (600, 600), os.urandom(600 * 600 * 3))
        (folder / f"large{n:03d}.png").write_bytes(encode(noise))


def start_api(base: Path, redis_url: str, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "TEMP_DIR": str(base / "temp"),
        "OUTPUT_DIR": str(base / "output"),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "MAX_QUEUED_JOBS": "1000000",
        "LOG_LEVEL": "WARNING",
    }
    log = open(base / "api.log", "ab")  # noqa: SIM115 - lives as long as the process
    api = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return api
        except httpx.HTTPError:
            time.sleep(0.1)
    api.kill()
    raise SystemExit(f"the API did not start; see {base / 'api.log'}")


def submit(url: str, folder: Path, include: str, concurrency: int, report: Path) -> dict:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ocrq_client", "submit", str(folder), "--include", include,
         "--concurrency", str(concurrency), "--report", str(report), "--no-progress"],
        cwd=ROOT, env={**os.environ, "OCRQ_URL": url}, check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    result = json.loads(report.read_text())
    result["process_seconds"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.submit_rate", description=__doc__)
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("OCRQ_BENCH_DB", 13)))
    parser.add_argument("--files", type=int, default=300, help="small PNGs (about 10 KB)")
    parser.add_argument("--large", type=int, default=80, help="1 MB PNGs")
    parser.add_argument("--concurrency", default="1,4,8,16")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median counts")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    db = redis.Redis.from_url(redis_url)
    if db.dbsize():
        raise SystemExit(f"Redis db {args.redis_db} is not empty; pick an empty one (--redis-db)")
    base = Path(tempfile.mkdtemp(prefix="ocrq-bench-"))
    port = free_port()
    make_files(base / "files", args.files, args.large)
    small_kb = (base / "files" / "small00000.png").stat().st_size / 1024
    api = start_api(base, redis_url, port)
    url = f"http://127.0.0.1:{port}"
    rows = []
    load_before = os.getloadavg()[0]
    try:
        for label, include, count in (
            (f"{small_kb:.0f} KB PNG", "small*", args.files),
            ("1 MB PNG", "large*", args.large),
        ):
            if not count:
                continue
            for concurrency in levels:
                fresh_runs, again_runs = [], []
                for _ in range(args.repeat):
                    db.flushdb()
                    shutil.rmtree(base / "temp", ignore_errors=True)
                    fresh = submit(url, base / "files", include, concurrency, base / "r.json")
                    again = submit(url, base / "files", include, concurrency, base / "r.json")
                    assert fresh["submitted"] == count and again["reused"] == count
                    fresh_runs.append(fresh)
                    again_runs.append(again)
                wall = statistics.median(r["wall_seconds"] for r in fresh_runs)
                again_wall = statistics.median(r["wall_seconds"] for r in again_runs)
                rows.append(
                    [
                        label,
                        count,
                        concurrency,
                        f"{wall:.2f}",
                        f"{count / wall:.0f}",
                        f"{count / again_wall:.0f}",
                        f"{statistics.median(r['process_seconds'] for r in fresh_runs):.2f}",
                    ]
                )
                print(" | ".join(str(c) for c in rows[-1]), flush=True)
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=15)
        db.flushdb()
        shutil.rmtree(base, ignore_errors=True)

    headers = [
        "files",
        "count",
        "concurrency",
        "submit wall s",
        "new jobs/s",
        "replayed jobs/s",
        "whole command s",
    ]
    table = markdown_table(headers, rows)
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    print(table)
    print(load)
    update_section(
        "submit-rate",
        f"""## Submission rate of `ocrq submit` (`bench/submit_rate.py`)

{machine_line()}; {load} (the machine is shared:
other loads slow both sides). One API process (uvicorn, one event loop) and the `ocrq` client
on the same 2 cores, Redis local, no worker: this measures getting jobs *into* the queue (upload
streamed to disk, job record, Celery message), not OCR. *new jobs/s*: files / the command's
own wall time (file scan to summary; each file read, hashed and uploaded with its key),
median of {args.repeat} runs.
*replayed jobs/s*: the same command again, every key finding its job (uploads read and dropped,
nothing queued). *whole command s* adds Python start-up and imports (about 0.4 s).

{table}
""",
    )


if __name__ == "__main__":
    main()
