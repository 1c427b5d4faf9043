"""One job from queued to succeeded/failed: load pages, recognize, write results, update state."""

from __future__ import annotations

import logging
import time
from contextlib import closing
from dataclasses import dataclass

from shared.error_codes import ErrorCode
from shared.errors import JobNotFound, StorageUnavailable
from shared.jobs import Claim, JobRecord, JobStatus, JobStore
from shared.logs import job_context
from shared.options import TextLayer
from shared.results import PageResult
from shared.settings import Settings
from shared.storage import JobFiles, hide_dirs, is_disk_full, job_files
from worker.engines import EngineError
from worker.page_reading import JobCanceledWhileRunning, JobChecks, PageReader, SerialReader
from worker.pages import Document, PageLoadError
from worker.results import build_document, write_results
from worker.routing import EngineRouter
from worker.watchdog import JobTimedOut, JobWatchdog

log = logging.getLogger(__name__)


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

    def __post_init__(self) -> None:
        if self.reader is None:
            self.reader = SerialReader(self.router, self.store.metrics)

    def run(self, job_id: str) -> JobStatus | None:
        """Run one job; safe to call again for the same id (same outputs, atomic writes).

        The job's lease admits one runner at a time: a redelivered message for a job another
        live worker holds is dropped, and a dead worker's job comes back through recovery.
        """
        files = self._files(job_id)
        claim = self.store.claim(job_id, self.holder, self.settings.job_lease_seconds)
        if claim is Claim.missing:
            self._gone(job_id)
            return None
        if claim is Claim.busy:
            log.info("job=%s is held by another live worker; dropping this delivery", job_id)
            return None
        if claim is Claim.canceled:
            return self._canceled(job_id, files)
        if claim is not Claim.claimed:
            log.info("job=%s already %s; nothing to do", job_id, claim.value)
            return JobStatus(claim.value)
        try:
            with self.watch.watching(job_id), job_context(job_id):
                return self._execute(job_id, files)
        finally:
            self.store.release(job_id, self.holder)
            files.drop_local()  # this run's copy of the input (STORAGE_URL=s3://)

    def _files(self, job_id: str) -> JobFiles:
        return job_files(self.settings, job_id)

    def _execute(self, job_id: str, files: JobFiles) -> JobStatus | None:
        record = self.store.get(job_id)
        if record is None:
            self._gone(job_id)
            return None
        if record.attempts > 1:
            log.warning("job=%s attempt %d: its previous worker died", job_id, record.attempts)
        started = time.perf_counter()
        try:
            pages = self._recognize(record, files)
            engines = sorted({p.engine for p in pages if p.engine}) or [self.router.primary.name]
            document = build_document(job_id, "+".join(engines), pages)
            write_results(files, document)
        except JobCanceledWhileRunning:
            return self._canceled(job_id, files)
        except JobNotFound:
            self._gone(job_id)
            return None
        except JobTimedOut as exc:
            return self.fail(job_id, ErrorCode.timeout, str(exc))
        except (PageLoadError, EngineError) as exc:
            return self.fail(job_id, exc.code, exc.message)
        except StorageUnavailable as exc:  # the bucket's name and keys stay in the log
            log.error("job=%s: %s", job_id, exc.message)
            message = "the job's files could not be read or stored in the bucket (STORAGE_URL)"
            return self.fail(job_id, exc.code, message)
        except Exception as exc:  # a job must end failed, never kill the worker
            if isinstance(exc, OSError) and is_disk_full(exc):
                reason = exc.strerror or str(exc)
                message = f"the result cannot be stored: {reason}"
                return self.fail(job_id, ErrorCode.insufficient_storage, message)
            log.exception("job=%s crashed", job_id)
            return self.fail(job_id, ErrorCode.internal_error, f"{type(exc).__name__}: {exc}")
        if not self.store.renew(job_id, self.holder, self.settings.job_lease_seconds):
            # our lease lapsed (this process stalled) and recovery gave the job to another run:
            # that run owns the job's state now; the results written here are the same.
            log.warning("job=%s lost its lease while running; leaving its state alone", job_id)
            return None
        try:
            files.keep_source()  # format=pdf reads the pages from it (api/archives)
        except (OSError, StorageUnavailable) as exc:  # the result is safe; only format=pdf fails
            log.warning("job=%s: the upload could not be kept for format=pdf: %s", job_id, exc)
        if not self.store.succeed(job_id):  # canceled after the last page, or gone
            return self._not_applied(job_id, files)
        self.store.metrics.observe("job_duration_seconds", time.perf_counter() - started)
        files.remove_input()
        log.info(
            "job=%s succeeded: %d page(s) in %.2f s",
            job_id,
            len(pages),
            time.perf_counter() - started,
        )
        return JobStatus.succeeded

    def _recognize(self, record: JobRecord, files: JobFiles) -> list[PageResult]:
        job_id, options = record.job_id, record.options
        document = Document(
            files.fetch_input(), record.media_type or "", options.dpi or self.settings.pdf_dpi
        )
        try:
            try:
                numbers = options.selected_pages(document.page_count)
            except ValueError as exc:
                raise PageLoadError(ErrorCode.invalid_pages, str(exc)) from exc
            self.store.set_pages_total(job_id, len(numbers))
            results: list[PageResult] = []
            pages = document.pages(numbers, use_text_layer=options.text_layer is TextLayer.use)
            checks = JobChecks(job_id, self.store, self.watch)
            assert self.reader is not None
            t0 = time.perf_counter()
            with closing(self.reader.read(record, pages, checks)) as read:
                for done, result in enumerate(read, start=1):
                    results.append(result)
                    self.store.set_pages_done(job_id, done)
                    log.info(
                        "job=%s page %d (%d/%d): %d blocks by %s in %.2f s",
                        job_id,
                        result.index,
                        done,
                        len(numbers),
                        len(result.blocks),
                        result.engine or result.source,
                        time.perf_counter() - t0,
                    )
                    t0 = time.perf_counter()
            return results
        finally:
            document.close()

    def fail(self, job_id: str, code: ErrorCode, message: str) -> JobStatus | None:
        """Fail the job this process holds; a failed job keeps no upload and no partial result.

        Also called by the watchdog thread when a page overruns its time limit.
        """
        message = hide_dirs(
            message, {"TEMP_DIR": self.settings.temp_dir, "OUTPUT_DIR": self.settings.output_dir}
        )
        if not self.store.renew(job_id, self.holder, self.settings.job_lease_seconds):
            # recovery gave the job to another run, whose files these are now
            log.warning("job=%s lost its lease; not failed (%s), files left alone", job_id, code)
            return None
        files = self._files(job_id)
        if not self.store.fail(job_id, code, message):
            return self._not_applied(job_id, files)
        log.warning("job=%s failed: %s: %s", job_id, code, message)
        files.remove_all()
        return JobStatus.failed

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
