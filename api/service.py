"""JobService: what the routes call. Owns the flow upload -> record -> queue, and cleanup."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery
from kombu.exceptions import KombuError
from redis import RedisError
from starlette.concurrency import run_in_threadpool

from api.uploads import FormLimits, ReceivedUpload, receive_upload
from shared.archives.produce import ARCHIVE_FORMATS, archive_path
from shared.errors import (
    BadRequestBody,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    ImageNotFound,
    InvalidOption,
    JobAlreadyFinished,
    JobCanceled,
    JobFailed,
    JobNotFound,
    QueueFull,
    QueueUnavailable,
    ResultNotReady,
    ServiceError,
    TooManyPages,
    UploadTooLarge,
)
from shared.jobs import (
    Bound,
    JobRecord,
    JobStatus,
    JobStore,
    Pending,
    WorkerBeat,
    WorkerRegistry,
    utcnow,
)
from shared.logs import current_job_id
from shared.metrics import Metrics
from shared.options import JobOptions, parse_options
from shared.page_count import count_pages
from shared.queue import QUEUE, TASK_RUN
from shared.settings import Settings
from shared.storage import JobFiles, is_image_name

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
# Idempotency-Key: printable ASCII, like the IETF draft's examples (UUIDs, content hashes)
IDEMPOTENCY_KEY_PATTERN = "^[!-~]{1,255}$"  # ! to ~: 0x21-0x7e
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
QUEUE_FULL_RETRY_AFTER = 2


@dataclass
class Accepted:
    """The job a POST /jobs answers with; `replayed` when an Idempotency-Key found it."""

    record: JobRecord
    replayed: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class JobService:
    def __init__(
        self, settings: Settings, store: JobStore, celery: Celery, workers: WorkerRegistry
    ) -> None:
        self.settings = settings
        self.store = store
        self.celery = celery
        self.workers = workers
        self.metrics = Metrics(store, workers)
        self.form_limits = FormLimits.of(settings)

    def _files(self, job_id: str) -> JobFiles:
        return JobFiles(self.settings.temp_dir, self.settings.output_dir, job_id)

    async def submit(
        self,
        body: AsyncIterator[bytes],
        content_type: str | None,
        content_length: str | None,
        on_received: Callable[[ReceivedUpload], None] | None = None,
        owner: str | None = None,
        check_queue_room: bool = False,
    ) -> JobRecord:
        """Stream the upload to disk, record the job and enqueue it. Leaves nothing on failure.

        `on_received` sees the complete upload before the job is queued (in a thread); `owner`
        is the creating API key's fingerprint, stored with the job. `check_queue_room` refuses
        the upload (429) before reading it while MAX_QUEUED_JOBS wait.
        """
        limit = self.settings.max_upload_bytes
        job_id = uuid.uuid4().hex
        current_job_id.set(job_id)  # this request's own context: tags its log lines
        files = self._files(job_id)

        def prepare() -> None:
            if check_queue_room:
                self._check_queue_room()  # 429 first, as before any other check
            if (
                content_length
                and content_length.isdigit()
                and (int(content_length) > limit + self.form_limits.max_form_bytes)
            ):
                raise UploadTooLarge(
                    f"the request is larger than the limit of {limit} bytes",
                    headers={"Connection": "close"},
                )
            files.make_input_dir()

        # two thread hops besides the upload's writes: one before reading, one after
        try:
            upload = await receive_upload(
                body, content_type, files.input_path, limit, prepare, self.form_limits
            )
            options = parse_options(upload.fields)
            record = await run_in_threadpool(
                self._record_upload, job_id, upload, options, owner, on_received
            )
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

    def _record_upload(
        self,
        job_id: str,
        upload: ReceivedUpload,
        options: JobOptions,
        owner: str | None,
        on_received: Callable[[ReceivedUpload], None] | None,
    ) -> JobRecord:
        """Count pages, record the job and enqueue it (blocking: runs in a thread)."""
        record = JobRecord(
            job_id=job_id,
            status=JobStatus.queued,
            created_at=utcnow(),
            filename=upload.filename,
            media_type=upload.media_type,
            size_bytes=upload.size,
            pages_total=self._check_pages(upload, options),
            options=options,
            owner=owner,
        )
        if on_received is not None:
            on_received(upload)
        self._record_and_enqueue(record)
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

    async def accept(
        self,
        body: AsyncIterator[bytes],
        content_type: str | None,
        content_length: str | None,
        *,
        idempotency_key: str | None = None,
        scope: str | None = None,
    ) -> Accepted:
        """POST /jobs: the existing job for a repeated Idempotency-Key, else a new one.

        A replay is answered even when the queue is full; only new jobs meet MAX_QUEUED_JOBS.
        `scope` (the caller's API key) keeps one client's keys from finding another's jobs.
        """
        owner = owner_fingerprint(scope)
        if idempotency_key is None:
            return Accepted(
                await self.submit(
                    body, content_type, content_length, owner=owner, check_queue_room=True
                )
            )
        if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise BadRequestBody(
                "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces",
                headers={"Connection": "close"},
            )
        replay, previous = await run_in_threadpool(self._replay, scope, idempotency_key)
        if replay is None:
            await run_in_threadpool(self._check_queue_room)
            claim = await run_in_threadpool(
                self.store.idempotency.claim, scope, idempotency_key, previous
            )
            if claim is not None:
                return Accepted(
                    await self._submit_claimed(
                        body, content_type, content_length, scope, idempotency_key, claim
                    )
                )
            # a concurrent request with the same key got there first
            replay, previous = await run_in_threadpool(self._replay, scope, idempotency_key)
            if replay is None:
                raise IdempotencyKeyInUse(
                    "another request with this Idempotency-Key is being processed; retry",
                    headers={"Retry-After": "1", "Connection": "close"},
                )
        # the repeated request must be valid and the same: read it as a new upload would be
        # read (same 4xx for a bad one), to a scratch file, and compare fingerprints
        fingerprint = await self._fingerprint_of(body, content_type)
        stored = previous.fingerprint if previous else None
        if stored and stored != fingerprint:
            raise IdempotencyKeyReused(
                f"this Idempotency-Key belongs to job {replay.job_id}, made from another upload "
                "(file or form fields); send a new key for a new job"
            )
        log.info("job=%s returned again for a repeated Idempotency-Key", replay.job_id)
        return Accepted(replay, replayed=True, headers={"Idempotent-Replayed": "true"})

    def _replay(self, scope: str | None, key: str) -> tuple[JobRecord | None, Bound | None]:
        """(the job to answer with, the key's current binding to claim from when there is none).

        A canceled job, or one that expired, frees its key: submitting again makes a new job.
        """
        bound = self.store.idempotency.lookup(scope, key)
        if bound is None:
            return None, None
        if isinstance(bound, Pending):
            raise IdempotencyKeyInUse(
                "another request with this Idempotency-Key is being processed; retry",
                headers={"Retry-After": "1", "Connection": "close"},
            )
        record = self.store.get(bound.job_id)
        if record is None or record.status is JobStatus.canceled:
            return None, bound
        return record, bound

    async def _submit_claimed(
        self,
        body: AsyncIterator[bytes],
        content_type: str | None,
        content_length: str | None,
        scope: str | None,
        key: str,
        claim: Pending,
    ) -> JobRecord:
        fingerprints: list[str] = []
        try:
            record = await self.submit(
                body,
                content_type,
                content_length,
                on_received=lambda upload: fingerprints.append(_fingerprint(upload)),
                owner=owner_fingerprint(scope),
            )
        except BaseException:
            with contextlib.suppress(QueueUnavailable):
                await run_in_threadpool(self.store.idempotency.release, scope, key, claim)
            raise
        await run_in_threadpool(
            self.store.idempotency.bind, scope, key, claim, record.job_id, fingerprints[0]
        )
        return record

    async def _fingerprint_of(self, body: AsyncIterator[bytes], content_type: str | None) -> str:
        """Parse a replayed upload to a scratch file (never a job's folder) and fingerprint it."""
        scratch = self.settings.temp_dir / f".replay-{uuid.uuid4().hex}"
        try:
            upload = await receive_upload(
                body, content_type, scratch, self.settings.max_upload_bytes, None, self.form_limits
            )
            return await run_in_threadpool(_fingerprint, upload)
        except ServiceError as exc:
            exc.headers.setdefault("Connection", "close")
            raise
        finally:
            await run_in_threadpool(scratch.unlink, True)

    def _check_queue_room(self) -> None:
        waiting = self.store.queue_depth()
        if waiting >= self.settings.max_queued_jobs:
            raise QueueFull(
                f"{waiting} jobs are waiting, the limit is MAX_QUEUED_JOBS="
                f"{self.settings.max_queued_jobs}; retry after a while",
                headers={"Retry-After": str(QUEUE_FULL_RETRY_AFTER), "Connection": "close"},
            )

    def cancel(self, job_id: str, api_key: str | None = None) -> JobRecord:
        """Cancel a queued job at once (upload removed), a running one before its next page."""
        self.get(job_id, api_key)  # unknown, or another key's job: 404 before touching it
        before = self.store.cancel(job_id)
        if before is None:
            raise JobNotFound(f"no job with id {job_id!r} (unknown or expired)")
        if before in (JobStatus.succeeded, JobStatus.failed):
            raise JobAlreadyFinished(f"job {job_id} already {before.value}; nothing to cancel")
        if before is JobStatus.queued:
            # no worker has it: the worker that takes its message finds it canceled and skips it
            self._files(job_id).remove_all()
        log.info("job=%s canceled (was %s)", job_id, before.value)
        return self.store.require(job_id)

    def _record_and_enqueue(self, record: JobRecord) -> None:
        self.store.create(record)
        try:
            self.celery.send_task(TASK_RUN, args=[record.job_id], queue=QUEUE, retry=False)
        except (KombuError, RedisError, OSError) as exc:
            # the job was never queued: its record goes (a queued record has no TTL, so if
            # Redis is down now the delete fails and the record stays `queued` until canceled)
            with contextlib.suppress(QueueUnavailable):
                self.store.delete(record.job_id)
            raise QueueUnavailable(f"could not enqueue the job: {exc}") from exc

    def get(self, job_id: str, api_key: str | None = None) -> JobRecord:
        """The job, if `api_key` may see it: with API_KEYS set, only the key that created it.

        Another key's job answers exactly like an unknown one, so ids cannot be probed.
        """
        if not _JOB_ID.match(job_id):
            raise JobNotFound(f"no job with id {job_id!r}")
        record = self.store.require(job_id)
        if self.settings.api_key_set and record.owner != owner_fingerprint(api_key):
            raise JobNotFound(f"no job with id {job_id!r} (unknown or expired)")
        return record

    def result_path(self, job_id: str, fmt: str, api_key: str | None = None) -> Path:
        """The stored result file, once the job has succeeded (pdf/hocr/alto: rendered on the
        first request, then kept with the result)."""
        record = self._succeeded(job_id, api_key)
        if fmt in ARCHIVE_FORMATS:
            return archive_path(self._files(job_id), fmt, record.media_type or "")
        path = self._files(job_id).result_path(fmt)
        if not path.is_file():
            raise JobNotFound(f"the result of job {job_id} is gone (expired or deleted)")
        return path

    def image_path(self, job_id: str, name: str, api_key: str | None = None) -> Path:
        """A stored image crop of the job's result (linked from its markdown)."""
        self._succeeded(job_id, api_key)
        files = self._files(job_id)
        path = files.image_path(name) if is_image_name(name) else None
        if path is None or not path.is_file():
            if not files.result_path("json").is_file():
                raise JobNotFound(f"the result of job {job_id} is gone (expired or deleted)")
            raise ImageNotFound(f"job {job_id} has no image {name!r}")
        return path

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

    def live_workers(self) -> list[WorkerBeat]:
        try:
            self.store.ping()
            return self.workers.live()
        except RedisError as exc:
            raise QueueUnavailable(f"Redis is unreachable: {exc}") from exc


def owner_fingerprint(api_key: str | None) -> str | None:
    """What a job record keeps of the key that created it: a hash, so Redis never holds keys."""
    if api_key is None:
        return None
    return hashlib.sha256(f"ocrq-owner\n{api_key}".encode()).hexdigest()


def _fingerprint(upload: ReceivedUpload) -> str:
    """What makes two uploads the same request: the file's bytes and the form fields."""
    digest = hashlib.sha256()
    with open(upload.path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    digest.update(json.dumps(sorted(upload.fields.items())).encode())
    return digest.hexdigest()
