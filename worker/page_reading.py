"""How a job's pages get read: one at a time through the router, or through the page batcher.

JobRunner hands a reader the job's (or one page range's) lazily rendered pages and takes back
one PageResult per page, in page order. The reader stops the job when it is canceled
(JobCanceledWhileRunning) or out of time (JobTimedOut). A page that cannot be loaded or read
(`page_failure`) becomes a failed PageResult (its `error`, no blocks) and the others go on;
with on_page_error=fail, or for an error that is no page's own (the engine is missing, the
language unsupported), the PageLoadError/EngineError is raised and fails the job.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Protocol

from shared.error_codes import ErrorCode
from shared.errors import JobNotFound
from shared.jobs import JobMetrics, JobRecord, JobStatus, JobStore
from shared.options import OnPageError
from shared.results import PageError, PageResult
from shared.tracing import engine_call, engine_call_done
from worker.batcher import BatchJob, PageBatcher, PageTicket
from worker.engines import EngineError, Recognition
from worker.pages import Page, PageLoadError
from worker.results import link_images, page_markdown, page_text
from worker.routing import EngineRouter
from worker.watchdog import JobWatchdog

# How often a job waiting on the batcher looks for a cancel or an overrun time limit.
WAIT_POLL_SECONDS = 0.5


# Engine errors worth one more try on the same page (a server's hiccup, a crash in the model).
TRANSIENT_CODES = frozenset({ErrorCode.vl_server_error, ErrorCode.recognition_failed})
# Errors that are no page's own fault: every page would fail the same way, so the job fails.
JOB_LEVEL_CODES = frozenset(
    {
        ErrorCode.input_missing,
        ErrorCode.pdf_encrypted,
        ErrorCode.invalid_pages,
        ErrorCode.language_unsupported,
        ErrorCode.engine_unavailable,
        ErrorCode.engine_not_installed,
        ErrorCode.engine_init_failed,
        ErrorCode.unknown_engine,
        ErrorCode.config_error,
        ErrorCode.gpu_unavailable,
        ErrorCode.model_missing,
        ErrorCode.warmup_failed,
        ErrorCode.internal_error,
    }
)


class JobCanceledWhileRunning(Exception):
    """DELETE /jobs/{id} arrived while the job ran: stop before the next page."""


class JobEndedElsewhere(Exception):
    """Another run ended the job (another page range failed it, or it timed out): stop."""


def failed_result(page: Page, error: PageLoadError | EngineError) -> PageResult:
    """A page that could not be read: its number kept, its code and message, no blocks."""
    return PageResult(
        index=page.index,
        width=page.width,
        height=page.height,
        dpi=page.dpi,
        error=PageError(code=error.code, message=error.message),
    )


def page_failure(record: JobRecord, page: Page, error: PageLoadError | EngineError) -> PageResult:
    """The failed page's result; raises `error` instead when it must fail the whole job
    (on_page_error=fail, or an error that is no page's own)."""
    if record.options.on_page_error is OnPageError.fail or error.code in JOB_LEVEL_CODES:
        raise error
    return failed_result(page, error)


@dataclass
class JobChecks:
    """The checks a reader makes between pages of one job (or of one of its page ranges)."""

    job_id: str
    store: JobStore
    watch: JobWatchdog
    watch_key: str = ""  # what the watchdog knows this run by (a range's "<id>/<k>"): job_id

    def __post_init__(self) -> None:
        self.watch_key = self.watch_key or self.job_id

    def raise_if_canceled(self) -> None:
        """Also stops the job when its record is gone (expired, or lost by Redis)."""
        status = self.store.status(self.job_id)
        if status is None:
            raise JobNotFound(f"the record of job {self.job_id} is gone")
        if status is JobStatus.canceled:
            raise JobCanceledWhileRunning(self.job_id)
        if status.terminal:
            raise JobEndedElsewhere(f"job {self.job_id} is {status.value}")

    def page_starting(self) -> None:
        """Restart the page clock; raises JobTimedOut past the job's time limit."""
        self.watch.page_starting(self.watch_key)

    def raise_if_overdue(self) -> None:
        self.watch.raise_if_overdue(self.watch_key)

    def waiting_on_batcher(self) -> AbstractContextManager[None]:
        """The page clock stops while the job waits on the page batcher."""
        return self.watch.blocked(self.watch_key)


class PageReader(Protocol):
    def read(
        self, record: JobRecord, pages: Iterator[Page], checks: JobChecks
    ) -> Generator[PageResult, None, None]:
        """One result per page, in order."""
        ...


def text_layer_result(page: Page) -> PageResult:
    blocks = page.text_blocks or []
    return PageResult(
        index=page.index,
        width=page.width,
        height=page.height,
        dpi=page.dpi,
        source="text_layer",
        blocks=blocks,
        markdown=page_markdown(blocks),
        text="\n".join(b.text for b in blocks),
    )


def recognized_result(
    job_id: str,
    page: Page,
    engine_name: str,
    recognition: Recognition,
    engine_seconds: float = 0.0,
) -> PageResult:
    """The page's result; its image crops carried along, the markdown linking them in the API."""
    width, height = page.width, page.height
    if recognition.rotation in (90, 270):
        width, height = height, width
    blocks = recognition.blocks
    markdown = recognition.markdown if recognition.markdown is not None else page_markdown(blocks)
    markdown, images = link_images(job_id, page.index, markdown, recognition.images)
    result = PageResult(
        index=page.index,
        width=width,
        height=height,
        dpi=page.dpi,
        rotation=recognition.rotation,
        engine=engine_name,
        blocks=blocks,
        markdown=markdown,
        text=page_text(blocks),
    )
    result.images.update(images)
    result.engine_seconds = engine_seconds
    return result


@dataclass
class SerialReader:
    """One page at a time, each through the router (CPU engines)."""

    router: EngineRouter
    metrics: JobMetrics

    def read(
        self, record: JobRecord, pages: Iterator[Page], checks: JobChecks
    ) -> Generator[PageResult, None, None]:
        for page in pages:
            checks.raise_if_canceled()
            checks.page_starting()
            if page.error is not None:
                yield page_failure(record, page, page.error)
                continue
            if page.text_blocks is not None:
                yield text_layer_result(page)
                continue
            try:
                yield self._recognize(record, page, checks)
            except EngineError as exc:
                yield page_failure(record, page, exc)

    def _recognize(self, record: JobRecord, page: Page, checks: JobChecks) -> PageResult:
        """One page through the router; a transient engine error (or a crash of the engine on
        this page, `recognition_failed`) is tried once more."""
        assert page.image is not None
        for attempt in (1, 2):
            started = time.perf_counter()
            with engine_call(page.index, attempt) as span:
                try:
                    try:
                        engine, recognition = self.router.read(page.image, record.options.language)
                    except EngineError:
                        raise
                    except Exception as crash:  # the engine broke on this page: its failure
                        message = f"{type(crash).__name__}: {crash}"
                        raise EngineError(ErrorCode.recognition_failed, message) from crash
                except EngineError as exc:
                    span.failed(exc.code)
                    if attempt == 2 or exc.code not in TRANSIENT_CODES:
                        raise
                    checks.page_starting()
                    continue
                span.read_by(engine.name)
            seconds = time.perf_counter() - started
            self.metrics.observe("page_engine_seconds", seconds)
            return recognized_result(record.job_id, page, engine.name, recognition, seconds)
        raise AssertionError("unreachable")


@dataclass
class BatchReader:
    """Pages through the shared PageBatcher, up to `lookahead` of them submitted ahead.

    The batching engine reads every script the service knows, so the job's language needs no
    routing. A batch that fails is read again page by page by the batcher itself: a page whose
    own read fails then is failed alone (no retry here).
    The page clock restarts each time one of the job's pages comes back, and stops
    while the job waits on the batcher (for room, or for a page's outcome): its page may sit
    behind other jobs' batches, which is no fault of its own. The engine call that reads it is
    watched instead, by its budget (worker/batcher.py), and the job limit runs on.
    """

    batcher: PageBatcher
    metrics: JobMetrics
    engine_name: str
    lookahead: int

    def read(
        self, record: JobRecord, pages: Iterator[Page], checks: JobChecks
    ) -> Generator[PageResult, None, None]:
        pending: deque[tuple[Page, PageTicket | PageResult]] = deque()
        source = iter(pages)
        more = True
        with self.batcher.job(checks.watch_key) as job:
            checks.raise_if_canceled()
            checks.page_starting()
            while True:
                while more and len(pending) < self.lookahead:
                    page = next(source, None)
                    if page is None:
                        more = False
                        job.done_submitting()
                    elif page.error is not None:
                        pending.append((page, page_failure(record, page, page.error)))
                    elif page.text_blocks is not None:
                        pending.append((page, text_layer_result(page)))
                    else:
                        assert page.image is not None
                        ticket = self._submit(job, page, checks)
                        pending.append((replace(page, image=None), ticket))
                if not pending:
                    return
                page, item = pending.popleft()
                if isinstance(item, PageTicket):
                    # a page the batcher could not read alone either fails alone
                    try:
                        recognition = self._wait(job, page, item, checks)
                    except EngineError as exc:
                        item = page_failure(record, page, exc)
                    else:
                        item = recognized_result(
                            record.job_id, page, self.engine_name, recognition, item.share_seconds
                        )
                yield item
                checks.raise_if_canceled()
                checks.page_starting()

    def _submit(self, job: BatchJob, page: Page, checks: JobChecks) -> PageTicket:
        assert page.image is not None
        with checks.waiting_on_batcher():
            while (ticket := job.submit(page.image, WAIT_POLL_SECONDS)) is None:
                checks.raise_if_canceled()
                checks.raise_if_overdue()
        return ticket

    def _wait(
        self, job: BatchJob, page: Page, ticket: PageTicket, checks: JobChecks
    ) -> Recognition:
        with checks.waiting_on_batcher():
            while (outcome := job.wait(ticket, WAIT_POLL_SECONDS)) is None:
                checks.raise_if_canceled()
                checks.raise_if_overdue()
        # the batch was read by the batcher's thread: the page's span is made here, after it
        code = outcome.code if isinstance(outcome, EngineError) else None
        engine_call_done(page.index, self.engine_name, ticket.engine_seconds, code)
        if isinstance(outcome, EngineError):
            raise EngineError(outcome.code, outcome.message)  # its own, raised in this thread
        self.metrics.observe("page_engine_seconds", ticket.engine_seconds)
        return outcome
