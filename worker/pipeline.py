"""One job from queued to succeeded/failed: load pages, recognize, write results, update state."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from shared.jobs import JobStatus, JobStore
from shared.results import PageResult
from shared.settings import Settings
from shared.storage import JobFiles
from worker.engines import EngineError, OcrEngine
from worker.pages import Document, PageLoadError
from worker.results import build_document, page_markdown, write_results

log = logging.getLogger(__name__)


class JobCanceledWhileRunning(Exception):
    """DELETE /jobs/{id} arrived while the job ran: stop before the next page."""


@dataclass
class JobRunner:
    """Everything a job needs, built once at boot: settings, the store and the warm engine."""

    settings: Settings
    store: JobStore
    engine: OcrEngine

    def run(self, job_id: str) -> JobStatus | None:
        """Run one job; safe to call again for the same id (same outputs, atomic writes)."""
        record = self.store.get(job_id)
        files = JobFiles(self.settings.temp_dir, self.settings.output_dir, job_id)
        if record is None:
            log.warning("job=%s has no record (expired or deleted); dropping it", job_id)
            files.remove_input()
            return None
        if record.status.terminal:
            log.info("job=%s already %s; nothing to do", job_id, record.status.value)
            return record.status
        if record.status is JobStatus.running:
            log.warning("job=%s was running on a worker that died; running it again", job_id)
        if not self.store.mark_running(job_id):
            return self._canceled(job_id, files)
        started = time.perf_counter()
        try:
            pages = self._recognize(job_id, files, record.media_type or "")
            document = build_document(job_id, self.engine.name, pages)
            write_results(files, document)
        except JobCanceledWhileRunning:
            return self._canceled(job_id, files)
        except (PageLoadError, EngineError) as exc:
            return self._fail(job_id, files, exc.code, exc.message)
        except FileNotFoundError:
            return self._fail(job_id, files, "input_missing", "the uploaded file is gone")
        except Exception as exc:
            log.exception("job=%s crashed", job_id)
            return self._fail(job_id, files, "internal_error", f"{type(exc).__name__}: {exc}")
        if not self.store.mark_succeeded(job_id):  # canceled after the last page
            return self._canceled(job_id, files)
        files.remove_input()
        log.info(
            "job=%s succeeded: %d page(s) in %.2f s",
            job_id,
            len(pages),
            time.perf_counter() - started,
        )
        return JobStatus.succeeded

    def _recognize(self, job_id: str, files: JobFiles, media_type: str) -> list[PageResult]:
        document = Document(files.input_path, media_type)
        try:
            self.store.set_pages_total(job_id, document.page_count)
            results = []
            for page in document.pages():
                if self.store.is_canceled(job_id):
                    raise JobCanceledWhileRunning(job_id)
                t0 = time.perf_counter()
                recognition = self.engine.recognize(page.image)
                blocks = recognition.blocks
                results.append(
                    PageResult(
                        index=page.index,
                        width=page.image.width,
                        height=page.image.height,
                        dpi=page.dpi,
                        blocks=blocks,
                        markdown=recognition.markdown
                        if recognition.markdown is not None
                        else page_markdown(blocks),
                        text="\n".join(b.text for b in blocks),
                    )
                )
                self.store.set_pages_done(job_id, page.index)
                log.info(
                    "job=%s page %d/%d: %d blocks in %.2f s",
                    job_id,
                    page.index,
                    document.page_count,
                    len(blocks),
                    time.perf_counter() - t0,
                )
            return results
        finally:
            document.close()

    def _fail(self, job_id: str, files: JobFiles, code: str, message: str) -> JobStatus:
        log.warning("job=%s failed: %s: %s", job_id, code, message)
        self.store.mark_failed(job_id, code, message)
        files.remove_input()
        return JobStatus.failed

    def _canceled(self, job_id: str, files: JobFiles) -> JobStatus:
        log.info("job=%s canceled; stopped and removed its files", job_id)
        files.remove_all()
        return JobStatus.canceled
