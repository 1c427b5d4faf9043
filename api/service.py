"""JobAccess: reading a job (its record, result and image files), cancelling it, and who may
do either (ownership: with API_KEYS set, only the key that created a job sees it).

Submitting is api/submitting.py; /ready's live workers and /metrics are api/readiness.py.
"""

from __future__ import annotations

import logging
import re

from starlette.concurrency import run_in_threadpool

from api.archives.produce import ARCHIVE_FORMATS, archive_file
from api.errors import (
    ImageNotFound,
    JobAlreadyFinished,
    JobCanceled,
    JobFailed,
    ResultNotReady,
    result_gone,
)
from api.file_links import FileLinks
from api.page_images import page_image
from api.schemas import JobView
from api.storage_calls import StorageCalls
from shared.api_keys import owner_fingerprint
from shared.errors import JobNotFound, StorageUnavailable
from shared.jobs import JobEvent, JobRecord, JobStatus, JobStore
from shared.jobs.webhooks import DeliveryState
from shared.settings import Settings
from shared.storage import JobFiles, StoredFile, job_files

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")

# how long GET /jobs/{id} waits for the bucket to say a succeeded job's result is there
RESULT_CHECK_SECONDS = 2.0


class JobAccess:
    def __init__(self, settings: Settings, store: JobStore, storage: StorageCalls) -> None:
        self.settings = settings
        self.store = store
        self.storage = storage  # every job-file call runs there, never on the Redis threads
        self.links = FileLinks(settings, storage)  # ?delivery=url: pre-signed URLs

    def _files(self, job_id: str) -> JobFiles:
        return job_files(self.settings, job_id)

    async def cancel(self, job_id: str, api_key: str | None = None) -> JobRecord:
        """Cancel a queued job at once (upload removed), a running one before its next page."""
        before = await run_in_threadpool(self._cancel, job_id, api_key)
        if before is JobStatus.queued:
            # no worker has it: the worker that takes its message finds it canceled and skips it
            await self.storage.run(self._files(job_id).remove_all)
        log.info("job=%s canceled (was %s)", job_id, before.value)
        return await run_in_threadpool(self.store.require, job_id)

    def _cancel(self, job_id: str, api_key: str | None) -> JobStatus:
        self.get(job_id, api_key)  # unknown, or another key's job: 404 before touching it
        before = self.store.cancel(job_id)
        if before is None:
            raise JobNotFound(f"no job with id {job_id!r} (unknown or expired)")
        if before in (JobStatus.succeeded, JobStatus.failed):
            raise JobAlreadyFinished(f"job {job_id} already {before.value}; nothing to cancel")
        return before

    def get(self, job_id: str, api_key: str | None = None) -> JobRecord:
        """The job, if `api_key` may see it: with API_KEYS set, only the key that created it.

        Another key's job answers exactly like an unknown one, so ids cannot be probed.
        """
        if not _JOB_ID.match(job_id):
            raise JobNotFound(f"no job with id {job_id!r}")
        return self._visible(job_id, self.store.get(job_id), api_key)

    def history(self, job_id: str, api_key: str | None = None) -> tuple[JobRecord, list[JobEvent]]:
        """The job (as `get`) and its events, read together: the record is the state right
        after the last event (status streams, api/watching.py)."""
        if not _JOB_ID.match(job_id):
            raise JobNotFound(f"no job with id {job_id!r}")
        record, events = self.store.history(job_id)
        return self._visible(job_id, record, api_key), events

    def view(self, record: JobRecord) -> JobView:
        """The job as GET /jobs/{id} shows it (status streams and ?wait show the same)."""
        return JobView.of(record, self.callback_of(record))

    def _visible(self, job_id: str, record: JobRecord | None, api_key: str | None) -> JobRecord:
        if record is None or (
            self.settings.api_key_set and record.owner != owner_fingerprint(api_key)
        ):
            raise JobNotFound(f"no job with id {job_id!r} (unknown or expired)")
        return record

    def callback_of(self, record: JobRecord) -> DeliveryState | None:
        """The job's latest webhook delivery (None: none yet, or the job has no callback)."""
        if not record.options.callback_url:
            return None
        return self.store.webhooks.latest_for_job(record.job_id)

    async def result_file(self, job_id: str, fmt: str, api_key: str | None = None) -> StoredFile:
        """The stored result file, once the job has succeeded (pdf/hocr/alto: rendered on the
        first request, then kept with the result)."""
        record = await run_in_threadpool(self._succeeded, job_id, api_key)
        return await self.storage.run(self._result_of, record, fmt)

    def _result_of(self, record: JobRecord, fmt: str) -> StoredFile:
        files = self._files(record.job_id)
        if fmt in ARCHIVE_FORMATS:
            return archive_file(files, fmt, record.media_type or "")
        stored = files.stored_result(fmt)
        if stored is None:
            raise result_gone(record.job_id)
        return stored

    async def image_file(self, job_id: str, name: str, api_key: str | None = None) -> StoredFile:
        """A stored image crop of the job's result (linked from its markdown)."""
        await run_in_threadpool(self._succeeded, job_id, api_key)
        return await self.storage.run(self._image_of, job_id, name)

    def _image_of(self, job_id: str, name: str) -> StoredFile:
        files = self._files(job_id)
        stored = files.stored_image(name)
        if stored is None:
            if not files.has_result("json"):
                raise result_gone(job_id)
            raise ImageNotFound(f"job {job_id} has no image {name!r}")
        return stored

    async def page_image(self, job_id: str, index: int, api_key: str | None = None) -> StoredFile:
        """A picture of page `index` of the job's source, upright (rendered on first request)."""
        record = await run_in_threadpool(self._succeeded, job_id, api_key)
        return await self.storage.run(
            page_image, self._files(job_id), index, record.media_type or ""
        )

    async def check_result(self, record: JobRecord) -> None:
        """For a succeeded job, prove its result is still stored (ResultGone if not): a job
        whose files were removed must not read as succeeded. A bucket that does not answer
        within RESULT_CHECK_SECONDS leaves the record's word standing: status is Redis's."""
        if record.status is not JobStatus.succeeded:
            return
        files = self._files(record.job_id)
        try:
            stored = await self.storage.answer_within(
                RESULT_CHECK_SECONDS, files.has_result, "json"
            )
        except StorageUnavailable as exc:
            log.warning("job=%s result not checked: %s", record.job_id, exc)
            return
        if not stored:
            raise result_gone(record.job_id)

    def _succeeded(self, job_id: str, api_key: str | None) -> JobRecord:
        """The job's record if it succeeded; else the error a request for its result gets."""
        record = self.get(job_id, api_key)
        if record.status is JobStatus.failed:
            error = record.error
            detail = f"{error.code}: {error.message}" if error else "unknown error"
            raise JobFailed(f"job {job_id} failed ({detail}); it has no result")
        if record.status is JobStatus.canceled:
            raise JobCanceled(f"job {job_id} was canceled; it has no result")
        if record.status is not JobStatus.succeeded:
            raise ResultNotReady(
                f"job {job_id} is {record.status.value}; poll GET /jobs/{job_id} until succeeded",
                headers={"Retry-After": "1"},
            )
        return record
