"""How a job's pages get read: one at a time through the router, or through the page batcher.

JobRunner hands a reader the job's lazily rendered pages and takes back one PageResult per page,
in page order. The reader stops the job when it is canceled (JobCanceledWhileRunning) or out of
time (JobTimedOut), and raises the EngineError of a page that could not be read.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Protocol

from shared.errors import JobNotFound
from shared.jobs import JobMetrics, JobRecord, JobStatus, JobStore
from shared.results import PageResult
from worker.batcher import BatchJob, PageBatcher, PageTicket
from worker.engines import EngineError, Recognition
from worker.pages import Page
from worker.results import link_images, page_markdown
from worker.routing import EngineRouter
from worker.watchdog import JobWatchdog

# How often a job waiting on the batcher looks for a cancel or an overrun time limit.
WAIT_POLL_SECONDS = 0.5


class JobCanceledWhileRunning(Exception):
    """DELETE /jobs/{id} arrived while the job ran: stop before the next page."""


@dataclass
class JobChecks:
    """The checks a reader makes between pages of one job."""

    job_id: str
    store: JobStore
    watch: JobWatchdog

    def raise_if_canceled(self) -> None:
        """Also stops the job when its record is gone (expired, or lost by Redis)."""
        status = self.store.status(self.job_id)
        if status is None:
            raise JobNotFound(f"the record of job {self.job_id} is gone")
        if status is JobStatus.canceled:
            raise JobCanceledWhileRunning(self.job_id)

    def page_starting(self) -> None:
        """Restart the page clock; raises JobTimedOut past the job's time limit."""
        self.watch.page_starting(self.job_id)

    def raise_if_overdue(self) -> None:
        self.watch.raise_if_overdue(self.job_id)

    def waiting_on_batcher(self) -> AbstractContextManager[None]:
        """The page clock stops while the job waits on the page batcher."""
        return self.watch.blocked(self.job_id)


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
    job_id: str, page: Page, engine_name: str, recognition: Recognition
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
        text="\n".join(b.text for b in blocks),
    )
    result.images.update(images)
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
            if page.text_blocks is not None:
                yield text_layer_result(page)
                continue
            assert page.image is not None
            started = time.perf_counter()
            engine, recognition = self.router.read(page.image, record.options.language)
            self.metrics.observe("page_engine_seconds", time.perf_counter() - started)
            yield recognized_result(record.job_id, page, engine.name, recognition)


@dataclass
class BatchReader:
    """Pages through the shared PageBatcher, up to `lookahead` of them submitted ahead.

    The batching engine reads every script the service knows, so the job's language needs no
    routing. The page clock restarts each time one of the job's pages comes back, and stops
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
        with self.batcher.job(record.job_id) as job:
            checks.raise_if_canceled()
            checks.page_starting()
            while True:
                while more and len(pending) < self.lookahead:
                    page = next(source, None)
                    if page is None:
                        more = False
                        job.done_submitting()
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
                    recognition = self._wait(job, item, checks)
                    item = recognized_result(record.job_id, page, self.engine_name, recognition)
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

    def _wait(self, job: BatchJob, ticket: PageTicket, checks: JobChecks) -> Recognition:
        with checks.waiting_on_batcher():
            while (outcome := job.wait(ticket, WAIT_POLL_SECONDS)) is None:
                checks.raise_if_canceled()
                checks.raise_if_overdue()
        if isinstance(outcome, EngineError):
            raise EngineError(outcome.code, outcome.message)  # its own, raised in this thread
        self.metrics.observe("page_engine_seconds", ticket.engine_seconds)
        return outcome
