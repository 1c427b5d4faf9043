"""Worker heartbeats in Redis: each worker refreshes a short-TTL key; `/ready` reads them."""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass, field

import redis

from shared.jobs import keys


def default_worker_id() -> str:
    """The host name: unique per container or pod, so a probe in the same one can find it."""
    return socket.gethostname()


@dataclass
class WorkerBeat:
    worker_id: str
    engine: str
    device: str
    warm: bool
    pid: int
    started_at: str
    warmup_seconds: float | None = None
    versions: dict[str, str] = field(default_factory=dict)
    engines: list[str] = field(default_factory=list)
    # False while the engine's backend (a VL server) does not answer: jobs are held, not failed
    engine_available: bool = True
    engine_error: str | None = None
    # True from a recycled process's exit (WORKER_MAX_JOBS/WORKER_MAX_RSS_MB) until its
    # successor is warm: the worker is re-warming on purpose; warmup_seconds is then the last one
    rewarming: bool = False


class WorkerRegistry:
    """Owns the `ocrq:worker:*` keys."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def beat(self, beat: WorkerBeat, ttl_seconds: int) -> None:
        self._redis.set(keys.worker(beat.worker_id), json.dumps(asdict(beat)), ex=ttl_seconds)

    def get(self, worker_id: str) -> WorkerBeat | None:
        """The worker's last beat, or None once its key has expired (the worker is gone)."""
        raw = self._redis.get(keys.worker(worker_id))
        return WorkerBeat(**json.loads(raw)) if raw else None

    def remove(self, worker_id: str) -> None:
        self._redis.delete(keys.worker(worker_id))

    def live(self) -> list[WorkerBeat]:
        found = sorted(self._redis.scan_iter(match=keys.WORKER_PREFIX + "*", count=100))
        if not found:
            return []
        return [WorkerBeat(**json.loads(raw)) for raw in self._redis.mget(found) if raw]
