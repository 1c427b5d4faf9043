"""/ready and /metrics: whether Redis answers, which workers are live, the Prometheus registry."""

from __future__ import annotations

from redis import RedisError

from api.metrics import Metrics
from shared.api_keys import KeyRing
from shared.errors import QueueUnavailable
from shared.jobs import JobStore, WorkerBeat, WorkerRegistry


class ServiceHealth:
    def __init__(self, store: JobStore, workers: WorkerRegistry, ring: KeyRing) -> None:
        self.store = store
        self.workers = workers
        self.metrics = Metrics(store, workers, ring)

    def queue_depths(self) -> dict[str, int]:
        """Jobs waiting per queue; QueueUnavailable when Redis does not answer."""
        return self.store.queue_depths()

    def live_workers(self) -> list[WorkerBeat]:
        """The workers with a fresh heartbeat; QueueUnavailable when Redis does not answer."""
        try:
            self.store.ping()
            return self.workers.live()
        except RedisError as exc:
            raise QueueUnavailable(f"Redis is unreachable: {exc}") from exc
