"""deploy/all-in-one.sh: Redis, the API, a VL server and a worker in one container behind one
health path.

The first tests run the script against the tests' Redis (REDIS_URL set). The embedded-Redis
tests share one "container" (module fixture, started again where a test needs it): no
REDIS_URL, so the script starts its own redis-server on a free port with its AOF in a data
folder; jobs sent during warm-up, a SIGKILL of every process and a start on the same folder,
then a hung worker (SIGSTOP) that /health reports and that ends the container. The VL-server
tests check the start order with testkit's stand-in server as VL_SERVER_CMD.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from testkit.pages import encode, render_page
from testkit.stack import ROOT, free_port, pid_alive, wait_terminal
from tests.conftest import UNIT_REDIS_URL

pytestmark = pytest.mark.integration
SCRIPT = ROOT / "deploy" / "all-in-one.sh"


def start(tmp_path: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    # The unit-test Redis db (flushed by redis_client): this worker must not take the jobs of
    # the session's integration stack, whose upload folder it cannot see.
    full_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "REDIS_URL": UNIT_REDIS_URL,
        "TEMP_DIR": str(tmp_path / "temp"),
        "OUTPUT_DIR": str(tmp_path / "output"),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WORKER_HEARTBEAT_TTL": "3",
        **env,
    }
    log = open(tmp_path / "all-in-one.log", "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), "--name", "aio"],
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=log,
        start_new_session=True,  # its own process group: `reap_started` ends what is left
    )
    STARTED.append(proc)
    return proc


STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def reap_started() -> Iterator[None]:
    """After each test (and its fixtures' graceful stops), SIGKILL whatever `start` left running:
    a test failing midway must leave no worker behind, or it takes later tests' jobs on the unit
    db, whose upload folders it cannot see."""
    yield
    while STARTED:
        proc = STARTED.pop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_until(check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"not true after {timeout} s")


@pytest.fixture
def container(tmp_path: Path, redis_client: redis.Redis) -> Iterator[tuple[httpx.Client, Path]]:
    port = free_port()
    proc = start(tmp_path, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client, tmp_path
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        print((tmp_path / "all-in-one.log").read_text()[-3000:])  # shown when a test fails


def test_health_answers_at_once_and_jobs_run_once_warm(
    container: tuple[httpx.Client, Path],
) -> None:
    client, _ = container
    started = time.monotonic()
    wait_until(lambda: client.get("/health").status_code == 200, timeout=15)
    assert time.monotonic() - started < 15
    wait_until(lambda: client.get("/ready").json()["engines_warm"], timeout=90)
    page = encode(render_page([("Invoice number 20461", 40)]))
    job = client.post("/jobs", files={"file": ("p.png", page, "image/png")}).json()
    assert wait_terminal(client, job["job_id"])["status"] == "succeeded"
    text = client.get(f"/jobs/{job['job_id']}/result", params={"format": "text"}).text
    assert "20461" in text


def test_container_exits_when_the_worker_cannot_start(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    """A dead worker behind a live /health would accept jobs forever: stop the whole thing."""
    port = free_port()
    proc = start(tmp_path, port, OCR_ENGINE="no-such-engine")
    assert proc.wait(timeout=60) == 3  # the worker's exit code: engine error
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)


def test_sigterm_stops_both_processes(tmp_path: Path, redis_client: redis.Redis) -> None:
    port = free_port()
    proc = start(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{url}/health").status_code == 200, timeout=15)
    # Celery's SIGTERM handler (warm shutdown, heartbeat removed) exists once it says ready.
    log = tmp_path / "all-in-one.log"
    wait_until(lambda: "ocr@aio ready." in log.read_text(), timeout=90)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=1)
    assert redis_client.get("ocrq:worker:aio") is None, "the worker removed its heartbeat"


# -- helpers for the tests below -----------------------------------------------------------------


def processes_under(pid: int) -> dict[int, str]:
    """Every live descendant of `pid`: pid -> command line."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(stat.parent.name)] = int(fields[1])
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, its_parent in parents.items():
            if its_parent == parent:
                with contextlib.suppress(OSError):
                    cmdline = (Path(f"/proc/{child}/cmdline").read_bytes()).replace(b"\0", b" ")
                    found[child] = cmdline.decode(errors="replace")
                todo.append(child)
    return found


def processes_matching(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if text in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(int(cmdline.parent.name))
    return found


def job_for(client: httpx.Client, number: int) -> str:
    page = encode(render_page([(f"Invoice number {number}", 40)]))
    response = client.post("/jobs", files={"file": (f"{number}.png", page, "image/png")})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def succeeded_with_its_number(client: httpx.Client, job_id: str, number: int) -> None:
    job = wait_terminal(client, job_id, timeout=120)
    assert job["status"] == "succeeded", job
    text = client.get(f"/jobs/{job_id}/result", params={"format": "text"}).text
    assert str(number) in text


@dataclass
class Embedded:
    """The script with no REDIS_URL: its own Redis, everything in `data_dir`."""

    data_dir: Path
    port: int
    redis_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir.parent / "all-in-one.log"

    def start(self) -> None:
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "DATA_DIR": str(self.data_dir),
            "EMBEDDED_REDIS_PORT": str(self.redis_port),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "WORKER_HEARTBEAT_TTL": "3",
            "LIVENESS_STALE_SECONDS": "4",
            "JOB_LEASE_SECONDS": "4",
            "ORPHAN_SWEEP_SECONDS": "0.5",
        }
        for name in ("REDIS_URL", "TEMP_DIR", "OUTPUT_DIR", "TMPDIR"):
            env.pop(name, None)
        with self.log.open("ab") as log:
            log.write(b"\n---- start ----\n")
            self.proc = subprocess.Popen(
                ["bash", str(SCRIPT), "--name", "aio-embedded"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: SIGKILL ends all at once
            )
        wait_until(lambda: httpx.get(f"{self.url}/health").status_code == 200, timeout=30)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self) -> None:
        if not self.running():
            self.start()

    def kill_everything(self) -> None:
        """SIGKILL every process of the container at once, as a platform's hard stop does."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        wait_until(lambda: not group_alive(self.proc.pid), timeout=10)  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                return True
    return False


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    base = tmp_path_factory.mktemp("all-in-one")
    container = Embedded(data_dir=base / "data", port=free_port(), redis_port=free_port())
    try:
        yield container
    finally:
        container.stop()
        if container.log.exists():
            print(container.log.read_text()[-4000:])  # shown when a test fails


# -- no REDIS_URL: the embedded Redis ------------------------------------------------------------


def test_without_redis_url_a_redis_of_its_own_with_aof_and_a_job_sent_during_warm_up_succeeds(
    embedded: Embedded,
) -> None:
    embedded.stop()
    embedded.start()  # returns once /health answers 200
    with httpx.Client(base_url=embedded.url, timeout=10) as client:
        ready = client.get("/ready").json()
        assert ready["redis"] is True and ready["engines_warm"] is False  # warming
        job_id = job_for(client, 30517)
        assert (embedded.data_dir / "redis" / "appendonlydir").is_dir()
        # /health stays 200 all through the warm-up (LIVENESS_WORKER watches the worker)
        statuses = set()
        while not client.get("/ready").json()["engines_warm"]:
            statuses.add(client.get("/health").status_code)
            assert embedded.running()
            time.sleep(0.2)
        assert statuses <= {200}
        succeeded_with_its_number(client, job_id, 30517)
    log = embedded.log.read_text()
    assert f"redis up on 127.0.0.1:{embedded.redis_port}" in log
    for step in ("API /health up", "worker aio-embedded started", "engine warm"):
        assert step in log
    assert sorted(p.name for p in embedded.data_dir.iterdir()) == [
        "output",
        "redis",
        "temp",
        "tmp",
    ]


def test_a_sigkill_of_every_process_keeps_each_accepted_job(embedded: Embedded) -> None:
    embedded.ensure_running()
    numbers = [41001, 41002, 41003, 41004]
    with httpx.Client(base_url=embedded.url, timeout=10) as client:
        jobs = {job_for(client, n): n for n in numbers}
    embedded.kill_everything()  # Redis, API, worker: no graceful anything
    embedded.start()  # the same data folder: Redis reads its AOF back
    with httpx.Client(base_url=embedded.url, timeout=10) as client:
        assert [client.get(f"/jobs/{job_id}").status_code for job_id in jobs] == [200] * 4
        for job_id, number in jobs.items():
            succeeded_with_its_number(client, job_id, number)


def test_a_hung_worker_fails_health_and_ends_the_container(embedded: Embedded) -> None:
    embedded.ensure_running()
    assert embedded.proc is not None
    with httpx.Client(base_url=embedded.url, timeout=10) as client:
        wait_until(lambda: client.get("/ready").json()["engines_warm"], timeout=120)
        assert client.get("/health").status_code == 200
        under = processes_under(embedded.proc.pid)
        workers = {pid: cmd for pid, cmd in under.items() if "-m worker" in cmd}
        assert len(workers) == 2, workers  # the supervisor and its worker process
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)  # hung: alive, but its heartbeat stops
        wait_until(lambda: client.get("/health").status_code == 503, timeout=60)
        body = client.get("/health").json()
        assert body["error"]["code"] == "worker_unresponsive"
        assert "aio-embedded" in body["error"]["message"]
    assert embedded.proc.wait(timeout=60) == 75
    assert "unresponsive" in embedded.log.read_text()
    wait_until(lambda: not any(pid_alive(pid) for pid in workers), timeout=10)


# -- VL_SERVER_CMD: a VL server in the container -------------------------------------------------


def test_the_vl_server_starts_after_health_answers_and_before_the_worker(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    port, vl_port = free_port(), free_port()
    proc = start(
        tmp_path,
        port,
        VL_SERVER_CMD=f"python -m testkit.vl_server --port {vl_port} --start-delay 2",
        PADDLEOCR_VL_SERVER_URL=f"http://127.0.0.1:{vl_port}/v1",
    )
    log = tmp_path / "all-in-one.log"
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200, 30)
        # /health answers while the VL server is not up yet, and no worker runs before it is
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{vl_port}/v1/models")
        assert redis_client.get("ocrq:worker:aio") is None
        wait_until(lambda: "worker aio started" in log.read_text(), timeout=60)
        text = log.read_text()
        steps = ["API /health up", "starting the VL server", "VL server up", "worker aio started"]
        assert sorted(steps, key=text.index) == steps
        assert httpx.get(f"http://127.0.0.1:{vl_port}/v1/models").status_code == 200
        # the VL server dies: the container ends with it
        vl = [pid for pid, cmd in processes_under(proc.pid).items() if "testkit.vl_server" in cmd]
        assert len(vl) == 1
        os.kill(vl[0], signal.SIGKILL)
        assert proc.wait(timeout=60) == 128 + signal.SIGKILL
        assert "vl-server exited with status 137" in log.read_text()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        print(log.read_text()[-3000:])


def test_a_vl_server_that_never_answers_ends_the_start_with_a_clear_line(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    port, vl_port = free_port(), free_port()
    proc = start(
        tmp_path,
        port,
        VL_SERVER_CMD=f"python -m testkit.vl_server --port {vl_port} --start-delay 600",
        PADDLEOCR_VL_SERVER_URL=f"http://127.0.0.1:{vl_port}/v1",
        VL_SERVER_START_TIMEOUT="2",
    )
    try:
        assert proc.wait(timeout=60) == 1
        text = (tmp_path / "all-in-one.log").read_text()
        assert "did not answer GET" in text and "VL_SERVER_START_TIMEOUT=2" in text
        assert "worker aio started" not in text
        wait_until(lambda: not processes_matching(f"testkit.vl_server --port {vl_port}"), 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
