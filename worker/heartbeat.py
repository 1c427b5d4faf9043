"""A daemon thread that keeps this worker's heartbeat key fresh in Redis."""

from __future__ import annotations

import contextlib
import logging
import threading

from redis import RedisError

from shared.jobs import WorkerBeat, WorkerRegistry

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, registry: WorkerRegistry, beat: WorkerBeat, ttl_seconds: int) -> None:
        self.registry = registry
        self.beat = beat
        self.ttl = ttl_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def publish(self) -> None:
        try:
            self.registry.beat(self.beat, self.ttl)
        except RedisError as exc:
            log.warning("heartbeat not published (Redis unreachable): %s", exc)

    def start(self) -> None:
        self.publish()
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            self.publish()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(RedisError):  # the key expires by itself
            self.registry.remove(self.beat.worker_id)

    def hand_over(self) -> None:
        """Stop, leaving a not-warm `rewarming` beat for the recycled process's successor, so
        /ready shows the worker re-warming rather than gone (the key expires by itself)."""
        self._stop.set()
        self.beat.warm, self.beat.rewarming = False, True
        self.publish()
