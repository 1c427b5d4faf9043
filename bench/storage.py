"""The submit path's cost with STORAGE_URL=s3:// (moto on loopback) against local folders.

    .venv/bin/python -m bench.storage [--submits 40] [--large-submits 8] [--redis-url URL]

Starts `python -m api` (no worker: jobs wait in the queue) once per backend against an empty
Redis db (OCRQ_BENCH_DB, default 5, on OCRQ_TEST_REDIS_URL's server; emptied between runs and
at the end) and times POST /jobs one after another over one keep-alive connection: a small
PNG, a 5 MB and a 12 MB incompressible PNG. With a bucket the API spools the upload, counts its
pages, then stores it (one PUT up to S3_PART_MB, parts above), so the difference is the object
store's cost. moto is an in-memory server on the same host: a real bucket adds the network's
round trips and bandwidth. Rewrites the `storage` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import redis

from bench.report import machine_line, markdown_table, update_section
from testkit.pages import encode, render_page
from testkit.s3server import S3Server, running_s3_server
from testkit.stack import Stack


def small_png() -> bytes:
    return encode(render_page([("Storage benchmark page", 30)], width=500))


def large_png(megabytes: float = 5) -> bytes:
    from PIL import Image

    side = int((megabytes * 1e6 / 3) ** 0.5)
    return encode(Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)))


def time_submits(url: str, data: bytes, count: int) -> list[float]:
    """Seconds of each POST /jobs, sequential, over one connection (after one warm-up)."""
    seconds = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for n in range(count + 1):
            started = time.perf_counter()
            answer = client.post("/jobs", files={"file": (f"f{n}.png", data)})
            elapsed = time.perf_counter() - started
            if answer.status_code != 202:
                raise SystemExit(f"submit failed: {answer.status_code} {answer.text}")
            if n:
                seconds.append(elapsed)
    return seconds


def run_backend(
    base: Path, redis_url: str, env: dict[str, str], inputs: dict[str, tuple[bytes, int]]
) -> dict[str, list[float]]:
    redis.Redis.from_url(redis_url).flushdb()
    stack = Stack(
        base=base,
        redis_url=redis_url,
        extra_env={**env, "LOG_LEVEL": "WARNING", "MAX_QUEUED_JOBS": "1000000"},
    )
    try:
        stack.start_api()
        return {name: time_submits(stack.url, data, n) for name, (data, n) in inputs.items()}
    finally:
        stack.stop()
        redis.Redis.from_url(redis_url).flushdb()


def row(backend: str, name: str, size: int, seconds: list[float]) -> list[object]:
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return [
        backend,
        name,
        f"{size / 1e3:,.0f}",
        len(seconds),
        f"{len(seconds) / sum(seconds):.1f}",
        f"{statistics.median(seconds) * 1000:.1f}",
        f"{p90 * 1000:.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submits", type=int, default=40, help="small PNG submits per backend")
    parser.add_argument(
        "--large-submits", type=int, default=8, help="5 MB and 12 MB submits per backend"
    )
    server_url = os.environ.get("OCRQ_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    parser.add_argument(
        "--redis-url", default=f"{server_url}/{os.environ.get('OCRQ_BENCH_DB', '5')}"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    small, large = small_png(), large_png()
    inputs = {
        "small PNG": (small, args.submits),
        "5 MB PNG (one PUT)": (large, args.large_submits),
        "12 MB PNG (2 parts)": (large_png(12), args.large_submits),
    }
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        base = Path(tmp)
        with running_s3_server(base / "moto") as server:
            backends: dict[str, dict[str, str]] = {
                "local folders": {},
                "S3 (moto)": _bucket_env(server),
            }
            for n, (backend, env) in enumerate(backends.items()):
                (base / str(n)).mkdir()
                results = run_backend(base / str(n), args.redis_url, env, inputs)
                for name, seconds in results.items():
                    rows.append(row(backend, name, len(inputs[name][0]), seconds))
    table = markdown_table(
        ["storage", "upload", "KB", "submits", "submits/s", "ms median", "ms p90"], rows
    )
    body = (
        "## Storage: the submit path with STORAGE_URL=s3:// against local folders\n\n"
        f"`python -m bench.storage` ({machine_line()}; load average {load:.1f} at the start). "
        "POST /jobs one after another over one connection, API only (the jobs wait in the "
        "queue). S3 is moto's in-memory server on loopback: the figures are this service's "
        "own cost of a bucket (spool, page count, then one PUT or 8 MB parts, and the spool's "
        "removal), not a real bucket's network time; moto shares the 2 cores with the API.\n\n"
        + table
    )
    print(body)
    if not args.no_write:
        update_section("storage", body)


def _bucket_env(server: S3Server) -> dict[str, str]:
    return server.env(server.new_bucket(), "bench")


if __name__ == "__main__":
    main()
