"""The pages of every job a worker holds, sent to a BatchingEngine in batches.

Job threads submit page images and wait on their own tickets; `in_flight` dispatcher threads
each call `recognize_batch` when a batch is full, when its oldest page has waited
`fill_seconds`, or as soon as no held job is still preparing a page (waiting longer could not
grow the batch). With more than one dispatcher (an engine behind a server: one pipeline per
dispatcher) the next batch is sent while one waits on the server, so the server never waits
on the worker; the pages held in memory stay capped at `max_held` whatever the count. Each
outcome is set on the ticket of the page it belongs to, so it only reaches the job that
submitted that page. A batch that raises anything but EngineUnavailable is read again one page
at a time, so one page the engine chokes on fails only its own job.

Budget: an engine call on N pages may run `page_seconds` (PAGE_TIMEOUT_SECONDS) once for each
page the engine reads one after another, ceil(N / engine.pages_at_once) times (native
paddleocr-vl: N); `overdue_call()` names a call past its budget and the jobs whose pages it
holds, for the job watchdog to end the process (native code cannot be interrupted). A long but
healthy batch is not over budget; its pages' jobs are not charged for it either: a job waiting
on the batcher has its page clock stopped (worker/page_reading.py, JobWatchdog.blocked).

Outage: when `recognize_batch` raises EngineUnavailable, its pages go back to the head of the
queue, no dispatcher sends a batch, `on_availability(False, reason)` tells the heartbeat, and
`check_available()` is polled with backoff (by the one dispatcher that saw it first; a call in
flight that fails the same way only puts its pages back); once it passes the held pages run.
Time spent in an outage is kept out of `working_clock()`, which the job watchdog measures time
limits with: a job is not charged for the time the engine was away.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.error_codes import ErrorCode
from worker.engines import BatchingEngine, EngineError, EngineUnavailable, Recognition

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

Outcome = Recognition | EngineError
# Seconds between check_available() calls in an outage: doubling from the first to the last.
OUTAGE_BACKOFF = (0.5, 5.0)


class PageTicket:
    """One submitted page: its image until it is read, then its outcome."""

    def __init__(self, job: BatchJob, image: Image, submitted: float) -> None:
        self.job = job
        self.image: Image | None = image
        self.submitted = submitted
        self.outcome: Outcome | None = None
        self.engine_seconds = 0.0  # duration of the engine call that read this page
        self.share_seconds = 0.0  # this page's share of it (the call over its batch's pages)
        self._done = threading.Event()

    def wait(self, timeout: float) -> Outcome | None:
        """The page's outcome, or None if it is not read within `timeout` seconds."""
        return self.outcome if self._done.wait(timeout) else None

    def _resolve(self, outcome: Outcome, seconds: float, share: float) -> None:
        self.outcome, self.engine_seconds, self.image = outcome, seconds, None
        self.share_seconds = share
        self._done.set()


class BatchJob:
    """One job's door to the batcher; get it from `PageBatcher.job()`."""

    def __init__(self, batcher: PageBatcher, name: str = "") -> None:
        self._batcher = batcher
        self.name = name  # the job id: named when an engine call holding its pages hangs
        self.submitting = True  # may still submit pages (counts as preparing unless blocked)
        self.blocked = False  # waiting on the batcher (for an outcome or for room)
        self.closed = False

    def submit(self, image: Image, timeout: float) -> PageTicket | None:
        """Queue one page; None if the batcher had no room for it within `timeout` seconds."""
        return self._batcher._submit(self, image, timeout)

    def wait(self, ticket: PageTicket, timeout: float) -> Outcome | None:
        """The ticket's outcome, or None after `timeout`; the job counts as blocked meanwhile."""
        if ticket._done.is_set():
            return ticket.outcome
        with self._batcher._blocking(self):
            return ticket.wait(timeout)

    def done_submitting(self) -> None:
        """No more pages will come from this job: batches stop waiting for it."""
        self._batcher._set_state(self, submitting=False)


class _Call:
    """One engine call in progress: its page count, when it began, whose pages it reads."""

    def __init__(self, pages: int, started: float, jobs: tuple[str, ...]) -> None:
        self.pages, self.started, self.jobs = pages, started, jobs


@dataclass(frozen=True)
class HungCall:
    """An engine call that has run past its budget."""

    pages: int
    seconds: float  # how long it has run
    budget: float
    jobs: tuple[str, ...]  # names of the jobs whose pages it holds

    @property
    def reason(self) -> str:
        return (
            f"an engine call on {self.pages} page(s) that has run {self.seconds:.0f} s, over its "
            f"budget of {self.budget:g} s"
        )


class PageBatcher:
    """Groups pages of all held jobs into `recognize_batch` calls, up to `in_flight` at once."""

    def __init__(
        self,
        engine: BatchingEngine,
        max_batch: int,
        fill_seconds: float,
        max_held: int | None = None,
        in_flight: int = 1,
        on_availability: Callable[[bool, str | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        page_seconds: float | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self.engine = engine
        self.max_batch = max_batch
        # the page limit an engine call is budgeted by (None: calls have no budget)
        self.page_seconds = page_seconds
        self.pages_at_once = max(1, getattr(engine, "pages_at_once", 1))
        self.fill_seconds = fill_seconds
        # pages in memory at once (queued + being read, over all calls in flight): as much as
        # one batch filling while one is read
        self.max_held = max_held or 2 * max_batch
        self.in_flight = in_flight
        self.on_availability = on_availability or (lambda available, reason: None)
        self.clock = clock
        self.available = True
        self._queue: deque[PageTicket] = deque()
        self._reading = 0  # pages in the engine calls now
        self._preparing = 0  # jobs that may submit and are not blocked
        self._calls: list[_Call] = []  # engine calls in progress
        self._outage_since: float | None = None
        self._outage_total = 0.0
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"page-batcher-{i}", daemon=True)
            for i in range(in_flight)
        ]

    # -- job side -----------------------------------------------------------------------------

    @contextmanager
    def job(self, name: str = "") -> Iterator[BatchJob]:
        """A job's session: its queued pages are dropped when it ends (done, failed, canceled)."""
        job = BatchJob(self, name)
        with self._cond:
            self._preparing += 1
        try:
            yield job
        finally:
            self._close(job)

    def working_clock(self) -> float:
        """Monotonic seconds, less the time spent waiting out engine outages."""
        with self._cond:
            now = self.clock()
            away = self._outage_total
            if self._outage_since is not None:
                away += now - self._outage_since
            return now - away

    def call_seconds(self) -> float:
        """How long the oldest engine call in progress has run (0 when none is)."""
        with self._cond:
            started = min((call.started for call in self._calls), default=None)
            return 0.0 if started is None else self.clock() - started

    def budget(self, pages: int) -> float | None:
        """Seconds an engine call on `pages` pages may run: the page limit once per page the
        engine reads one after another (None when calls have no budget)."""
        if self.page_seconds is None:
            return None
        return self.page_seconds * math.ceil(pages / self.pages_at_once)

    def overdue_call(self) -> HungCall | None:
        """The longest-running engine call past its budget, if any."""
        with self._cond:
            now = self.clock()
            for call in sorted(self._calls, key=lambda c: c.started):
                budget = self.budget(call.pages)
                if budget is not None and now - call.started > budget:
                    return HungCall(call.pages, now - call.started, budget, call.jobs)
        return None

    def _submit(self, job: BatchJob, image: Image, timeout: float) -> PageTicket | None:
        with self._blocking(job), self._cond:
            if not self._cond.wait_for(self._has_room, timeout):
                return None
            ticket = PageTicket(job, image, self.clock())
            self._queue.append(ticket)
            self._cond.notify_all()
            return ticket

    def _has_room(self) -> bool:
        return len(self._queue) + self._reading < self.max_held

    @contextmanager
    def _blocking(self, job: BatchJob) -> Iterator[None]:
        self._set_state(job, blocked=True)
        try:
            yield
        finally:
            self._set_state(job, blocked=False)

    def _set_state(
        self, job: BatchJob, submitting: bool | None = None, blocked: bool | None = None
    ) -> None:
        with self._cond:
            before = job.submitting and not job.blocked and not job.closed
            if submitting is not None:
                job.submitting = submitting
            if blocked is not None:
                job.blocked = blocked
            after = job.submitting and not job.blocked and not job.closed
            self._preparing += int(after) - int(before)
            self._cond.notify_all()

    def _close(self, job: BatchJob) -> None:
        with self._cond:
            if job.submitting and not job.blocked and not job.closed:
                self._preparing -= 1
            job.closed = True
            dropped = [t for t in self._queue if t.job is job]
            if dropped:
                self._queue = deque(t for t in self._queue if t.job is not job)
            self._cond.notify_all()
        for ticket in dropped:
            ticket.image = None  # an outcome still being read is simply never looked at

    # -- dispatcher ---------------------------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()

    def _ready(self) -> bool:
        if not self._queue or self._outage_since is not None:
            return False
        return (
            len(self._queue) >= self.max_batch
            or self._preparing == 0
            or self.clock() - self._queue[0].submitted >= self.fill_seconds
        )

    def _next_batch(self) -> tuple[_Call, list[PageTicket]] | None:
        """Wait for a batch worth sending; None once stopping."""
        with self._cond:
            while not self._stopping.is_set() and not self._ready():
                timeout = None
                if self._queue and self._outage_since is None:
                    timeout = self._queue[0].submitted + self.fill_seconds - self.clock()
                self._cond.wait(timeout if timeout is None else max(timeout, 0.001))
            if self._stopping.is_set():
                return None
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            jobs = tuple(dict.fromkeys(t.job.name for t in batch))
            call = _Call(len(batch), self.clock(), jobs)
            self._calls.append(call)
            self._reading += call.pages
            return call, batch

    def _loop(self) -> None:
        while (taken := self._next_batch()) is not None:
            call, batch = taken
            try:
                self._read(call, batch)
            except Exception:  # the dispatcher must outlive any single error
                log.exception("page batcher: batch of %d failed unexpectedly", len(batch))
                failed: list[Outcome] = [
                    EngineError(ErrorCode.internal_error, "the page batcher failed") for _ in batch
                ]
                self._finish(call, batch, failed, 0.0)

    def _end_call(self, call: _Call) -> None:
        """Under the lock: the call's pages no longer count as being read."""
        if call in self._calls:
            self._calls.remove(call)
            self._reading -= call.pages
        self._cond.notify_all()

    def _read(self, call: _Call, batch: list[PageTicket]) -> None:
        images = [t.image for t in batch if t.image is not None]
        live = [t for t in batch if t.image is not None]  # a closed job's pages are not read
        started = time.perf_counter()
        try:
            outcomes = self._outcomes(images) if images else []
        except EngineUnavailable as exc:
            with self._cond:
                self._queue.extendleft(reversed([t for t in live if not t.job.closed]))
                self._end_call(call)
                # another dispatcher is already waiting this outage out
                first = self._outage_since is None
                if first:
                    self._outage_since = self.clock()
            if first:
                self._wait_out_outage(exc)
            return
        seconds = time.perf_counter() - started
        jobs = len({id(t.job) for t in live})
        log.info("page batcher: %d page(s) of %d job(s) in %.2f s", len(images), jobs, seconds)
        self._finish(call, live, outcomes, seconds)

    def _outcomes(self, images: Sequence[Image]) -> list[Outcome]:
        """The engine's outcome per image; a batch that breaks is read again page by page."""
        try:
            outcomes = list(self.engine.recognize_batch(images))
            if len(outcomes) != len(images):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(images)} pages")
            return outcomes
        except EngineUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - becomes the page's outcome, fails its job
            if len(images) == 1:
                code = exc.code if isinstance(exc, EngineError) else ErrorCode.recognition_failed
                return [EngineError(code, f"{type(exc).__name__}: {exc}")]
            log.warning(
                "page batcher: a batch of %d failed (%s: %s); reading its pages one by one",
                len(images),
                type(exc).__name__,
                exc,
            )
            return [self._outcomes([image])[0] for image in images]

    def _finish(
        self, call: _Call, batch: list[PageTicket], outcomes: list[Outcome], seconds: float
    ) -> None:
        with self._cond:
            self._end_call(call)
        for ticket, outcome in zip(batch, outcomes, strict=True):
            ticket._resolve(outcome, seconds, seconds / len(batch))

    def _wait_out_outage(self, first: EngineUnavailable) -> None:
        """Poll the engine until it answers; `_outage_since` is set (no batch goes meanwhile)."""
        self.available = False
        log.warning("engine unavailable, holding the pages: %s", first.message)
        self.on_availability(False, first.message)
        delay, last = OUTAGE_BACKOFF
        while not self._stopping.wait(delay):
            try:
                self.engine.check_available()
            except EngineUnavailable as exc:
                delay = min(delay * 2, last)
                log.info("engine still unavailable (next check in %.1f s): %s", delay, exc.message)
                continue
            except Exception as exc:  # noqa: BLE001 - a broken check is no answer: keep holding
                delay = min(delay * 2, last)
                log.warning("engine check failed: %s: %s", type(exc).__name__, exc)
                continue
            break
        with self._cond:
            if self._outage_since is not None:
                self._outage_total += self.clock() - self._outage_since
            self._outage_since = None
            self._cond.notify_all()  # the held pages may go
        self.available = True
        log.info("engine available again; sending the held pages")
        self.on_availability(True, None)
