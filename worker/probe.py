"""`python -m worker.probe`: exit 0 when this worker's engine is warm and its heartbeat fresh.

The exec probe of a worker container (Kubernetes startupProbe and livenessProbe, Docker
HEALTHCHECK). It reads the heartbeat the worker publishes in Redis instead of asking the worker
process, which runs one job at a time and may be busy for minutes. It imports no engine, so it
answers in well under a second even on a GPU image.

Exit codes: 0 healthy; 1 no fresh heartbeat or engine not warm; 2 bad configuration;
3 Redis unreachable (0 with --allow-redis-down). A worker whose engine backend (a VL server) does
not answer is healthy too, and says so: it holds its jobs until the server is back, and a
restart would not bring the server back. So is a worker re-warming after a planned recycle
(WORKER_MAX_JOBS / WORKER_MAX_RSS_MB): a liveness probe must not kill it for its warm-up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from shared.jobs import WorkerBeat, WorkerRegistry, connect_settings_redis, default_worker_id
from shared.settings import load_settings

HEALTHY = 0
UNHEALTHY = 1
REDIS_UNREACHABLE = 3
REWARM_MIN_SECONDS = 60.0


@dataclass(frozen=True)
class ProbeResult:
    exit_code: int
    message: str

    @property
    def ok(self) -> bool:
        return self.exit_code == HEALTHY


def _rewarming_for(beat: WorkerBeat, now: datetime | None) -> float:
    return ((now or datetime.now(UTC)) - datetime.fromisoformat(beat.started_at)).total_seconds()


def _rewarm_allowance(beat: WorkerBeat) -> float:
    """How long a recycled worker may re-warm and stay healthy: 3x its last warm-up, >= 60 s."""
    return max(REWARM_MIN_SECONDS, 3 * (beat.warmup_seconds or 0))


def check_worker(
    registry: WorkerRegistry,
    worker_id: str,
    *,
    allow_redis_down: bool = False,
    now: datetime | None = None,
) -> ProbeResult:
    """Judge one worker by its heartbeat: present (so fresh, the key expires) and warm."""
    try:
        beat = registry.get(worker_id)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        if allow_redis_down:
            # Restarting a worker cannot bring Redis back, and would throw away a warm engine
            # that takes minutes to load; the heartbeat thread republishes once Redis returns.
            return ProbeResult(HEALTHY, f"ok: Redis unreachable ({exc}); not failing the worker")
        return ProbeResult(REDIS_UNREACHABLE, f"unhealthy: Redis unreachable: {exc}")
    if beat is None:
        return ProbeResult(
            UNHEALTHY,
            f"unhealthy: no heartbeat for worker {worker_id!r} (expired or never published): "
            "the worker is not running, is still building its engine, or cannot reach Redis",
        )
    if not beat.warm and beat.rewarming and _rewarming_for(beat, now) <= _rewarm_allowance(beat):
        # recycled on purpose (WORKER_MAX_JOBS / WORKER_MAX_RSS_MB): a restart now would only
        # start the same warm-up over; one that takes far longer than the last fails below
        return ProbeResult(
            HEALTHY,
            f"ok: worker {worker_id!r} re-warming engine {beat.engine} after a planned recycle "
            f"(process started {beat.started_at}, last warm-up {beat.warmup_seconds} s)",
        )
    if not beat.warm:
        return ProbeResult(
            UNHEALTHY,
            f"unhealthy: worker {worker_id!r} is alive but engine {beat.engine} on "
            f"{beat.device} is not warm yet (process started {beat.started_at})",
        )
    if not beat.engine_available:
        return ProbeResult(
            HEALTHY,
            f"ok: worker {worker_id!r} warm, but engine {beat.engine} on {beat.device} is "
            f"unavailable (jobs held until it answers): {beat.engine_error}",
        )
    return ProbeResult(
        HEALTHY,
        f"ok: worker {worker_id!r} warm: engine {beat.engine} on {beat.device}, "
        f"warm-up {beat.warmup_seconds} s",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.probe",
        description="Exit 0 when the worker's engine is warm and its heartbeat in Redis is "
        "fresh; non-zero with the reason otherwise. Reads REDIS_URL.",
    )
    parser.add_argument(
        "--worker-id",
        default=None,
        help="the worker's --name (default: this host's name, the worker's own default)",
    )
    parser.add_argument(
        "--allow-redis-down",
        action="store_true",
        help="exit 0 when Redis cannot be reached (for liveness: a restart would not help)",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    client = connect_settings_redis(settings)
    try:
        result = check_worker(
            WorkerRegistry(client),
            args.worker_id or default_worker_id(),
            allow_redis_down=args.allow_redis_down,
        )
    finally:
        client.close()
    print(result.message, file=sys.stdout if result.ok else sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
