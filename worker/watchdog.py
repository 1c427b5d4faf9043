"""The running jobs' watchdog: renews their leases and enforces the job and page time limits.

Native OCR code cannot be interrupted from Python. When a page overruns PAGE_TIMEOUT_SECONDS
(or the job JOB_TIMEOUT_SECONDS), this thread fails the job with `timeout` and calls
`on_timeout`: a one-job worker ends its process there (the supervisor, `python -m worker`,
starts a fresh one, so the worker lives on); a worker holding many jobs for a batching engine
only stops that job (its thread sees `raise_if_overdue`). Deadlines are measured on `clock`:
a batching worker's clock stops while its engine is unavailable.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from redis import RedisError

from shared.jobs import JobStore

log = logging.getLogger(__name__)

EXIT_TIMEOUT = 75  # not final for the supervisor: it restarts the process


class JobTimedOut(Exception):
    """The job's own time limit passed between two pages."""


@dataclass
class _Watched:
    job_deadline: float  # on the watch's clock
    page_deadline: float
    renewed: float  # time.monotonic() of the last lease renewal
    overdue: str | None = None  # set once a limit passed: the job is failed already


def exit_after_timeout(job_id: str, reason: str) -> None:
    log.error("job=%s %s; restarting this worker process", job_id, reason)
    logging.shutdown()
    os._exit(EXIT_TIMEOUT)


class JobWatchdog:
    """One per worker process; watches every job this process runs."""

    def __init__(
        self,
        store: JobStore,
        holder: str,
        lease_seconds: int,
        job_timeout: float,
        page_timeout: float,
        on_timeout: Callable[[str, str], None],
        fail_job: Callable[[str, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.job_timeout = job_timeout
        self.page_timeout = page_timeout
        self.on_timeout = on_timeout
        self.fail_job = fail_job
        self.clock = clock
        self._jobs: dict[str, _Watched] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @contextmanager
    def watching(self, job_id: str) -> Iterator[None]:
        now = self.clock()
        with self._lock:
            self._jobs[job_id] = _Watched(
                now + self.job_timeout, now + self.page_timeout, time.monotonic()
            )
        try:
            yield
        finally:
            with self._lock:
                self._jobs.pop(job_id, None)

    def page_starting(self, job_id: str) -> None:
        """Called before each page: restarts the page clock, enforces the job limit."""
        with self._lock:
            watched = self._jobs.get(job_id)
            if watched is None:
                return
            now = self.clock()
            if watched.overdue is None and now > watched.job_deadline:
                watched.overdue = f"the job ran over JOB_TIMEOUT_SECONDS={self.job_timeout:g}"
            if watched.overdue is not None:
                raise JobTimedOut(watched.overdue)
            watched.page_deadline = now + self.page_timeout

    def raise_if_overdue(self, job_id: str) -> None:
        """JobTimedOut once the watchdog found the job over a limit (it failed the job)."""
        with self._lock:
            watched = self._jobs.get(job_id)
            reason = watched.overdue if watched else None
        if reason is not None:
            raise JobTimedOut(reason)

    def check(self) -> None:
        """One tick of the watchdog (the thread calls this about once a second)."""
        with self._lock:
            jobs = [(job_id, w) for job_id, w in self._jobs.items() if w.overdue is None]
        for job_id, watched in jobs:
            self._renew(job_id, watched)
            now = self.clock()
            if now <= watched.page_deadline and now <= watched.job_deadline:
                continue
            limit = "PAGE" if now > watched.page_deadline else "JOB"
            seconds = self.page_timeout if limit == "PAGE" else self.job_timeout
            reason = f"ran over {limit}_TIMEOUT_SECONDS={seconds:g}"
            with self._lock:
                if self._jobs.get(job_id) is not watched or watched.overdue is not None:
                    continue  # the job ended meanwhile
                watched.overdue = reason
            try:
                self.fail_job(job_id, reason)
            finally:
                self.on_timeout(job_id, reason)

    def _renew(self, job_id: str, watched: _Watched) -> None:
        now = time.monotonic()
        if now - watched.renewed < self.lease_seconds / 3:
            return
        try:
            self.store.renew(job_id, self.holder, self.lease_seconds)
            watched.renewed = now
        except RedisError as exc:
            log.warning("job=%s lease not renewed (Redis unreachable): %s", job_id, exc)

    def _loop(self) -> None:
        while not self._stop.wait(min(1.0, self.lease_seconds / 3)):
            try:
                self.check()
            except Exception:  # the watchdog must outlive any single error
                log.exception("job watchdog tick failed")
