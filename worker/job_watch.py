"""The running job's watchdog: renews its lease and enforces the job and page time limits.

Native OCR code cannot be interrupted from Python. When a page overruns PAGE_TIMEOUT_SECONDS
(or the job JOB_TIMEOUT_SECONDS), this thread fails the job with `timeout` and ends the process;
the supervisor (`python -m worker`) starts a fresh one, so the worker lives on.
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

from shared.job_leases import JobLeases

log = logging.getLogger(__name__)

EXIT_TIMEOUT = 75  # not final for the supervisor: it restarts the process


class JobTimedOut(Exception):
    """The job's own time limit passed between two pages."""


@dataclass
class _Current:
    job_id: str
    job_deadline: float
    page_deadline: float


def exit_after_timeout(job_id: str, reason: str) -> None:
    log.error("job=%s %s; restarting this worker process", job_id, reason)
    logging.shutdown()
    os._exit(EXIT_TIMEOUT)


class JobWatch:
    """One per worker process; watches the job this process runs, if any."""

    def __init__(
        self,
        leases: JobLeases,
        holder: str,
        lease_seconds: int,
        job_timeout: float,
        page_timeout: float,
        on_timeout: Callable[[str, str], None],
        fail_job: Callable[[str, str], None],
    ) -> None:
        self.leases = leases
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.job_timeout = job_timeout
        self.page_timeout = page_timeout
        self.on_timeout = on_timeout
        self.fail_job = fail_job
        self._current: _Current | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-watch", daemon=True)
        self._last_renew = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @contextmanager
    def watching(self, job_id: str) -> Iterator[None]:
        now = time.monotonic()
        with self._lock:
            self._current = _Current(job_id, now + self.job_timeout, now + self.page_timeout)
        try:
            yield
        finally:
            with self._lock:
                self._current = None

    def page_starting(self) -> None:
        """Called before each page: restarts the page clock, enforces the job limit."""
        with self._lock:
            current = self._current
            if current is None:
                return
            now = time.monotonic()
            if now > current.job_deadline:
                raise JobTimedOut(f"the job ran over JOB_TIMEOUT_SECONDS={self.job_timeout:g}")
            current.page_deadline = now + self.page_timeout

    def check(self) -> None:
        """One tick of the watchdog (the thread calls this about once a second)."""
        with self._lock:
            current = self._current
        if current is None:
            return
        now = time.monotonic()
        if now - self._last_renew >= self.lease_seconds / 3:
            try:
                self.leases.renew(current.job_id, self.holder, self.lease_seconds)
                self._last_renew = now
            except RedisError as exc:
                log.warning("job=%s lease not renewed (Redis unreachable): %s", current.job_id, exc)
        if now > current.page_deadline or now > current.job_deadline:
            limit = "PAGE" if now > current.page_deadline else "JOB"
            seconds = self.page_timeout if limit == "PAGE" else self.job_timeout
            reason = f"ran over {limit}_TIMEOUT_SECONDS={seconds:g}"
            with self._lock:
                if self._current is not current:
                    return  # the job ended meanwhile
                self._current = None
            try:
                self.fail_job(current.job_id, reason)
            finally:
                self.on_timeout(current.job_id, reason)

    def _loop(self) -> None:
        while not self._stop.wait(min(1.0, self.lease_seconds / 3)):
            try:
                self.check()
            except Exception:  # the watchdog must outlive any single error
                log.exception("job watchdog tick failed")
