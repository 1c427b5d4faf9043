"""Which engine kind's queues a new job goes to, and refusing one that no live worker serves.

A job's `engine` option wins; without one, DEFAULT_ENGINE; without that, the one kind the live
workers announce in their heartbeats (their OCR_ENGINE; while none is live, e.g. the only one
restarts, the kinds this process saw last); with none or several, OCR_ENGINE.
A job for a kind no live worker serves is refused (503 engine_not_served) while other workers
are live: it would wait for nobody. With no live worker at all the job is queued, as before:
workers may be starting, or scaled to zero.
"""

from __future__ import annotations

import threading
import time

from redis import RedisError

from api.errors import EngineNotServed
from shared.errors import QueueUnavailable
from shared.jobs import WorkerRegistry
from shared.options import Engine, JobOptions
from shared.settings import Settings

# Heartbeats are read with SCAN: at most this often per API process, not on every submit.
LIVE_ENGINES_CACHE_SECONDS = 2.0
ENGINE_NOT_SERVED_RETRY_AFTER = 10


class EngineChoice:
    def __init__(self, settings: Settings, workers: WorkerRegistry) -> None:
        self.settings = settings
        self.workers = workers
        self._lock = threading.Lock()
        self._cached: tuple[float, frozenset[str]] | None = None
        self._last_seen: frozenset[str] = frozenset()  # the last non-empty live set

    def live_engines(self) -> frozenset[str]:
        """The engine kinds live workers serve (their primary engine), cached briefly."""
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > LIVE_ENGINES_CACHE_SECONDS:
                try:
                    beats = self.workers.live()
                except RedisError as exc:
                    raise QueueUnavailable(f"Redis is unreachable: {exc}") from exc
                self._cached = (now, frozenset(b.engine for b in beats))
                self._last_seen = self._cached[1] or self._last_seen
            return self._cached[1]

    def choose(self, options: JobOptions) -> Engine:
        """The job's engine kind (blocking: reads heartbeats); EngineNotServed if nobody
        among the live workers serves it."""
        live = self.live_engines()
        engine = options.engine or self._default(live)
        if live and engine.value not in live:
            raise EngineNotServed(
                f"no live worker serves engine {engine.value!r} (live workers serve: "
                f"{', '.join(sorted(live))}); send `engine` with one of those, or start a "
                "worker with that OCR_ENGINE",
                headers={"Retry-After": str(ENGINE_NOT_SERVED_RETRY_AFTER)},
            )
        return engine

    def _default(self, live: frozenset[str]) -> Engine:
        if self.settings.default_engine:
            return Engine(self.settings.default_engine)
        served = [e for e in Engine if e.value in (live or self._last_seen)]
        if len(served) == 1:
            return served[0]
        names = {e.value for e in Engine}
        return Engine(self.settings.ocr_engine if self.settings.ocr_engine in names else "rapidocr")
