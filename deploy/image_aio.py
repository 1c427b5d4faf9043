"""The one-container part of deploy/image-test.sh: the CPU worker image's all-in-one, alone.

Run inside a network namespace of its own (no Redis of the host reachable, checked first) by
deploy/image-test.sh, with `--run`: a script that starts the image's `/app/deploy/all-in-one.sh`
(with no REDIS_URL, its data volume mounted) in a PID namespace, so a SIGKILL of that script ends
every process of the "container" at once; extra `-e NAME=VALUE` arguments go to the container.

1. start: /health within --health-within seconds of the container's start (the script's own
   timeline) while the embedded Redis keeps an AOF in the volume; a page sent during warm-up
   comes back with its text;
2. more jobs, SIGKILL of every process, a start on the same volume: each job is still there
   and ends succeeded with its text;
3. the worker hung (SIGSTOP of its processes): /health answers 503 `worker_unresponsive`
   within its configured time and the container exits 75;
4. VL_SERVER_CMD set to testkit's stand-in VL server (slow to start): /health answers before
   the VL server listens, the worker starts only after its /v1/models answers.
Prints the measured timeline and adds it to --figures. From the repository root:
`PYTHONPATH=. .venv/bin/python deploy/image_aio.py --run RUN --data DIR ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from deploy.image_jobs import CheckFailed, all_kept, chapter, submit, text_of
from testkit.pages import INVOICE_LINES, encode, render_page
from testkit.stack import pid_alive

API = "http://127.0.0.1:8081"  # the image's PORT, in the namespace of its own
WORKER = "aio"
STEP = re.compile(r"all-in-one: \+(\d+\.\d) s (.*)")


def ok(message: str) -> None:
    print(f"image-test: ok: {message}", flush=True)


def until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> float:
    """Wait for `check` to be true (HTTP errors count as false); the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return time.monotonic() - started
        time.sleep(interval)
    raise CheckFailed(f"{what}: not within {timeout:g} s")


def refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


class Container:
    """One start of the image's all-in-one: its process (the PID namespace) and its log."""

    def __init__(self, run: Path, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0
        args = [str(run)]
        for name, value in env.items():
            args += ["-e", f"{name}={value}"]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        self.launched = time.monotonic()

    def text(self) -> str:
        with self.log.open("rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    def steps(self) -> dict[str, float]:
        """The script's timeline: step text -> seconds since the script started."""
        return {m.group(2): float(m.group(1)) for m in STEP.finditer(self.text())}

    def step(self, prefix: str) -> float:
        found = [s for text, s in self.steps().items() if text.startswith(prefix)]
        if not found:
            raise CheckFailed(f"no '{prefix}' line in the all-in-one log:\n{self.text()[-3000:]}")
        return found[0]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the PID namespace ends, every process of the container with it."""
        self.proc.kill()
        self.proc.wait(timeout=30)
        until(lambda: refused(8081) and refused(6379), 30, "the ports free after SIGKILL")

    def stop(self) -> int:
        """SIGTERM to the start command (what a platform signals: the container's PID 1),
        then the container's exit status."""
        for pid in self.processes("bash /app/deploy/all-in-one.sh"):
            os.kill(pid, signal.SIGTERM)
        return self.proc.wait(timeout=120)

    def processes(self, marker: str) -> list[int]:
        """Processes of this container whose command line holds `marker` (host pids)."""
        found, todo = [], [self.proc.pid]
        parents: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        while todo:
            for child in parents.get(todo.pop(), []):
                todo.append(child)
                with contextlib.suppress(OSError):
                    cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
                    if marker in cmdline.decode(errors="replace"):
                        found.append(child)
        return found


def warm(api: httpx.Client) -> bool:
    return any(
        w["worker_id"] == WORKER and w["warm"] for w in api.get("/ready").json()["worker_details"]
    )


def first_start(
    api: httpx.Client, run: Path, log: Path, env: dict[str, str], data: Path, within: float
) -> tuple[Container, dict[str, float]]:
    box = Container(run, log, env)
    health = until(lambda: api.get("/health").status_code == 200, 60, "/health 200")
    ready = api.get("/ready").json()
    job_id = submit(api, "invoice.png", encode(render_page(INVOICE_LINES)))
    if ready["engines_warm"]:
        raise CheckFailed("the worker was warm before the first job: not a warm-up check")
    if not (data / "redis" / "appendonlydir").is_dir():
        raise CheckFailed(f"no AOF folder in the data volume: {sorted(data.rglob('*'))}")
    if not ready["redis"]:
        raise CheckFailed(f"/ready says Redis does not answer: {ready}")
    ok("no REDIS_URL and no Redis reachable: the embedded one answers, its AOF in the volume")
    got, want = text_of(api, job_id), [t for t, _ in INVOICE_LINES]
    first_job = time.monotonic() - box.launched
    if got != want:
        raise CheckFailed(f"text read back {got}, expected {want}")
    until(lambda: warm(api), 300, "the worker warm in /ready", interval=0.2)
    warm_seen = time.monotonic() - box.launched
    until(lambda: any(t.startswith("engine warm") for t in box.steps()), 10, "'engine warm'")
    script_health = box.step("API /health up")
    if script_health > within:
        raise CheckFailed(f"/health answered {script_health} s after the start (> {within:g} s)")
    timeline = {
        "aio_redis_up_seconds": box.step("redis up"),
        "aio_health_seconds": script_health,
        "aio_health_from_launch_seconds": round(health, 1),
        "aio_worker_started_seconds": box.step(f"worker {WORKER} started"),
        "aio_engine_warm_seconds": box.step("engine warm"),
        "aio_warm_from_launch_seconds": round(warm_seen, 1),
        "aio_first_job_seconds": round(first_job, 1),
    }
    ok(
        f"/health 200 {script_health} s after the container's start (limit {within:g} s); a "
        f"page sent during warm-up read back: {got}"
    )
    return box, timeline


def sigkill_and_restart(
    api: httpx.Client, box: Container, run: Path, log: Path, env: dict[str, str]
) -> tuple[Container, int]:
    expected = {}
    images = [render_page(chapter(n), width=1600) for n in range(1, 7)]
    pdf = encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=100)
    expected[submit(api, "long.pdf", pdf)] = [t for n in range(1, 7) for t, _ in chapter(n)]
    for n in (21, 22, 23):
        job_id = submit(api, f"page{n}.png", encode(render_page(chapter(n), width=1600)))
        expected[job_id] = [t for t, _ in chapter(n)]
    statuses = sorted(api.get(f"/jobs/{job_id}").json()["status"] for job_id in expected)
    box.kill()
    box = Container(run, log, env)
    until(lambda: api.get("/health").status_code == 200, 60, "/health 200 after the restart")
    all_kept(api, expected, "SIGKILL and restart")
    ok(
        f"every process SIGKILLed with jobs {', '.join(statuses)}, started again on the same "
        f"volume: {len(expected)} of {len(expected)} kept, all succeeded with their text"
    )
    return box, len(expected)


def hung_worker(api: httpx.Client, box: Container, limit: float) -> dict[str, float]:
    until(lambda: warm(api), 300, "the worker warm before the hang", interval=0.2)
    workers = box.processes("-m worker")
    if len(workers) != 2:
        raise CheckFailed(f"expected the worker's supervisor and process, found {workers}")
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    hung = time.monotonic()
    answers: list[httpx.Response] = []

    def unhealthy() -> bool:
        answers.append(api.get("/health"))
        return answers[-1].status_code == 503

    until(unhealthy, limit, "/health 503 after the hang", 0.2)
    failed = time.monotonic() - hung
    body = answers[-1].json()
    try:
        status = box.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise CheckFailed("the container still runs 60 s after /health answered 503") from None
    ended = time.monotonic() - hung
    if status != 75:
        raise CheckFailed(f"the container exited {status}, not 75 (worker unresponsive)")
    if body["error"]["code"] != "worker_unresponsive":
        raise CheckFailed(f"/health answered {body}")
    if any(pid_alive(pid) for pid in workers):
        raise CheckFailed("a hung worker process outlived its container")
    ok(
        f"worker hung (SIGSTOP): /health 503 worker_unresponsive after {failed:.1f} s (limit "
        f"{limit:g} s), the container exited 75 after {ended:.1f} s"
    )
    return {
        "aio_liveness_503_seconds": round(failed, 1),
        "aio_liveness_exit_seconds": round(ended, 1),
    }


def vl_server_first(
    api: httpx.Client, run: Path, log: Path, env: dict[str, str]
) -> dict[str, float]:
    vl_port, delay = 8118, 4
    vl_env = {
        **env,
        "VL_SERVER_CMD": f"python -m testkit.vl_server --port {vl_port} --start-delay {delay}",
        "PADDLEOCR_VL_SERVER_URL": f"http://127.0.0.1:{vl_port}/v1",
    }
    box = Container(run, log, vl_env)
    until(lambda: api.get("/health").status_code == 200, 60, "/health 200 with a VL server")
    if not refused(vl_port):
        raise CheckFailed("the VL server listened before /health answered")
    if any(w["worker_id"] == WORKER for w in api.get("/ready").json()["worker_details"]):
        raise CheckFailed("a worker beats before the VL server answers")
    until(lambda: f"worker {WORKER} started" in box.text(), 120, "the worker started")
    order = ["API /health up", "starting the VL server", "VL server up", f"worker {WORKER} started"]
    at = [box.step(step) for step in order]
    if at != sorted(at):
        raise CheckFailed(f"start order {dict(zip(order, at, strict=True))}")
    if httpx.get(f"http://127.0.0.1:{vl_port}/v1/models").status_code != 200:
        raise CheckFailed("the VL server does not answer /v1/models after the worker started")
    until(lambda: warm(api), 300, "the worker warm after the VL server", interval=0.2)
    status = box.stop()
    if status != 128 + signal.SIGTERM:
        raise CheckFailed(f"the container exited {status} after SIGTERM, not 143")
    if not (refused(8081) and refused(vl_port) and refused(6379)):
        raise CheckFailed("a process still listens after SIGTERM")
    ok(
        f"VL_SERVER_CMD: /health at +{at[0]} s, VL server started at +{at[1]} s and up at "
        f"+{at[2]} s ({delay} s load), worker started at +{at[3]} s; SIGTERM stopped all "
        f"(exit {status})"
    )
    return {"aio_vl_server_up_seconds": at[2], "aio_vl_worker_started_seconds": at[3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="starts the container")
    parser.add_argument("--data", type=Path, required=True, help="the data volume (host path)")
    parser.add_argument("--log", type=Path, required=True, help="the containers' output")
    parser.add_argument("--host-redis-port", type=int, help="a Redis of the host: must not answer")
    parser.add_argument("--health-within", type=float, default=3.0)
    parser.add_argument("--figures", type=Path, help="JSON file to add the timings to")
    args = parser.parse_args()
    if args.host_redis_port and not refused(args.host_redis_port):
        raise CheckFailed(f"the host's Redis on port {args.host_redis_port} answers in here")
    if not refused(6379):
        raise CheckFailed("a Redis answers on 6379 before the container starts")
    env = {
        "DATA_DIR": "/app/data",
        "WORKER_HEARTBEAT_TTL": "3",
        "LIVENESS_STALE_SECONDS": "5",
        "JOB_LEASE_SECONDS": "5",
        "ORPHAN_SWEEP_SECONDS": "1",
    }
    liveness_limit = 3 + 5 + 5  # heartbeat TTL + LIVENESS_STALE_SECONDS + checks' slack
    figures: dict[str, float | int] = {}
    with httpx.Client(base_url=API, timeout=10) as api:
        box, timeline = first_start(api, args.run, args.log, env, args.data, args.health_within)
        figures.update(timeline)
        box, kept = sigkill_and_restart(api, box, args.run, args.log, env)
        figures["aio_jobs_kept_over_sigkill"] = kept
        figures.update(hung_worker(api, box, liveness_limit))
        figures.update(vl_server_first(api, args.run, args.log, env))
    print(
        "image-test: all-in-one timeline (s after the container's start): redis up "
        f"{figures['aio_redis_up_seconds']}, /health {figures['aio_health_seconds']}, worker "
        f"started {figures['aio_worker_started_seconds']}, engine warm "
        f"{figures['aio_engine_warm_seconds']} (the script polls every 2 s; /ready saw it at "
        f"{figures['aio_warm_from_launch_seconds']} from launch), first job done "
        f"{figures['aio_first_job_seconds']} (from launch); with a VL server loading "
        f"4 s: VL up {figures['aio_vl_server_up_seconds']}, worker started "
        f"{figures['aio_vl_worker_started_seconds']}",
        flush=True,
    )
    if args.figures:
        known = json.loads(args.figures.read_text()) if args.figures.exists() else {}
        args.figures.write_text(json.dumps({**known, **figures}, indent=1))


if __name__ == "__main__":
    main()
