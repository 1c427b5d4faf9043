"""The client side of deploy/image-test.sh: jobs through the running API and CPU worker images.

Sends a rendered page and checks its text; then queues more jobs, kills the AOF-backed Redis
with SIGKILL while one runs and the rest wait, starts it again on the same folder and checks
that every job is still there and ends `succeeded` with its text. Run from the repository root
with the host venv: `PYTHONPATH=. .venv/bin/python deploy/image_jobs.py --api URL ...`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import httpx

from testkit.pages import INVOICE_LINES, encode, normalize_lines, render_page
from testkit.stack import LocalRedis, wait_terminal


class CheckFailed(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(f"image-test: FAILED: {message}")


def chapter(n: int) -> list[tuple[str, int]]:
    return [(f"Chapter {n} of the annual report", 36), (f"Revenue grew {n * 7} percent", 28)]


def squeezed(lines: list[str]) -> list[str]:
    """Word gaps are the engine's guess ("35percent"); the words and their order are not."""
    return [line.replace(" ", "") for line in lines]


def submit(api: httpx.Client, name: str, body: bytes) -> str:
    response = api.post("/jobs", files={"file": (name, body)})
    if response.status_code != 202:
        raise CheckFailed(f"POST /jobs answered {response.status_code}: {response.text}")
    return response.json()["job_id"]


def text_of(api: httpx.Client, job_id: str, timeout: float = 300) -> list[str]:
    job = wait_terminal(api, job_id, timeout=timeout)
    if job["status"] != "succeeded":
        raise CheckFailed(f"job {job_id} ended {job['status']}: {job.get('error')}")
    return normalize_lines(api.get(f"/jobs/{job_id}/result", params={"format": "text"}).text)


def all_kept(api: httpx.Client, expected: dict[str, list[str]], what: str) -> None:
    """Every job of `expected` still has its record and ends succeeded with its text."""
    lost = [job_id for job_id in expected if api.get(f"/jobs/{job_id}").status_code != 200]
    if lost:
        raise CheckFailed(f"{what} lost {len(lost)} of {len(expected)} job records")
    for job_id, want in expected.items():
        got = text_of(api, job_id)
        if squeezed(got) != squeezed(want):
            raise CheckFailed(f"job {job_id} read back {got}, expected {want}")


def one_page(api: httpx.Client) -> float:
    started = time.perf_counter()
    job_id = submit(api, "invoice.png", encode(render_page(INVOICE_LINES)))
    got, want = text_of(api, job_id), [text for text, _ in INVOICE_LINES]
    if got != want:
        raise CheckFailed(f"text read back {got}, expected {want}")
    print(f"image-test: ok: a rendered page through both images read back: {got}")
    return time.perf_counter() - started


def redis_restart_mid_queue(api: httpx.Client, server: LocalRedis) -> int:
    images = [render_page(chapter(n), width=1600) for n in range(1, 9)]
    pdf = encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=100)
    expected = {submit(api, "long.pdf", pdf): [t for n in range(1, 9) for t, _ in chapter(n)]}
    for n in (11, 12, 13):
        job_id = submit(api, f"page{n}.png", encode(render_page(chapter(n), width=1600)))
        expected[job_id] = [t for t, _ in chapter(n)]
    deadline = time.monotonic() + 120
    while api.get(f"/jobs/{next(iter(expected))}").json()["status"] != "running":
        if time.monotonic() > deadline:
            raise CheckFailed("the PDF job never started running")
        time.sleep(0.1)
    statuses = sorted(api.get(f"/jobs/{job_id}").json()["status"] for job_id in expected)
    server.kill()
    server.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if api.get("/ready").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    all_kept(api, expected, "Redis restart")
    print(
        f"image-test: ok: Redis killed (SIGKILL) with jobs {', '.join(statuses)} and started "
        f"again on its AOF: {len(expected)} of {len(expected)} kept, all succeeded"
    )
    return len(expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True, help="the API container's URL")
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--redis-dir", type=Path, required=True, help="its REDIS_DATA_DIR")
    parser.add_argument("--figures", type=Path, help="JSON file to add the timings to")
    args = parser.parse_args()
    server = LocalRedis(port=args.redis_port, data_dir=args.redis_dir)
    with httpx.Client(base_url=args.api, timeout=10) as api:
        figures = {"first_job_seconds": round(one_page(api), 1)}
        figures["jobs_kept_over_redis_restart"] = redis_restart_mid_queue(api, server)
    if args.figures:
        known = json.loads(args.figures.read_text()) if args.figures.exists() else {}
        args.figures.write_text(json.dumps({**known, **figures}, indent=1))


if __name__ == "__main__":
    main()
