"""A real Sentinel (Debian's redis-server in sentinel mode) in front of a master and a replica:
the job store and the broker find the master through it, and find the new one after a
failover. Processes of this test's own, on free ports, stopped at the end."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from shared.jobs import TASK_RUN, JobRecord, JobStatus, JobStore, connect_settings_redis, utcnow
from shared.jobs.queues import queue_name
from shared.queue import make_celery
from shared.settings import Settings
from testkit.stack import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]
MASTER = "ocrq-test"


def _until(check: Callable[[], object], timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"not true after {timeout} s: {check}")


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[dict[str, int]]:
    """A master, its replica and one Sentinel watching them (quorum 1)."""
    ports = {"master": free_port(), "replica": free_port(), "sentinel": free_port()}
    procs: list[subprocess.Popen] = []
    plain = ["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
    try:
        for role in ("master", "replica"):
            folder = tmp_path / role
            folder.mkdir()
            args = ["redis-server", "--port", str(ports[role]), "--dir", str(folder), *plain]
            if role == "replica":
                args += ["--replicaof", "127.0.0.1", str(ports["master"])]
            procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
        conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its config: a file of its own
        conf.write_text(
            f"port {ports['sentinel']}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {ports['master']} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
        )
        procs.append(
            subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL)
        )
        replica = redis.Redis(port=ports["replica"])
        _until(lambda: replica.info("replication")["master_link_status"] == "up")
        sentinel = redis.Redis(port=ports["sentinel"])
        _until(lambda: sentinel.sentinel_slaves(MASTER))  # it has found the replica
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_store_and_broker_follow_the_master_through_a_failover(
    sentinel_group: dict[str, int],
) -> None:
    settings = Settings(
        redis_url=f"sentinel://127.0.0.1:{sentinel_group['sentinel']}/0",
        redis_sentinel_master=MASTER,
    )
    store = JobStore(connect_settings_redis(settings), 600)
    celery = make_celery(settings)
    queue = queue_name("rapidocr", "high")

    def submit() -> str:
        job_id = uuid.uuid4().hex
        store.create(JobRecord(job_id=job_id, status=JobStatus.queued, created_at=utcnow()))
        celery.send_task(TASK_RUN, args=[job_id], queue=queue, retry=False)
        return job_id

    first = submit()
    old_master = redis.Redis(port=sentinel_group["master"], decode_responses=True)
    assert old_master.hget(f"ocrq:job:{first}", "status") == "queued"
    assert old_master.llen(queue) == 1

    sentinel = redis.Redis(port=sentinel_group["sentinel"], decode_responses=True)
    sentinel.execute_command("SENTINEL", "FAILOVER", MASTER)
    new_port = sentinel_group["replica"]
    _until(lambda: int(sentinel.sentinel_get_master_addr_by_name(MASTER)[1]) == new_port)
    new_master = redis.Redis(port=sentinel_group["replica"], decode_responses=True)
    _until(lambda: new_master.info("replication")["role"] == "master")
    # until the old master is told to follow the new one it still takes writes: the lost-writes
    # window of docs/redis.md (a dead master takes none)
    _until(lambda: old_master.info("replication")["role"] == "slave")

    # the same clients, not rebuilt: a write to the demoted master is refused (READONLY) and
    # the connection is dropped; the next attempt asks the Sentinel again
    second = _until(lambda: _attempt(submit), timeout=30)

    assert store.get(first).status is JobStatus.queued  # replicated before the failover
    assert new_master.hget(f"ocrq:job:{second}", "status") == "queued"
    assert new_master.llen(queue) == 2
    assert store.queue_depths([queue]) == {queue: 2}


def _attempt(submit: Callable[[], str]) -> str | None:
    try:
        return submit()
    except redis.RedisError:
        return None
    except Exception as exc:  # kombu wraps the broker's errors in its own
        if "READONLY" in str(exc) or "Connection" in type(exc).__name__:
            return None
        raise
