"""Start the real API and worker processes against the real Redis, for integration tests and
benchmarks; a Redis of its own for the tests that kill it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
# How long a started worker may take to warm its engine (seconds). A loaded machine can need
# more: past it the stack is stopped, and a worker SIGTERMed while still starting (no Celery
# handler yet) exits 241, its supervisor passing on the child's -15.
WARM_TIMEOUT = float(os.environ.get("OCRQ_TEST_WARM_SECONDS", "90"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """One API process and any number of worker processes sharing folders and a Redis db."""

    base: Path
    redis_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    root: Path = ROOT  # the checkout whose code runs (a bench may start an older one)
    python: str = sys.executable  # the interpreter (a bench may use another venv's)
    api: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    senders: list[subprocess.Popen] = field(default_factory=list)  # python -m worker.webhooks

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "TEMP_DIR": str(self.base / "temp"),
            "OUTPUT_DIR": str(self.base / "output"),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "WORKER_HEARTBEAT_TTL": "3",
            # the processes' own temp dir, so a test can tell that nothing spools to /tmp
            "TMPDIR": str(self.base / "tmp"),
            **self.extra_env,
        }

    def _spawn(
        self, module: str, log_name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        (self.base / "tmp").mkdir(exist_ok=True)
        log = open(self.base / log_name, "ab")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen(
            [self.python, "-m", module, *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start_api(self) -> None:
        self.api = self._spawn("api", "api.log")
        self.wait_for(lambda: httpx.get(f"{self.url}/health", timeout=1).status_code == 200)

    def start_worker(
        self, wait_warm: bool = True, name: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """A worker called `name`; `env` overrides the stack's (e.g. folders of its own)."""
        name = name or f"test-worker-{len(self.workers)}"
        proc = self._spawn("worker", f"{name}.log", "--name", name, env=env)
        self.workers.append(proc)
        if wait_warm:
            self.wait_for(lambda: self.worker_warm(name), timeout=WARM_TIMEOUT)
        return proc

    def start_webhooks(self, **env: str) -> subprocess.Popen:
        """A standalone webhook dispatcher and sender (`python -m worker.webhooks`)."""
        proc = self._spawn("worker.webhooks", "webhooks.log", env=env)
        self.senders.append(proc)
        return proc

    def stop_worker(self, proc: subprocess.Popen, timeout: float = 30) -> None:
        """SIGTERM: Celery's warm shutdown finishes the job in hand, the rest stays queued."""
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
        self.workers.remove(proc)

    def worker_warm(self, name: str) -> bool:
        body = httpx.get(f"{self.url}/ready", timeout=2).json()
        return any(w["worker_id"] == name and w["warm"] for w in body["worker_details"])

    def wait_for(self, check, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (httpx.HTTPError, OSError) as exc:
                last = exc
            time.sleep(0.1)
        raise TimeoutError(f"not ready after {timeout} s (last error: {last}); logs in {self.base}")

    @contextmanager
    def serving(self) -> Iterator[Stack]:
        """The API and one warm worker for the block; their logs printed if anything fails."""
        try:
            self.start_api()
            self.start_worker()
            yield self
        except BaseException:
            print(self.logs())
            raise
        finally:
            self.stop()

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text()[-4000:]}" for p in self.base.glob("*.log"))

    def stop(self) -> None:
        for proc in [*self.senders, *self.workers, self.api]:
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.senders, *self.workers, self.api]:
            if proc:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def wait_terminal(api: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    """Poll GET /jobs/{id} until the job succeeded, failed or was canceled; its last status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"/jobs/{job_id}").json()
        if body["status"] in ("succeeded", "failed", "canceled"):
            return body
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} not finished after {timeout} s: {body}")


def pid_alive(pid: int) -> bool:
    """True while process `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class LocalRedis:
    """A redis-server daemonized by scripts/ensure-redis.sh, its AOF under data_dir."""

    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        env = {**os.environ, "REDIS_PORT": str(self.port), "REDIS_DATA_DIR": str(self.data_dir)}
        subprocess.run([str(ROOT / "scripts" / "ensure-redis.sh")], env=env, check=True, timeout=60)

    def pid(self) -> int:
        return int(redis.Redis(port=self.port).info("server")["process_id"])

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        pid = self.pid()
        os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)
        if pid_alive(pid):
            raise TimeoutError(f"redis-server {pid} still running 10 s after signal {sig}")
