"""JobService: what the routes call. Owns the flow upload -> record -> queue, and cleanup."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from celery import Celery
from kombu.exceptions import KombuError
from redis import RedisError
from starlette.concurrency import run_in_threadpool

from api.uploads import ReceivedUpload, receive_upload
from shared.errors import (
    InvalidOption,
    JobFailed,
    JobNotFound,
    QueueUnavailable,
    ResultNotReady,
    ServiceError,
    TooManyPages,
    UploadTooLarge,
)
from shared.jobs import JobRecord, JobStatus, JobStore, utcnow
from shared.options import JobOptions, parse_options
from shared.page_count import count_pages
from shared.queue import QUEUE, TASK_RUN
from shared.settings import Settings
from shared.storage import JobFiles
from shared.workers import WorkerBeat, WorkerRegistry

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
# multipart framing around the file: boundaries, part headers, small fields
_MULTIPART_SLACK = 64 * 1024


class JobService:
    def __init__(
        self, settings: Settings, store: JobStore, celery: Celery, workers: WorkerRegistry
    ) -> None:
        self.settings = settings
        self.store = store
        self.celery = celery
        self.workers = workers

    def _files(self, job_id: str) -> JobFiles:
        return JobFiles(self.settings.temp_dir, self.settings.output_dir, job_id)

    async def submit(
        self, body: AsyncIterator[bytes], content_type: str | None, content_length: str | None
    ) -> JobRecord:
        """Stream the upload to disk, record the job and enqueue it. Leaves nothing on failure."""
        limit = self.settings.max_upload_bytes
        if (
            content_length
            and content_length.isdigit()
            and (int(content_length) > limit + _MULTIPART_SLACK)
        ):
            raise UploadTooLarge(
                f"the request is larger than the limit of {limit} bytes",
                headers={"Connection": "close"},
            )
        job_id = uuid.uuid4().hex
        files = self._files(job_id)
        try:
            await run_in_threadpool(files.make_input_dir)
            upload = await receive_upload(body, content_type, files.input_path, limit)
            options = parse_options(upload.fields)
            pages_total = await run_in_threadpool(self._check_pages, upload, options)
            record = JobRecord(
                job_id=job_id,
                status=JobStatus.queued,
                created_at=utcnow(),
                filename=upload.filename,
                media_type=upload.media_type,
                size_bytes=upload.size,
                pages_total=pages_total,
                options=options,
            )
            await run_in_threadpool(self._record_and_enqueue, record)
        except ServiceError as exc:
            await run_in_threadpool(files.remove_all)
            # the body may be only partly read: close the connection instead of draining it
            exc.headers.setdefault("Connection", "close")
            raise
        except BaseException:
            await run_in_threadpool(files.remove_all)
            raise
        log.info("job=%s accepted: %s, %d bytes", job_id, record.media_type, record.size_bytes or 0)
        return record

    def _check_pages(self, upload: ReceivedUpload, options: JobOptions) -> int | None:
        """Refuse documents over MAX_PAGES and page ranges beyond the end, before queueing."""
        count = count_pages(upload.path, upload.media_type)
        if count is None:
            return None  # unreadable here: the worker fails the job with a precise code
        if count > self.settings.max_pages:
            raise TooManyPages(
                f"the document has {count} pages; the limit is MAX_PAGES={self.settings.max_pages}"
            )
        try:
            return len(options.selected_pages(count))
        except ValueError as exc:
            raise InvalidOption(f"pages: {exc}") from None

    def _record_and_enqueue(self, record: JobRecord) -> None:
        self.store.create(record)
        try:
            self.celery.send_task(TASK_RUN, args=[record.job_id], queue=QUEUE, retry=False)
        except (KombuError, RedisError, OSError) as exc:
            # if Redis is down the record expires with its TTL; the job was never queued
            with contextlib.suppress(QueueUnavailable):
                self.store.delete(record.job_id)
            raise QueueUnavailable(f"could not enqueue the job: {exc}") from exc

    def get(self, job_id: str) -> JobRecord:
        if not _JOB_ID.match(job_id):
            raise JobNotFound(f"no job with id {job_id!r}")
        return self.store.require(job_id)

    def result_path(self, job_id: str, fmt: str) -> Path:
        """The stored result file, once the job has succeeded."""
        record = self.get(job_id)
        if record.status is JobStatus.failed:
            error = record.error
            detail = f"{error.code}: {error.message}" if error else "unknown error"
            raise JobFailed(f"job {job_id} failed ({detail}); it has no result")
        if record.status is not JobStatus.succeeded:
            raise ResultNotReady(
                f"job {job_id} is {record.status.value}; poll GET /jobs/{job_id} until succeeded",
                headers={"Retry-After": "1"},
            )
        path = self._files(job_id).result_path(fmt)
        if not path.is_file():
            raise JobNotFound(f"the result of job {job_id} is gone (expired or deleted)")
        return path

    def live_workers(self) -> list[WorkerBeat]:
        try:
            self.store.redis.ping()
            return self.workers.live()
        except RedisError as exc:
            raise QueueUnavailable(f"Redis is unreachable: {exc}") from exc
