"""The running jobs' watchdog: renews their leases and enforces the job and page time limits.

Native OCR code cannot be interrupted from Python. When a page overruns PAGE_TIMEOUT_SECONDS
(or the job JOB_TIMEOUT_SECONDS), this thread fails the job with `timeout` and calls
`on_timeout`: a one-job worker ends its process there (the supervisor, `python -m worker`,
starts a fresh one, so the worker lives on); a worker holding many jobs for a batching engine
only stops that job (its thread sees `raise_if_overdue`). Deadlines are measured on `clock`:
a batching worker's clock stops while its engine is unavailable.

A batching worker's job spends most of its time waiting on the page batcher, behind the pages
of other jobs: its page clock stops meanwhile (`blocked`), since the wait is no fault of its
page. The engine calls are watched instead: `hung_call` (the batcher's `overdue_call`) names a
call past its budget (PAGE_TIMEOUT_SECONDS per page the engine reads one after another); every
job with a page in it fails with `timeout` and `on_hung` ends the process. The job limit runs on
whatever the job waits for.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from redis import RedisError

from shared.jobs import JobStore
from shared.jobs.keys import parse_range_member
from shared.tracing import job_logs

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
    blocked: int = 0  # > 0 while the job waits on the page batcher: its page clock is stopped
    blocked_since: float = 0.0  # on the watch's clock
    traceparent: str | None = None  # the job's trace: this thread's lines about it name it


class Hung(Protocol):
    """An engine call past its budget (worker.batcher.HungCall)."""

    @property
    def jobs(self) -> Sequence[str]: ...

    @property
    def reason(self) -> str: ...


def exit_after_timeout(job_id: str, reason: str) -> None:
    log.error("job=%s %s; restarting this worker process", job_id, reason)
    logging.shutdown()
    os._exit(EXIT_TIMEOUT)


def exit_after_hung_call(hung: Hung) -> None:
    jobs = ",".join(hung.jobs) or "-"
    log.error("jobs=%s %s and does not return; restarting this worker process", jobs, hung.reason)
    logging.shutdown()
    os._exit(EXIT_TIMEOUT)


def lease_of(key: str) -> tuple[str, int | None]:
    """(job id, range) of a watched run: a job (`<id>`) or one of its page ranges (`<id>/<k>`)."""
    if "/" in key:
        return parse_range_member(key)
    return key, None


class JobWatchdog:
    """One per worker process; watches every job (or page range of a job) this process runs,
    each by its key: the job id, or `<job id>/<range>` (its lease is that range's)."""

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
        hung_call: Callable[[], Hung | None] | None = None,
        on_hung: Callable[[Hung], None] = exit_after_hung_call,
    ) -> None:
        self.store = store
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.job_timeout = job_timeout
        self.page_timeout = page_timeout
        self.on_timeout = on_timeout
        self.fail_job = fail_job
        self.clock = clock
        self.hung_call = hung_call
        self.on_hung = on_hung
        self._jobs: dict[str, _Watched] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @contextmanager
    def watching(self, job_id: str, job_seconds: float | None = None) -> Iterator[None]:
        """Watch a run (`job_id`: a job, or `<job id>/<range>`); `job_seconds`: what is left of
        the job's time limit (a range of a job that started earlier), else all of it."""
        traceparent = self._traceparent(job_id)
        now = self.clock()
        left = self.job_timeout if job_seconds is None else job_seconds
        with self._lock:
            self._jobs[job_id] = _Watched(
                now + left, now + self.page_timeout, time.monotonic(), traceparent=traceparent
            )
        try:
            yield
        finally:
            with self._lock:
                self._jobs.pop(job_id, None)

    def _traceparent(self, key: str) -> str | None:
        """The watched job's traceparent (one HGET as its run starts), so this thread's lines
        about the job carry its trace even when Redis is gone later."""
        try:
            return self.store.traceparent(lease_of(key)[0])
        except RedisError:
            return None

    @contextmanager
    def _about(self, key: str, watched: _Watched | None) -> Iterator[None]:
        """This thread's lines about a watched run: tagged with its job and trace."""
        with job_logs(lease_of(key)[0], watched.traceparent if watched else None):
            yield

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

    @contextmanager
    def blocked(self, job_id: str) -> Iterator[None]:
        """The job waits on the page batcher: its page clock stops until it is done waiting
        (the engine call reading its page is budgeted instead); the job clock runs on."""
        with self._lock:
            watched = self._jobs.get(job_id)
            if watched is not None:
                if watched.blocked == 0:
                    watched.blocked_since = self.clock()
                watched.blocked += 1
        try:
            yield
        finally:
            with self._lock:
                if watched is not None and watched.blocked > 0:
                    watched.blocked -= 1
                    if watched.blocked == 0:
                        watched.page_deadline += self.clock() - watched.blocked_since

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
            page_over = not watched.blocked and now > watched.page_deadline
            if not page_over and now <= watched.job_deadline:
                continue
            limit = "PAGE" if page_over else "JOB"
            seconds = self.page_timeout if limit == "PAGE" else self.job_timeout
            reason = f"ran over {limit}_TIMEOUT_SECONDS={seconds:g}"
            if self._mark_overdue(job_id, watched, reason):
                with self._about(job_id, watched):
                    try:
                        self.fail_job(job_id, reason)
                    finally:
                        self.on_timeout(job_id, reason)
        hung = self.hung_call() if self.hung_call is not None else None
        if hung is not None:
            self._end_hung_call(hung)

    def _mark_overdue(self, job_id: str, watched: _Watched | None, reason: str) -> bool:
        """True if this call marked the job overdue (it is watched and was not already)."""
        with self._lock:
            if watched is None or self._jobs.get(job_id) is not watched:
                return False  # the job ended meanwhile
            if watched.overdue is not None:
                return False
            watched.overdue = reason
            return True

    def _end_hung_call(self, hung: Hung) -> None:
        """Fail every job with a page in the hung call, then `on_hung` (ends the process)."""
        reason = f"its page was in {hung.reason} (PAGE_TIMEOUT_SECONDS={self.page_timeout:g})"
        try:
            for job_id in hung.jobs:
                with self._lock:
                    watched = self._jobs.get(job_id)
                if self._mark_overdue(job_id, watched, reason):
                    with self._about(job_id, watched):
                        try:
                            self.fail_job(job_id, reason)
                        except Exception:  # the other jobs and the restart still follow
                            log.exception("job=%s could not be failed", job_id)
        finally:
            self.on_hung(hung)

    def _renew(self, job_id: str, watched: _Watched) -> None:
        now = time.monotonic()
        if now - watched.renewed < self.lease_seconds / 3:
            return
        try:
            self.store.renew(*self._lease(job_id))
            watched.renewed = now
        except RedisError as exc:
            with self._about(job_id, watched):
                log.warning("job=%s lease not renewed (Redis unreachable): %s", job_id, exc)

    def _lease(self, key: str) -> tuple[str, str, int, int | None]:
        job_id, part = lease_of(key)
        return job_id, self.holder, self.lease_seconds, part

    def _loop(self) -> None:
        while not self._stop.wait(min(1.0, self.lease_seconds / 3)):
            try:
                self.check()
            except Exception:  # the watchdog must outlive any single error
                log.exception("job watchdog tick failed")
