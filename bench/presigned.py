"""A 100 MB result fetched through the API against by a pre-signed URL (`?delivery=url`), with
STORAGE_URL=s3:// (moto on loopback): the API process's CPU seconds and memory for each.

    .venv/bin/python -m bench.presigned [--mb 100] [--rounds 3] [--redis-url URL]

Starts `python -m api` (no worker) against an empty Redis db (OCRQ_BENCH_DB, default 5, on
OCRQ_TEST_REDIS_URL's server; emptied at the end) and a bucket. One job is submitted through
the API and marked succeeded in the job store, and its `result.pdf` is put straight into the
bucket (random bytes behind a PDF header, of --mb MB): running OCR until a result is that big
would take hours and measure nothing of this. Then, round by round, GET /jobs/{id}/result/pdf
(streamed by the API from the bucket) and GET ...?delivery=url followed to the bucket, each
read to its end and dropped. For each: wall time, the API process's CPU seconds (utime+stime
from /proc/<pid>/stat) and its peak resident memory above where it started (VmRSS sampled every
10 ms), and the bucket server's CPU seconds. Rewrites the `presigned` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from bench.procs import cpu_seconds, load_average, memory_mb
from bench.report import machine_line, markdown_table, update_section
from shared.jobs import Claim, JobStore, connect_redis
from shared.settings import Settings
from shared.storage import job_files
from testkit.pages import encode, render_page
from testkit.s3server import running_s3_server
from testkit.stack import Stack

_CHUNK = 1 << 20
STREAMED, PRESIGNED = "through the API", "pre-signed URL"


class PeakRss:
    """The highest VmRSS of `pid` while the block runs, sampled every 10 ms (MB)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = memory_mb(pid)[0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, memory_mb(self.pid)[0])

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, memory_mb(self.pid)[0])


def read_all(client: httpx.Client, url: str, **kwargs: object) -> int:
    """GET `url` to its end, dropping the bytes; how many came."""
    size = 0
    with client.stream("GET", url, **kwargs) as answer:  # type: ignore[arg-type]
        answer.raise_for_status()
        for chunk in answer.iter_bytes(_CHUNK):
            size += len(chunk)
    return size


def measure(api_pid: int, bucket_pid: int, fetch) -> dict[str, float]:
    """One fetch: wall seconds, the API's CPU seconds and peak RSS (MB), the bucket server's
    CPU seconds."""
    api_cpu, bucket_cpu = cpu_seconds(api_pid), cpu_seconds(bucket_pid)
    with PeakRss(api_pid) as rss:
        started = time.perf_counter()
        size = fetch()
        wall = time.perf_counter() - started
    return {
        "size": size,
        "wall": wall,
        "api_cpu": cpu_seconds(api_pid) - api_cpu,
        "rss_peak": rss.peak,
        "bucket_cpu": cpu_seconds(bucket_pid) - bucket_cpu,
    }


def finished_job(api: httpx.Client, settings: Settings, megabytes: int) -> str:
    """A job submitted through the API, marked succeeded, its result.pdf `megabytes` MB put
    straight into the bucket (with a small result.json, as a job's end leaves one)."""
    png = encode(render_page([("Presigned benchmark", 30)], width=400))
    job_id = api.post("/jobs", files={"file": ("a.png", png)}).json()["job_id"]
    store = JobStore(connect_redis(settings.redis_url), settings.job_ttl_seconds)
    assert store.claim(job_id, "bench:1", 600) is Claim.claimed
    files = job_files(settings, job_id)
    files.write_result("json", b'{"pages": []}')
    files.write_result("text", b"Presigned benchmark\n")
    settings.temp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=settings.temp_dir, suffix=".pdf") as big:
        big.write(b"%PDF-1.7\n")
        for _ in range(megabytes):
            big.write(os.urandom(_CHUNK))
        big.flush()
        files.storage.put(files.result_key("pdf"), Path(big.name))
    assert store.succeed(job_id)
    return job_id


def fetch_rounds(
    api: httpx.Client, label: str, job_id: str, api_pid: int, bucket_pid: int, rounds: int
) -> list[dict[str, float]]:
    """`rounds` fetches of the job's result.pdf the `label` way, after one of its small
    result.txt the same way (connections, imports, the signing client made on first use);
    each fetch's peak RSS measured above the API's RSS after that warm-up."""
    direct = label == PRESIGNED

    answered: list[int] = []  # bytes of each API answer's body

    def fetch(fmt: str) -> Callable[[], int]:
        path = f"/jobs/{job_id}/result/{fmt}"

        def streamed() -> int:
            size = read_all(api, path)
            answered.append(size)
            return size

        def presigned() -> int:
            link = api.get(path, params={"delivery": "url"})
            assert link.status_code == 307, link.text
            answered.append(len(link.content))
            with httpx.Client(timeout=600) as anyone:
                return read_all(anyone, link.headers["location"])

        return presigned if direct else streamed

    fetch("text")()
    idle = memory_mb(api_pid)[0]
    measured = [measure(api_pid, bucket_pid, fetch("pdf")) for _ in range(rounds)]
    for m, api_bytes in zip(measured, answered[1:], strict=True):
        m["rss_delta"] = m.pop("rss_peak") - idle
        m["api_bytes"] = api_bytes
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="size of the result (100 MB)")
    parser.add_argument("--rounds", type=int, default=3, help="fetches of each kind")
    server_url = os.environ.get("OCRQ_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    parser.add_argument(
        "--redis-url", default=f"{server_url}/{os.environ.get('OCRQ_BENCH_DB', '5')}"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    load = load_average()
    redis.Redis.from_url(args.redis_url).flushdb()
    runs: dict[str, list[dict[str, float]]] = {STREAMED: [], PRESIGNED: []}
    with tempfile.TemporaryDirectory(prefix="bench-presigned-") as tmp:
        base = Path(tmp)
        with running_s3_server(base / "moto") as server:
            env = server.env(server.new_bucket(), "bench")
            settings = Settings(
                redis_url=args.redis_url,
                temp_dir=base / "bench-temp",
                output_dir=base / "bench-output",
                **{k.lower(): v for k, v in env.items()},
            )
            job_id = ""
            try:
                for n, label in enumerate(runs):
                    # a fresh API per kind, so one kind's buffers do not hide the other's
                    (base / f"api-{n}").mkdir()
                    stack = Stack(
                        base=base / f"api-{n}",
                        redis_url=args.redis_url,
                        extra_env={**env, "LOG_LEVEL": "WARNING"},
                    )
                    try:
                        stack.start_api()
                        assert stack.api is not None
                        with httpx.Client(base_url=stack.url, timeout=600) as api:
                            job_id = job_id or finished_job(api, settings, args.mb)
                            runs[label] = fetch_rounds(
                                api, label, job_id, stack.api.pid, server.process.pid, args.rounds
                            )
                    finally:
                        stack.stop()
            finally:
                redis.Redis.from_url(args.redis_url).flushdb()

    rows = []
    for label, measured in runs.items():
        sizes = {m["size"] for m in measured}
        assert len(sizes) == 1, sizes
        med = {key: statistics.median(m[key] for m in measured) for key in measured[0]}
        peak = max(m["rss_delta"] for m in measured)
        rows.append(
            [
                label,
                f"{med['size'] / (1 << 20):,.0f}",
                len(measured),
                f"{med['api_bytes']:,.0f}",
                f"{med['wall']:.2f}",
                f"{med['size'] / (1 << 20) / med['wall']:,.0f}",
                f"{med['api_cpu']:.2f}",
                f"{peak:.1f}",
                f"{med['bucket_cpu']:.2f}",
            ]
        )
    table = markdown_table(
        [
            "result fetched",
            "MiB",
            "fetches",
            "bytes the API sent",
            "wall s (median)",
            "MiB/s",
            "API CPU s (median)",
            "API RSS peak above idle, MB (max)",
            "bucket server CPU s (median)",
        ],
        rows,
    )
    body = (
        "## Results from the bucket: a pre-signed URL against the API's stream\n\n"
        f"`python -m bench.presigned` ({machine_line()}; load average {load:.1f} at the "
        f"start). A {args.mb} MiB `result.pdf` of one succeeded job, fetched whole with "
        "STORAGE_URL=s3:// on moto's in-memory server on loopback: `GET /jobs/{id}/result/pdf` "
        "(the API streams it from the bucket) against `?delivery=url` (the API signs a URL, "
        "answers 307, the client reads the bucket). The result object was put straight into "
        "the bucket for a job marked succeeded in the job store (no OCR makes a result that "
        "big in a benchmark's time); the API cannot tell. Medians of the rounds, each fetch "
        "read to its end and dropped, by a fresh API process per kind after one small fetch the "
        "same way; API CPU from /proc/<pid>/stat (0.01 s ticks), its memory as the peak VmRSS "
        "(sampled every 10 ms) above its value after that small fetch. For the pre-signed URL "
        "the API's part is the 307 (owner and status checks, one HEAD of the object, the "
        "signature); the bytes go from the bucket to the client. moto shares the cores with "
        "the API and the client, so the wall times are this machine's, not a real bucket's."
        "\n\n" + table
    )
    print(body)
    if not args.no_write:
        update_section("presigned", body)


if __name__ == "__main__":
    main()
