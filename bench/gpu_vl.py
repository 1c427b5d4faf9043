"""PaddleOCR-VL through the service on a real GPU: pages/s and GPU memory, for a machine with both.

    # a vLLM server already running (e.g. docker compose's vl-server, or paddleocr genai_server):
    .venv/bin/python -m bench.gpu_vl --pages ~/scans --server-url http://127.0.0.1:8118/v1
    # or let the script start one (the command runs in your vLLM environment):
    .venv/bin/python -m bench.gpu_vl --pages ~/scans --start-server \\
        "paddleocr genai_server --model_name PaddleOCR-VL-1.6-0.9B --backend vllm --port 8118"

Starts the real API and one worker (`python -m api`, `python -m worker`, this venv, which needs
the `gpu` extra and paddlepaddle-gpu) on the vllm-server backend, submits every image and PDF in
the folder at once, waits for all jobs, and prints pages/s, job outcomes and the GPU's memory
and utilisation sampled by nvidia-smi every second. Needs Redis (db 5, or --redis-url).
Nothing here runs on the CPU-only CI machines; compare with the figures in docs/gpu.md.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import threading
import time
from pathlib import Path

import httpx
import redis

from testkit.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".pdf"}


class GpuSampler(threading.Thread):
    """nvidia-smi every second: peak memory used (MiB) and mean utilisation (%) per GPU."""

    QUERY = "--query-gpu=index,memory.used,memory.total,utilization.gpu"

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[int, float, float, float]] = []
        self.error: str | None = None
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    ["nvidia-smi", self.QUERY, "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=True,
                ).stdout
            except (OSError, subprocess.SubprocessError) as exc:
                self.error = f"nvidia-smi: {exc}"
                return
            for line in out.strip().splitlines():
                index, used, total, util = (v.strip() for v in line.split(","))
                self.samples.append((int(index), float(used), float(total), float(util)))
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()

    def summary(self) -> list[str]:
        if not self.samples:
            return [self.error or "no nvidia-smi samples"]
        lines = []
        for gpu in sorted({s[0] for s in self.samples}):
            mine = [s for s in self.samples if s[0] == gpu]
            peak, total = max(s[1] for s in mine), mine[0][2]
            util = sum(s[3] for s in mine) / len(mine)
            lines.append(
                f"GPU {gpu}: peak {peak:.0f} / {total:.0f} MiB, mean utilisation {util:.0f}%"
            )
        return lines


def wait_for_model(url: str, model: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            served = [m["id"] for m in httpx.get(f"{url}/models", timeout=5).json()["data"]]
            if model in served:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(2)
    raise SystemExit(f"no VL server serving {model} at {url} after {timeout:.0f} s")


def run_jobs(stack: Stack, files: list[Path]) -> tuple[float, int, dict[str, int]]:
    """Submit all files at once; (seconds to the last job's end, pages read, outcomes)."""
    with httpx.Client(base_url=stack.url, timeout=60) as api:
        started = time.perf_counter()
        jobs = [
            api.post("/jobs", files={"file": (f.name, f.read_bytes())}).json()["job_id"]
            for f in files
        ]
        outcomes: dict[str, int] = {}
        pages = 0
        pending = set(jobs)
        while pending:
            for job_id in list(pending):
                body = api.get(f"/jobs/{job_id}").json()
                if body["status"] in ("succeeded", "failed", "canceled"):
                    pending.discard(job_id)
                    outcomes[body["status"]] = outcomes.get(body["status"], 0) + 1
                    pages += (body.get("progress") or {}).get("pages_done", 0)
            time.sleep(0.2)
        return time.perf_counter() - started, pages, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=Path, required=True, help="folder of images and PDFs")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--server-url", help="a running VL server, e.g. http://127.0.0.1:8118/v1")
    where.add_argument("--start-server", metavar="CMD", help="command that starts one on :8118")
    parser.add_argument("--model", default="PaddleOCR-VL-1.6-0.9B", help="served model name")
    parser.add_argument("--layout", choices=["on", "off"], default="on")
    parser.add_argument("--device", default="gpu:0", help="PADDLEOCR_VL_DEVICE (layout model)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    args = parser.parse_args()

    files = sorted(p for p in args.pages.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise SystemExit(f"no images or PDFs in {args.pages}")
    server = None
    url = args.server_url or "http://127.0.0.1:8118/v1"
    if args.start_server:
        server = subprocess.Popen(shlex.split(args.start_server))
    base = ROOT / "var" / "bench" / "gpu_vl"
    base.mkdir(parents=True, exist_ok=True)
    redis.Redis.from_url(args.redis_url).flushdb()
    env = {
        "OCR_ENGINE": "paddleocr-vl",
        "OCR_FALLBACK_ENGINES": "",
        "PADDLEOCR_VL_BACKEND": "vllm-server",
        "PADDLEOCR_VL_SERVER_URL": url,
        "PADDLEOCR_VL_MODEL": args.model,
        "PADDLEOCR_VL_DEVICE": args.device,
        "PADDLEOCR_VL_LAYOUT": args.layout,
        "WORKER_HEARTBEAT_TTL": "30",
    }
    stack = Stack(base=base, redis_url=args.redis_url, extra_env=env)
    sampler = GpuSampler()
    try:
        wait_for_model(url, args.model, timeout=900)
        stack.start_api()
        stack.start_worker(wait_warm=False)
        stack.wait_for(lambda: stack.worker_warm("test-worker-0"), timeout=900)
        sampler.start()
        seconds, pages, outcomes = run_jobs(stack, files)
    finally:
        sampler.stop()
        stack.stop()
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
    print(f"{len(files)} files, {pages} pages in {seconds:.1f} s: {pages / seconds:.2f} pages/s")
    print(f"jobs: {outcomes}; layout {args.layout}, model {args.model}, server {url}")
    for line in sampler.summary():
        print(line)
    print(f"logs: {base}")


if __name__ == "__main__":
    main()
