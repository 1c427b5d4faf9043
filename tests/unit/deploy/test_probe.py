"""`python -m worker.probe` against the real Redis, with heartbeats published the worker's way."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from shared.jobs import WorkerBeat, WorkerRegistry, default_worker_id
from shared.settings import Settings
from tests.conftest import UNIT_REDIS_URL
from worker.boot import boot_and_consume
from worker.probe import HEALTHY, REDIS_UNREACHABLE, UNHEALTHY, check_worker

ROOT = Path(__file__).resolve().parents[3]


def publish(client: redis.Redis, worker_id: str, *, warm: bool, ttl: int = 30) -> None:
    beat = WorkerBeat(
        worker_id=worker_id,
        engine="rapidocr",
        device="cpu",
        warm=warm,
        pid=os.getpid(),
        started_at=datetime.now(UTC).isoformat(),
        warmup_seconds=1.5 if warm else None,
    )
    WorkerRegistry(client).beat(beat, ttl)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def run_probe(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.probe", *args],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_warm_worker_with_a_fresh_heartbeat_is_healthy(redis_client: redis.Redis) -> None:
    publish(redis_client, "w1", warm=True)
    result = check_worker(WorkerRegistry(redis_client), "w1")
    assert result.exit_code == HEALTHY
    assert "warm" in result.message and "rapidocr" in result.message


def test_warm_worker_whose_vl_server_is_down_stays_healthy_and_says_so(
    redis_client: redis.Redis,
) -> None:
    beat = WorkerBeat("w1", "paddleocr-vl", "server:http://vl:8118/v1", True, 1, "now")
    beat.engine_available, beat.engine_error = False, "http://vl:8118/v1 does not answer"
    WorkerRegistry(redis_client).beat(beat, ttl_seconds=30)
    result = check_worker(WorkerRegistry(redis_client), "w1")
    assert result.exit_code == HEALTHY  # a restart would not bring the server back
    assert "unavailable" in result.message and "does not answer" in result.message


def test_worker_still_warming_up_is_not_healthy(redis_client: redis.Redis) -> None:
    publish(redis_client, "w1", warm=False)
    result = check_worker(WorkerRegistry(redis_client), "w1")
    assert result.exit_code == UNHEALTHY
    assert "not warm yet" in result.message


def test_missing_heartbeat_is_not_healthy(redis_client: redis.Redis) -> None:
    publish(redis_client, "someone-else", warm=True)
    result = check_worker(WorkerRegistry(redis_client), "w1")
    assert result.exit_code == UNHEALTHY
    assert "no heartbeat for worker 'w1'" in result.message


def test_expired_heartbeat_is_not_healthy(redis_client: redis.Redis) -> None:
    publish(redis_client, "w1", warm=True)
    redis_client.pexpire("ocrq:worker:w1", 1)  # the worker stopped beating
    time.sleep(0.05)
    assert check_worker(WorkerRegistry(redis_client), "w1").exit_code == UNHEALTHY


def test_unreachable_redis_fails_unless_allowed() -> None:
    from shared.jobs import connect_redis

    registry = WorkerRegistry(connect_redis(closed_port_url()))
    down = check_worker(registry, "w1")
    assert down.exit_code == REDIS_UNREACHABLE and "Redis unreachable" in down.message
    allowed = check_worker(registry, "w1", allow_redis_down=True)
    assert allowed.exit_code == HEALTHY and "Redis unreachable" in allowed.message


def test_cli_exit_codes_and_messages(redis_client: redis.Redis) -> None:
    publish(redis_client, "cli-warm", warm=True)
    publish(redis_client, "cli-cold", warm=False)
    ok = run_probe(UNIT_REDIS_URL, "--worker-id", "cli-warm")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: worker 'cli-warm' warm")
    cold = run_probe(UNIT_REDIS_URL, "--worker-id", "cli-cold")
    assert cold.returncode == 1 and "not warm yet" in cold.stderr
    missing = run_probe(UNIT_REDIS_URL, "--worker-id", "nobody")
    assert missing.returncode == 1 and "no heartbeat for worker 'nobody'" in missing.stderr


def test_cli_defaults_to_the_worker_id_a_worker_takes_by_default(
    redis_client: redis.Redis,
) -> None:
    """In a pod the probe and the worker share the host name: no id needs configuring."""
    assert default_worker_id() == socket.gethostname()
    publish(redis_client, default_worker_id(), warm=True)
    result = run_probe(UNIT_REDIS_URL)
    assert result.returncode == 0, result.stderr


def test_cli_with_redis_down() -> None:
    url = closed_port_url()
    down = run_probe(url, "--worker-id", "w1")
    assert down.returncode == 3 and "Redis unreachable" in down.stderr
    assert run_probe(url, "--worker-id", "w1", "--allow-redis-down").returncode == 0


def test_cli_bad_configuration_exits_2() -> None:
    result = run_probe("http://not-redis")
    assert result.returncode == 2 and "REDIS_URL" in result.stderr


def test_a_restarted_worker_drops_its_old_warm_heartbeat_before_loading(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """Else the startup probe would pass on the dead process's beat while the engine loads."""
    publish(redis_client, "restarted", warm=True)
    broken = settings.model_copy(update={"ocr_engine": "no-such-engine"})
    assert boot_and_consume(broken, "restarted") == 3  # stops at build_engine
    assert WorkerRegistry(redis_client).get("restarted") is None


@pytest.mark.parametrize("warm", [True, False])
def test_registry_get_round_trips_a_beat(redis_client: redis.Redis, warm: bool) -> None:
    publish(redis_client, "w1", warm=warm)
    beat = WorkerRegistry(redis_client).get("w1")
    assert beat is not None and beat.worker_id == "w1" and beat.warm is warm
    assert WorkerRegistry(redis_client).get("w2") is None
