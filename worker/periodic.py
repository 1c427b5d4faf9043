"""A daemon thread that runs one maintenance function every N seconds, surviving its errors."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from redis import RedisError

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, interval: float, func: Callable[[], object]) -> None:
        self.name = name
        self.interval = interval
        self.func = func
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def run_once(self) -> None:
        try:
            self.func()
        except RedisError as exc:
            log.warning("%s skipped: Redis unreachable (%s)", self.name, exc)
        except Exception:  # maintenance must not die of one bad pass
            log.exception("%s failed", self.name)

    def _loop(self) -> None:
        self.run_once()
        while not self._stop.wait(self.interval):
            self.run_once()
