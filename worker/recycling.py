"""Recycle a worker process between jobs: after WORKER_MAX_JOBS jobs or above WORKER_MAX_RSS_MB.

OCR libraries keep memory they once needed (arenas, caches, fragmentation), so a worker that
runs for weeks grows. Once a limit is passed after a job, the process stops taking jobs the way
SIGTERM does (Celery's warm shutdown: every job it holds finishes and is acked first, none is
taken after) but exits with EXIT_RECYCLE, which the supervisor (`python -m worker`) answers by
starting a fresh process at once, without the crash backoff.
"""

from __future__ import annotations

import logging
import resource
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from celery.worker import state as celery_state

from shared.settings import Settings
from worker.exit_codes import EXIT_RECYCLE

log = logging.getLogger(__name__)

__all__ = ["EXIT_RECYCLE", "RecyclePolicy", "Recycler", "current_rss_mb", "stop_taking_jobs"]
_PAGE_BYTES = resource.getpagesize()


def current_rss_mb() -> float | None:
    """This process's resident memory now (Linux /proc); None where that cannot be read."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * _PAGE_BYTES / (1024 * 1024)


def stop_taking_jobs(exit_code: int = EXIT_RECYCLE) -> None:
    """Ask the Celery worker of this process for a warm shutdown ending in `exit_code`.

    The flag SIGTERM's handler sets (celery.apps.worker.install_worker_term_handler): the
    consumer loop checks it before each poll for a new message, raises WorkerShutdown(code),
    and the warm shutdown lets the pool finish and ack what it holds.
    """
    celery_state.should_stop = exit_code


@dataclass(frozen=True)
class RecyclePolicy:
    """The limits; 0 turns one off."""

    max_jobs: int = 0
    max_rss_mb: float = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> RecyclePolicy:
        return cls(settings.worker_max_jobs, settings.worker_max_rss_mb)

    @property
    def enabled(self) -> bool:
        return self.max_jobs > 0 or self.max_rss_mb > 0

    def reason(self, jobs_done: int, rss_mb: float | None) -> str | None:
        """Why a process that ended `jobs_done` jobs and holds `rss_mb` must go; None: it stays."""
        if self.max_jobs and jobs_done >= self.max_jobs:
            return f"{jobs_done} jobs done (WORKER_MAX_JOBS={self.max_jobs})"
        if self.max_rss_mb and rss_mb is not None and rss_mb > self.max_rss_mb:
            return f"RSS {rss_mb:.0f} MB above WORKER_MAX_RSS_MB={self.max_rss_mb:g}"
        return None


class Recycler:
    """Counts the jobs this process ends and stops it taking more once a limit is passed.

    `job_done()` is called by the task after each job, from the pool's thread (one thread per
    held job for a batching engine), before the job's message is acked.
    """

    def __init__(
        self,
        policy: RecyclePolicy,
        rss_mb: Callable[[], float | None] = current_rss_mb,
        stop: Callable[[], None] = stop_taking_jobs,
    ) -> None:
        self.policy = policy
        self._rss_mb = rss_mb
        self._stop = stop
        self._lock = threading.Lock()
        self.jobs_done = 0
        self.reason: str | None = None  # set once: the process is on its way out

    def job_done(self) -> None:
        if not self.policy.enabled:
            return
        with self._lock:
            self.jobs_done += 1
            if self.reason is not None:
                return  # already stopping: a held job finishing
            reason = self.policy.reason(self.jobs_done, self._rss_mb())
            if reason is None:
                return
            self.reason = reason
        log.info(
            "recycling this worker process: %s; it takes no new job, finishes the ones it "
            "holds, then exits %d for a fresh one",
            reason,
            EXIT_RECYCLE,
        )
        self._stop()
