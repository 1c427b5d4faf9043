"""Liveness that sees the worker: `GET /health` of a container that runs the API and a worker.

A platform that runs one container with one probe path (deploy/all-in-one.sh) probes the API's
`/health`, which alone would stay 200 in front of a hung worker. With LIVENESS_WORKER naming
the worker, a thread here reads that worker's heartbeat in Redis about once a second and keeps
a verdict that `/health` reads (it never waits on Redis itself). The worker is declared
unresponsive, and `/health` answers 503 `worker_unresponsive`, when its heartbeat key (it
expires WORKER_HEARTBEAT_TTL after the last beat) has been missing for LIVENESS_STALE_SECONDS:

- never while the engine loads: the worker beats from its start, before it builds its engine
  (a not-warm beat), and a beat counts whatever it says;
- before the first beat of a worker started after this API, the start grace
  (LIVENESS_START_GRACE_SECONDS, from the API's start) applies instead: a beat left in Redis
  by the previous container (its AOF) does not count as this worker's first;
- Redis unreachable says nothing about the worker, and a restart would not bring Redis back
  (the reasoning of `python -m worker.probe --allow-redis-down`): alive, and the absence is
  counted again from Redis's return.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from redis import RedisError

from shared.jobs import WorkerBeat, WorkerRegistry

log = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 1.0
# A beat whose process started this long before the API still counts as this container's (the
# clocks are one; the script starts the worker after the API answers).
STARTED_SLACK_SECONDS = 1.0


@dataclass(frozen=True)
class Verdict:
    alive: bool
    message: str


class WorkerWatch:
    """The liveness verdict on one worker, from its heartbeats; `observe` is the rule (tested
    with a fake clock), `check` one read of Redis, `start` the thread that checks each second."""

    def __init__(
        self,
        registry: WorkerRegistry,
        worker_id: str,
        stale_seconds: float,
        start_grace_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        interval: float = CHECK_INTERVAL_SECONDS,
    ) -> None:
        self.registry = registry
        self.worker_id = worker_id
        self.stale_seconds = stale_seconds
        self.start_grace_seconds = start_grace_seconds
        self.interval = interval
        self._clock = clock
        self._started = clock()
        self._started_wall = wall_clock()
        self._last_seen = self._started  # a missing beat is counted from here
        self._own_seen = False  # a beat of a worker process started after this API
        self._verdict = Verdict(True, f"ok: watching worker {worker_id!r}, no heartbeat yet")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def verdict(self) -> Verdict:
        return self._verdict

    def observe(self, beat: WorkerBeat | None, *, redis_down: bool = False) -> Verdict:
        """Take one reading (the worker's beat, None when its key is gone, or Redis down) and
        return the verdict it leads to."""
        now = self._clock()
        if redis_down:
            self._last_seen = now
            verdict = Verdict(True, "ok: Redis unreachable; the worker is not judged meanwhile")
        elif beat is not None:
            self._last_seen = now
            self._own_seen = self._own_seen or self._started_after_api(beat)
            state = "warm" if beat.warm else "loading its engine"
            verdict = Verdict(True, f"ok: worker {self.worker_id!r} beats ({state})")
        else:
            verdict = self._judge_absence(now)
        self._set(verdict)
        return verdict

    def _judge_absence(self, now: float) -> Verdict:
        missing = now - self._last_seen
        in_grace = not self._own_seen and now - self._started <= self.start_grace_seconds
        if in_grace:
            return Verdict(
                True, f"ok: worker {self.worker_id!r} starting (no heartbeat yet, start grace)"
            )
        if missing <= self.stale_seconds:
            return Verdict(
                True, f"ok: worker {self.worker_id!r} heartbeat missing for {missing:.0f} s"
            )
        if not self._own_seen:
            return Verdict(
                False,
                f"worker {self.worker_id!r} published no heartbeat in the "
                f"{self.start_grace_seconds:g} s after start (LIVENESS_START_GRACE_SECONDS): "
                "it never started or hangs; the container should be restarted",
            )
        return Verdict(
            False,
            f"worker {self.worker_id!r}: heartbeat missing for {missing:.1f} s "
            f"(LIVENESS_STALE_SECONDS={self.stale_seconds:g}; it expires WORKER_HEARTBEAT_TTL "
            "after the last beat): it hangs or is gone; the container should be restarted",
        )

    def _started_after_api(self, beat: WorkerBeat) -> bool:
        try:
            started = datetime.fromisoformat(beat.started_at).timestamp()
        except ValueError:
            return False
        return started >= self._started_wall - STARTED_SLACK_SECONDS

    def _set(self, verdict: Verdict) -> None:
        if verdict.alive != self._verdict.alive:
            if verdict.alive:
                log.warning("liveness: worker %r beats again: %s", self.worker_id, verdict.message)
            else:
                log.error("liveness: /health answers 503 worker_unresponsive: %s", verdict.message)
        self._verdict = verdict

    def check(self) -> Verdict:
        """Read the worker's heartbeat once and judge."""
        try:
            beat = self.registry.get(self.worker_id)
        except RedisError:
            return self.observe(None, redis_down=True)
        return self.observe(beat)

    def start(self) -> None:
        log.info(
            "liveness: /health watches worker %r (missing heartbeat > %g s: 503; start grace %g s)",
            self.worker_id,
            self.stale_seconds,
            self.start_grace_seconds,
        )
        self._thread = threading.Thread(target=self._loop, name="worker-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the watch must outlive any single failure
                log.exception("liveness check failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
