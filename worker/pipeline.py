"""One job from queued to succeeded/failed: load pages, recognize, write results, update state.

A job of more selected pages than one page range (PAGE_RANGE_SIZE, or its engine kind's
default) is planned into ranges by the run that claimed it (`ocr.run`): one `ocr.run_range`
message per other range on the job's own queue, range 0 read by the planner itself. Each range
has its own lease; it stores its pages (JobFiles.write_range) and marks itself done; the last
one done assembles the result from every range's pages and ends the job (shared/jobs/scripts.py:
PLAN, RANGE_CLAIM, RANGE_DONE). Every page read or failed is counted once (PAGE).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from shared.error_codes import ErrorCode
from shared.errors import JobNotFound, StorageUnavailable
from shared.jobs import Claim, JobRecord, JobStatus, JobStore, utcnow
from shared.jobs.keys import range_member
from shared.jobs.outcomes import RangeClaim, RangeDone
from shared.logs import job_context
from shared.options import TextLayer
from shared.results import PageResult
from shared.settings import Settings
from shared.storage import JobFiles, hide_dirs, is_disk_full, job_files
from shared.storage.disk import scratch_path
from shared.storage.layout import INPUT_NAME
from shared.tracing import RunTrace, job_logs, result_write
from shared.tracing import active as tracing_active
from worker.engines import EngineError
from worker.page_reading import (
    JobCanceledWhileRunning,
    JobChecks,
    JobEndedElsewhere,
    PageReader,
    SerialReader,
)
from worker.pages import Document, PageLoadError
from worker.results import build_document, write_results, write_results_streamed
from worker.routing import EngineRouter
from worker.sources import SourceFailed, SourceFetcher, count_pages, fetch_into
from worker.watchdog import JobTimedOut, JobWatchdog

log = logging.getLogger(__name__)

# Pages per range when PAGE_RANGE_SIZE=0, by engine kind. A range costs a message, its Redis
# calls (claim, record, plan, done, release: 1.5 ms measured), opening the document (2.4 ms for
# 100 pages), its range file written and read back (7.6 ms for 8 pages, local) and, with S3,
# fetching the input; a page costs 0.5-1.9 s of rapidocr on one thread of these cores (a short
# page, an A4 of 24 lines): 8 pages keep the overhead under 1% and a killed worker's loss to 8
# pages. The batching VL engine gathers pages of many ranges into its batches anyway, so bigger
# ranges only cut that overhead (and the input fetches) further.
DEFAULT_RANGE_SIZE = 8
RANGE_SIZES = {"paddleocr-vl": 32}


def _range_copy(part: int) -> str:
    """The name of a range's own local copy of the input (a bucket keeps no files here)."""
    return f"range-{int(part)}"


@dataclass
class _Planned:
    """A job this run planned into ranges: range 0's pages, its document still open."""

    record: JobRecord
    document: Document
    numbers: list[int]


@dataclass
class JobRunner:
    """Everything a job needs, built once at boot: settings, the store and the warm engines."""

    settings: Settings
    store: JobStore
    router: EngineRouter
    holder: str  # this worker's id: the lease owner
    watch: JobWatchdog
    # How pages get read: one at a time through the router, or batched (worker/page_reading.py)
    reader: PageReader | None = None
    # Sends the `ocr.run_range` messages a plan left waiting for a job (boot wires Celery)
    send_ranges: Callable[[str], None] | None = None
    # Fetches the documents of jobs by reference (source_url)
    sources: SourceFetcher = field(init=False, repr=False)
    # Jobs this process failed (fail()) that their task has not reported yet (took_failure)
    _failed_here: set[str] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.reader is None:
            self.reader = SerialReader(self.router, self.store.metrics)
        self.sources = SourceFetcher(self.settings)

    @property
    def range_size(self) -> int:
        """Pages per range: PAGE_RANGE_SIZE, or the engine kind's default."""
        default = RANGE_SIZES.get(self.router.primary.name, DEFAULT_RANGE_SIZE)
        return self.settings.page_range_size or default

    def run(self, job_id: str) -> JobStatus | None:
        """Run one job (`ocr.run`); safe to call again for the same id (same outputs, atomic
        writes).

        The job's lease admits one runner at a time: a redelivered message for a job another
        live worker holds (or that was planned into ranges) is dropped, and a dead worker's job
        comes back through recovery.
        """
        files = self._files(job_id)
        claim = self.store.claim(job_id, self.holder, self.settings.job_lease_seconds)
        if claim is not Claim.claimed:
            with self._dropped(job_id):
                if claim is Claim.missing:
                    self._gone(job_id)
                    return None
                if claim is Claim.busy:
                    log.info("job=%s is held by another live worker; delivery dropped", job_id)
                    return None
                if claim is Claim.canceled:
                    return self._canceled(job_id, files)
                log.info("job=%s already %s; nothing to do", job_id, claim.value)
                return JobStatus(claim.value)
        trace = RunTrace()  # its queue wait ends here, at the claim
        planned, outcome = None, None
        try:
            with self.watch.watching(job_id), job_context(job_id):
                outcome = self._guarded(
                    job_id, files, None, lambda: self._execute(job_id, files, trace)
                )
            if not isinstance(outcome, _Planned):
                return outcome
            planned = outcome
        finally:
            self.store.release(job_id, self.holder)
            if planned is None:
                trace.end(_outcome_name(outcome))
                files.drop_local()  # this run's copy of the input (STORAGE_URL=s3://)
        # PLAN made range 0 this run's: read it now (its lease, its watch, the same span)
        return self._run_range(job_id, 0, files, RangeClaim.claimed, planned, trace)

    def run_whole(self, job_id: str) -> JobStatus | None:
        """Run the job and then each of its other page ranges in this process, in turn (what
        one worker alone would do; benches and tests without Celery)."""
        status = self.run(job_id)
        plan = self.store.plan_of(job_id)
        for part in range(1, plan[0] if plan else 1):
            status = self.run_range(job_id, part)
        return status

    def run_range(self, job_id: str, part: int) -> JobStatus | None:
        """Run page range `part` of a planned job (`ocr.run_range`); a range done already is
        not read again, and the range that was last to finish assembles the job again if its
        run died before the job's end."""
        files = self._files(job_id)
        claim = self.store.claim_range(job_id, part, self.holder, self.settings.job_lease_seconds)
        if claim in (RangeClaim.claimed, RangeClaim.assemble):
            return self._run_range(job_id, part, files, claim)
        with self._dropped(job_id):
            if claim is RangeClaim.missing:
                self._gone(job_id)
                return None
            if claim is RangeClaim.busy:
                log.info("job=%s range %d is held by another live worker; dropped", job_id, part)
                return None
            if claim is RangeClaim.done:
                log.info("job=%s range %d is done already; nothing to do", job_id, part)
                return None
            if claim is RangeClaim.canceled:
                return self._canceled(job_id, files)
            log.info("job=%s already %s; nothing to do", job_id, claim.value)
            return JobStatus(claim.value)

    @contextmanager
    def _dropped(self, job_id: str) -> Iterator[None]:
        """A delivery this run does not run: its few log lines tagged with the job's trace."""
        with job_logs(job_id, self.store.traceparent(job_id)):
            yield

    def _files(self, job_id: str) -> JobFiles:
        return job_files(self.settings, job_id)

    def _guarded(
        self,
        job_id: str,
        files: JobFiles,
        part: int | None,
        body: Callable[[], JobStatus | _Planned | None],
    ) -> JobStatus | _Planned | None:
        """Run `body`: whatever it raises ends the job (or the run) the way it must."""
        try:
            return body()
        except JobCanceledWhileRunning:
            return self._canceled(job_id, files)
        except JobEndedElsewhere as exc:
            log.info("job=%s ended meanwhile (%s); this run stops", job_id, exc)
            return self.store.status(job_id)
        except JobNotFound:
            self._gone(job_id)
            return None
        except JobTimedOut as exc:
            return self.fail(job_id, ErrorCode.timeout, str(exc), part)
        except (PageLoadError, EngineError, SourceFailed) as exc:
            return self.fail(job_id, exc.code, exc.message, part)
        except StorageUnavailable as exc:  # the bucket's name and keys stay in the log
            log.error("job=%s: %s", job_id, exc.message)
            message = "the job's files could not be read or stored in the bucket (STORAGE_URL)"
            return self.fail(job_id, exc.code, message, part)
        except Exception as exc:  # a job must end failed, never kill the worker
            if isinstance(exc, OSError) and is_disk_full(exc):
                reason = exc.strerror or str(exc)
                message = f"the result cannot be stored: {reason}"
                return self.fail(job_id, ErrorCode.insufficient_storage, message, part)
            log.exception("job=%s crashed", job_id)
            message = f"{type(exc).__name__}: {exc}"
            return self.fail(job_id, ErrorCode.internal_error, message, part)

    def _execute(
        self, job_id: str, files: JobFiles, trace: RunTrace
    ) -> JobStatus | _Planned | None:
        record = self.store.get(job_id)
        if record is None:
            self._gone(job_id)
            return None
        trace.begin(record)
        if record.attempts > 1:
            log.warning("job=%s attempt %d: its previous worker died", job_id, record.attempts)
        started = time.perf_counter()
        fetched = None
        if record.source_url is not None:
            record, fetched = self._fetched(record, files)
        document: Document | None = self._open(record, files, path=fetched)
        try:
            assert document is not None
            numbers = self._numbers(record, document)
            if record.source_url is not None:
                count_pages(self.settings, self.store, record, len(numbers), document.page_count)
            self.store.set_pages_total(job_id, len(numbers))
            size = self.range_size
            if len(numbers) > size:
                if not self._plan(record, numbers, size):
                    return None
                trace.planned(math.ceil(len(numbers) / size), size)
                planned, document = _Planned(record, document, numbers[:size]), None
                return planned  # its document stays open for range 0
            checks = JobChecks(job_id, self.store, self.watch)
            pages = self._recognize(record, document, numbers, checks)
        finally:
            if document is not None:
                document.close()
        return self._finish(record, files, pages, None, time.perf_counter() - started)

    def _plan(self, record: JobRecord, numbers: list[int], size: int) -> bool:
        """Plan the job into ranges and send the other ranges' messages; False when this run
        lost its lease meanwhile (recovery gave the job to another run)."""
        job_id = record.job_id
        count = math.ceil(len(numbers) / size)
        lease = self.settings.job_lease_seconds
        if not self.store.plan(job_id, self.holder, lease, count, size):
            log.warning("job=%s could not be planned (lease lost, or planned already)", job_id)
            return False
        log.info(
            "job=%s: %d page(s) in %d ranges of up to %d; reading range 0 here",
            job_id,
            len(numbers),
            count,
            size,
        )
        if self.send_ranges is not None:
            self.send_ranges(job_id)  # else the orphan sweep sends them
        return True

    def _run_range(
        self,
        job_id: str,
        part: int,
        files: JobFiles,
        claim: RangeClaim,
        planned: _Planned | None = None,
        trace: RunTrace | None = None,
    ) -> JobStatus | None:
        """Read range `part` (its lease is this run's), or assemble the job (`claim`)."""
        key = range_member(job_id, part)
        trace = trace or RunTrace(part)
        outcome: JobStatus | _Planned | None = None
        try:
            with job_context(job_id):
                record = planned.record if planned else self.store.get(job_id)
                if record is None:
                    self._gone(job_id)
                    return None
                # a range's wait began with its job's plan
                queued = self.store.planned_at(job_id) if tracing_active() and not planned else None
                trace.begin(record, queued)
                left = None  # the job's time limit runs from its start, across ranges
                if record.started_at is not None:
                    elapsed = (utcnow() - record.started_at).total_seconds()
                    left = max(0.0, self.settings.job_timeout_seconds - elapsed)
                with self.watch.watching(key, job_seconds=left):
                    outcome = self._guarded(
                        job_id,
                        files,
                        part,
                        lambda: self._execute_range(record, files, part, claim, planned),
                    )
                assert not isinstance(outcome, _Planned)
                return outcome
        finally:
            trace.end(_outcome_name(outcome))
            if planned is not None:
                planned.document.close()
            self.store.release(job_id, self.holder, part)
            # only this run's copy of the input (STORAGE_URL=s3://): another range of the job
            # may be reading its own in this process
            files.drop_local(INPUT_NAME if planned is not None else _range_copy(part))

    def _execute_range(
        self,
        record: JobRecord,
        files: JobFiles,
        part: int,
        claim: RangeClaim,
        planned: _Planned | None,
    ) -> JobStatus | None:
        job_id = record.job_id
        plan = self.store.plan_of(job_id)
        if plan is None:  # the job ended meanwhile (its plan expires with it)
            return self.store.status(job_id)
        count, size = plan
        if claim is RangeClaim.claimed:
            if planned is not None:
                document, numbers = planned.document, planned.numbers
            else:
                document = self._open(record, files, _range_copy(part))
            try:
                if planned is None:
                    numbers = self._numbers(record, document)[part * size : (part + 1) * size]
                checks = JobChecks(job_id, self.store, self.watch, range_member(job_id, part))
                pages = self._recognize(record, document, numbers, checks, part)
            finally:
                document.close()
            files.write_range(part, pages)
            done = self.store.range_done(job_id, part, self.holder)
            if done is RangeDone.lost:
                log.warning("job=%s range %d lost its lease; another run owns it", job_id, part)
                return None
            if done is RangeDone.ended:
                return self._not_applied(job_id, files)
            if done is RangeDone.others_running:
                log.info("job=%s range %d done: %d page(s)", job_id, part, len(pages))
                return JobStatus.running
            del pages
        log.info("job=%s range %d was the last: assembling %d range(s)", job_id, part, count)
        elapsed = None
        if record.started_at is not None:
            elapsed = (utcnow() - record.started_at).total_seconds()

        def stored_pages() -> Iterator[PageResult]:  # one page in memory at a time
            return (page for k in range(count) for page in files.read_range(k))

        return self._finish(record, files, stored_pages, part, elapsed)

    def _open(
        self,
        record: JobRecord,
        files: JobFiles,
        copy: str | None = None,
        path: Path | None = None,
    ) -> Document:
        """The job's input as a document: `path` (a source this run fetched), else the stored
        input (this run's copy of it with a bucket)."""
        dpi = record.options.dpi or self.settings.pdf_dpi
        return Document(path or files.fetch_input(copy), record.media_type or "", dpi)

    def _fetched(self, record: JobRecord, files: JobFiles) -> tuple[JobRecord, Path | None]:
        """A job by reference: its source fetched (worker/sources.py) and stored as its input,
        its media type and size recorded before any range may need them; an earlier run's
        fetch is kept (a worker lost after it)."""
        if record.media_type is not None and files.has_input():
            return record, None
        files.make_input_dir()
        scratch = scratch_path(files.input_dir, "fetch")
        fetched = fetch_into(self.sources, record, scratch)
        try:
            path = files.store_fetched(fetched.path)
        finally:
            scratch.unlink(missing_ok=True)
        self.store.set_source(record.job_id, fetched.media_type, fetched.size)
        update = {"media_type": fetched.media_type, "size_bytes": fetched.size}
        return record.model_copy(update=update), path

    @staticmethod
    def _numbers(record: JobRecord, document: Document) -> list[int]:
        try:
            return record.options.selected_pages(document.page_count)
        except ValueError as exc:
            raise PageLoadError(ErrorCode.invalid_pages, str(exc)) from exc

    def _recognize(
        self,
        record: JobRecord,
        document: Document,
        numbers: list[int],
        checks: JobChecks,
        part: int | None = None,
    ) -> list[PageResult]:
        """Read `numbers` of `document`, each page counted (read or failed) as it comes."""
        job_id, options = record.job_id, record.options
        where = "" if part is None else f" range {part}"
        results: list[PageResult] = []
        pages = document.pages(numbers, use_text_layer=options.text_layer is TextLayer.use)
        assert self.reader is not None
        t0 = time.perf_counter()
        with closing(self.reader.read(record, pages, checks)) as read:
            for done, result in enumerate(read, start=1):
                results.append(result)
                error = result.error
                self.store.page_done(
                    job_id,
                    result.index,
                    error.code if error else None,
                    engine=result.engine,
                    engine_seconds=result.engine_seconds,
                )
                if error is not None:
                    log.warning(
                        "job=%s%s page %d (%d/%d) failed: %s: %s",
                        job_id,
                        where,
                        result.index,
                        done,
                        len(numbers),
                        error.code,
                        error.message,
                    )
                else:
                    log.info(
                        "job=%s%s page %d (%d/%d): %d blocks by %s in %.2f s",
                        job_id,
                        where,
                        result.index,
                        done,
                        len(numbers),
                        len(result.blocks),
                        result.engine or result.source,
                        time.perf_counter() - t0,
                    )
                t0 = time.perf_counter()
        return results

    def _finish(
        self,
        record: JobRecord,
        files: JobFiles,
        pages: list[PageResult] | Callable[[], Iterator[PageResult]],
        part: int | None,
        elapsed: float | None,
    ) -> JobStatus | None:
        """Write the result and end the job: succeeded (failed pages and all), or failed with
        the first page's code when every page failed. `pages`: the pages in memory (one range),
        or a function giving them again from the stored ranges, one at a time (assembly)."""
        job_id = record.job_id
        total, failed, first, engine_names = 0, 0, None, set()
        for page in pages() if callable(pages) else pages:
            total += 1
            if page.error is not None:
                failed, first = failed + 1, first or page.error
            elif page.engine:
                engine_names.add(page.engine)
        if total and failed == total:
            assert first is not None
            message = first.message
            if total > 1:
                message = f"every page ({total}) failed; the first: {message}"
            return self.fail(job_id, first.code, message, part)
        engine = "+".join(sorted(engine_names) or [self.router.primary.name])
        with result_write(total, failed):
            if callable(pages):
                write_results_streamed(files, job_id, engine, pages)
            else:
                write_results(files, build_document(job_id, engine, pages))
            lease = self.settings.job_lease_seconds
            if not self.store.renew(job_id, self.holder, lease, part):
                # our lease lapsed (this process stalled) and recovery gave the job to another
                # run: that run owns the job's state now; the results written here are the same.
                log.warning("job=%s lost its lease while running; leaving its state alone", job_id)
                return None
            try:
                files.keep_source()  # format=pdf reads the pages from it (api/archives)
            except (OSError, StorageUnavailable) as exc:  # the result is safe; format=pdf fails
                log.warning("job=%s: the upload could not be kept for format=pdf: %s", job_id, exc)
            if not self.store.succeed(job_id):  # canceled after the last page, or gone
                return self._not_applied(job_id, files)
        if elapsed is not None:
            self.store.metrics.observe("job_duration_seconds", elapsed)
        files.remove_input()
        log.info(
            "job=%s succeeded: %d page(s), %d failed, in %.2f s",
            job_id,
            total,
            failed,
            elapsed or 0.0,
        )
        return JobStatus.succeeded

    def fail(
        self, job_id: str, code: ErrorCode, message: str, part: int | None = None
    ) -> JobStatus | None:
        """Fail the job this process holds (or holds range `part` of); a failed job keeps no
        upload and no partial result.

        Also called by the watchdog thread when a page overruns its time limit.
        """
        message = hide_dirs(
            message, {"TEMP_DIR": self.settings.temp_dir, "OUTPUT_DIR": self.settings.output_dir}
        )
        lease = self.settings.job_lease_seconds
        if not self.store.renew(job_id, self.holder, lease, part):
            # recovery gave the job to another run, whose files these are now
            log.warning("job=%s lost its lease; not failed (%s), files left alone", job_id, code)
            return None
        files = self._files(job_id)
        if not self.store.fail(job_id, code, message):
            return self._not_applied(job_id, files)
        log.warning("job=%s failed: %s: %s", job_id, code, message)
        files.remove_all()
        self._failed_here.add(job_id)
        return JobStatus.failed

    def took_failure(self, job_id: str) -> bool:
        """Did this process fail the job (once per failure: the task that ran it reports it to
        Celery; a redelivery finding the job failed already does not)?"""
        try:
            self._failed_here.remove(job_id)
        except KeyError:
            return False
        return True

    def _not_applied(self, job_id: str, files: JobFiles) -> JobStatus | None:
        """The store refused to end the job: it was canceled meanwhile, or its record is gone."""
        status = self.store.status(job_id)
        if status is JobStatus.canceled:
            return self._canceled(job_id, files)
        if status is None:
            self._gone(job_id)
            return None
        log.warning("job=%s is %s already; its state and files left alone", job_id, status.value)
        return status

    def _canceled(self, job_id: str, files: JobFiles) -> JobStatus:
        log.info("job=%s canceled; stopped and removed its files", job_id)
        files.remove_all()
        return JobStatus.canceled

    def _gone(self, job_id: str) -> None:
        """No record (it expired, or Redis lost it): nobody can see this job, but its files may
        still matter to someone; the retention sweep removes them after the grace period."""
        log.warning(
            "job=%s record is gone (expired or Redis lost it); stopping without touching its files",
            job_id,
        )
        return None


def _outcome_name(outcome: object) -> str | None:
    """What a run's span says it ended with: the job's status after it, if any."""
    return outcome.value if isinstance(outcome, JobStatus) else None
