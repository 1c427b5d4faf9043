"""POST /jobs: the upload flow (stream to disk, record, enqueue into the queue of the job's
engine and priority), the Idempotency-Key and back-pressure (MAX_QUEUED_JOBS). Leaves nothing
behind when a submission fails.

Two plain paths: a new job without a key (`_submit_new`: the queue's room is checked before the
body is read) and a key claimed for a new job (`_submit_claimed`: room checked before the claim,
the upload fingerprinted before it is queued, the key bound to the job). A repeated key
answers with its job (`_replayed`). The key's stored value and its compare-and-set are the job
package's (shared/jobs/idempotency.py).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from celery import Celery
from kombu.exceptions import KombuError
from redis import RedisError
from starlette.concurrency import run_in_threadpool

from api.engine_choice import EngineChoice
from api.errors import (
    BadRequestBody,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    QueueFull,
    TooManyPages,
    UploadTooLarge,
)
from api.page_count import count_pages
from api.storage_calls import StorageCalls
from api.tenants import Tenants
from api.uploads import FormLimits, ReceivedUpload, receive_upload
from shared.api_keys import owner_fingerprint
from shared.callback_urls import CallbackRefused
from shared.errors import (
    InvalidCallbackUrl,
    InvalidOption,
    InvalidSourceUrl,
    QueueUnavailable,
    ServiceError,
)
from shared.jobs import Bound, JobRecord, JobStatus, JobStore, Pending, utcnow
from shared.jobs.dispatch import Dispatch
from shared.jobs.queues import ahead_of, queue_name
from shared.logs import current_job_id
from shared.options import JobOptions, Priority, parse_options
from shared.settings import Settings
from shared.source_urls import SourceRefused, shown_source, source_filename
from shared.storage import JobFiles, job_files
from shared.tracing import current_traceparent, tag_job

log = logging.getLogger(__name__)

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


class Submissions:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        celery: Celery,
        engines: EngineChoice,
        storage: StorageCalls,
        tenants: Tenants,
    ) -> None:
        self.settings = settings
        self.tenants = tenants  # the API key's quotas, checked once the pages are counted
        self.store = store
        self.storage = storage  # the upload's PUT and removals: never on the Redis threads
        self.celery = celery
        self.dispatch = Dispatch(store, celery, settings.fair_share)
        self.engines = engines
        self.form_limits = FormLimits.of(settings)

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
        if idempotency_key is None:
            record = await self._submit_new(body, content_type, content_length, scope)
            return Accepted(record)
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
                record = await self._submit_claimed(
                    body, content_type, content_length, scope, idempotency_key, claim
                )
                return Accepted(record)
            # a concurrent request with the same key got there first
            replay, previous = await run_in_threadpool(self._replay, scope, idempotency_key)
            if replay is None:
                raise IdempotencyKeyInUse(
                    "another request with this Idempotency-Key is being processed; retry",
                    headers={"Retry-After": "1", "Connection": "close"},
                )
        return await self._replayed(body, content_type, replay, previous)

    # -- a new job, no Idempotency-Key --
    async def _submit_new(
        self,
        body: AsyncIterator[bytes],
        content_type: str | None,
        content_length: str | None,
        scope: str | None,
    ) -> JobRecord:
        """Refuse (429) before reading while MAX_QUEUED_JOBS wait, then read, record, enqueue."""
        _, files = self._new_job()

        def prepare() -> None:
            self._check_queue_room()  # 429 first, as before any other check
            self._prepare_files(files, content_length)

        async with self._removed_on_error(files):
            upload, options = await self._receive(body, content_type, files, prepare)
            record = await run_in_threadpool(
                self._checked_record, files, upload, options, owner_fingerprint(scope)
            )
            await self._store_and_enqueue(files, record)
        return self._accepted(record)

    def _checked_record(
        self, files: JobFiles, upload: ReceivedUpload, options: JobOptions, owner: str | None
    ) -> JobRecord:
        """The queue's room checked, pages counted, the key's quotas met and counted: the
        record to queue (in a thread)."""
        self._check_queue_room(options.priority)
        record = self._new_record(files.job_id, upload, options, owner)
        self.tenants.admit(record)  # last: nothing after it may refuse without a give-back
        return record

    # -- a new job for a claimed Idempotency-Key --
    async def _submit_claimed(
        self,
        body: AsyncIterator[bytes],
        content_type: str | None,
        content_length: str | None,
        scope: str | None,
        key: str,
        claim: Pending,
    ) -> JobRecord:
        """Read, record and enqueue the upload, then bind the key to the job; release the key
        if that fails."""
        _, files = self._new_job()
        prepare = functools.partial(self._prepare_files, files, content_length)
        try:
            async with self._removed_on_error(files):
                upload, options = await self._receive(body, content_type, files, prepare)
                record, fingerprint = await run_in_threadpool(
                    self._checked_claimed, files, upload, options, owner_fingerprint(scope)
                )
                await self._store_and_enqueue(files, record)
        except BaseException:
            with contextlib.suppress(QueueUnavailable):
                await run_in_threadpool(self.store.idempotency.release, scope, key, claim)
            raise
        self._accepted(record)
        await run_in_threadpool(
            self.store.idempotency.bind, scope, key, claim, record.job_id, fingerprint
        )
        return record

    def _checked_claimed(
        self, files: JobFiles, upload: ReceivedUpload, options: JobOptions, owner: str | None
    ) -> tuple[JobRecord, str]:
        """As `_checked_record`, and the upload's fingerprint (before queueing: the worker
        removes the upload)."""
        fingerprint = _fingerprint(upload)  # first: nothing may fail after the quota's count
        return self._checked_record(files, upload, options, owner), fingerprint

    # -- a repeated Idempotency-Key --
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

    async def _replayed(
        self,
        body: AsyncIterator[bytes],
        content_type: str | None,
        replay: JobRecord,
        previous: Bound | None,
    ) -> Accepted:
        """The repeated request must be valid and the same: read it as a new upload would be
        read (same 4xx for a bad one), to a scratch file, and compare fingerprints."""
        fingerprint = await self._fingerprint_of(body, content_type)
        stored = previous.fingerprint if previous else None
        if stored and stored != fingerprint:
            raise IdempotencyKeyReused(
                f"this Idempotency-Key belongs to job {replay.job_id}, made from another upload "
                "(file or form fields); send a new key for a new job"
            )
        tag_job(replay.job_id)  # the request's span names the job (its trace is the first one)
        log.info("job=%s returned again for a repeated Idempotency-Key", replay.job_id)
        return Accepted(replay, replayed=True, headers={"Idempotent-Replayed": "true"})

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

    # -- the steps both new-job paths take --
    def _new_job(self) -> tuple[str, JobFiles]:
        job_id = uuid.uuid4().hex
        current_job_id.set(job_id)  # this request's own context: tags its log lines
        tag_job(job_id)
        return job_id, job_files(self.settings, job_id)

    def _prepare_files(self, files: JobFiles, content_length: str | None) -> None:
        """Before reading: refuse a declared body over the limit, then make the input folder."""
        limit = self.settings.max_upload_bytes
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

    async def _receive(
        self,
        body: AsyncIterator[bytes],
        content_type: str | None,
        files: JobFiles,
        prepare: Callable[[], None],
    ) -> tuple[ReceivedUpload, JobOptions]:
        """Stream the upload to the job's input (two thread hops besides the upload's writes:
        `prepare` before reading, the recording after) and parse its options."""
        upload = await receive_upload(
            body,
            content_type,
            files.input_path,
            self.settings.max_upload_bytes,
            prepare,
            self.form_limits,
        )
        if upload.source_url is not None:  # by reference: the worker fetches it into place
            await run_in_threadpool(files.discard_spool)
        return upload, parse_options(upload.option_fields)

    @contextlib.asynccontextmanager
    async def _removed_on_error(self, files: JobFiles) -> AsyncIterator[None]:
        """A submission that fails leaves no folder and no object; after a refusal the body may
        be only partly read: the connection closes instead of draining it. One that succeeds
        keeps no local spool when the upload went to a bucket."""
        try:
            yield
        except ServiceError as exc:
            await self.storage.run(files.remove_all)
            exc.headers.setdefault("Connection", "close")
            raise
        except BaseException:
            await self.storage.run(files.remove_all)
            raise
        await run_in_threadpool(files.drop_local)

    def _new_record(
        self, job_id: str, upload: ReceivedUpload, options: JobOptions, owner: str | None
    ) -> JobRecord:
        options = self._with_callback(options, owner)
        if upload.source_url is not None:
            return self._by_reference(job_id, upload.source_url, options, owner)
        return JobRecord(
            job_id=job_id,
            status=JobStatus.queued,
            created_at=utcnow(),
            filename=upload.filename,
            media_type=upload.media_type,
            size_bytes=upload.size,
            pages_total=self._check_pages(upload, options),
            options=options,
            owner=owner,
            queue=queue_name(self.engines.choose(options), options.priority),
            traceparent=current_traceparent(),  # the job's trace goes on in the worker
        )

    def _by_reference(
        self, job_id: str, url: str, options: JobOptions, owner: str | None
    ) -> JobRecord:
        """A job whose document the worker fetches: the source_url checked now (its host
        resolved, every address allowed; an s3:// bucket on the allow-list), its pages counted
        by the worker once it has the document (the key's quotas then: worker/sources.py)."""
        url = url.strip()
        try:
            self.settings.source_policy.check(url, tenant=owner)
        except SourceRefused as exc:
            raise InvalidSourceUrl(f"source_url: {exc}") from None
        return JobRecord(
            job_id=job_id,
            status=JobStatus.queued,
            created_at=utcnow(),
            filename=source_filename(url),
            source_url=url,
            options=options,
            owner=owner,
            queue=queue_name(self.engines.choose(options), options.priority),
        )

    def _with_callback(self, options: JobOptions, owner: str | None) -> JobOptions:
        """The job's callback_url (its own, else its key's callback=), checked against SSRF:
        its host resolved now, every address public or allowed (CALLBACK_ALLOWED_NETWORKS)."""
        entry = self.settings.key_ring.for_owner(owner)
        url = options.callback_url or (entry.callback_url if entry else None)
        if url is None:
            return options
        field = "callback_url" if options.callback_url else "callback_url (the API key's default)"
        if not ((entry and entry.secret) or self.settings.webhook_secret):
            raise InvalidCallbackUrl(
                f"{field}: callbacks are off, no signing secret is set (WEBHOOK_SECRET)"
            )
        try:
            self.settings.callback_policy.check(url, tenant=owner)
        except CallbackRefused as exc:
            raise InvalidCallbackUrl(f"{field}: {exc}") from None
        return options.model_copy(update={"callback_url": url})

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

    async def _store_and_enqueue(self, files: JobFiles, record: JobRecord) -> None:
        """The upload stored (the bucket: one PUT, or parts streamed from the spool; on the
        storage pool) before the job exists, so a worker never meets a job without its input.
        A job that is not queued after all counts nothing against its key's quotas."""
        try:
            if record.source_url is None:  # by reference, the worker stores what it fetched
                await self.storage.run(files.store_input)
            await run_in_threadpool(self._enqueue, record)
        except BaseException:
            with contextlib.suppress(QueueUnavailable, RedisError):
                await run_in_threadpool(self.tenants.give_back, record)
            raise

    def _enqueue(self, record: JobRecord) -> None:
        """Record the job and queue it: straight, or into its key's lane for the fair share
        (FAIR_SHARE, shared/jobs/fair.py: record and admission in one step)."""
        try:
            self.dispatch.submit(record)
        except (KombuError, RedisError, OSError, QueueUnavailable) as exc:
            # the job may not be queued: its record goes, if it was written (a queued record
            # has no TTL, so if Redis is down now the delete fails and the record stays
            # `queued` until canceled)
            with contextlib.suppress(QueueUnavailable):
                self.store.delete(record.job_id)
            if isinstance(exc, QueueUnavailable):
                raise
            raise QueueUnavailable(f"could not enqueue the job: {exc}") from exc

    def _accepted(self, record: JobRecord) -> JobRecord:
        if record.source_url is not None:
            log.info(
                "job=%s accepted by reference: %s, tenant %s",
                record.job_id,
                shown_source(record.source_url),
                self.tenants.label(record.owner),
            )
            return record
        log.info(
            "job=%s accepted: %s, %d bytes, tenant %s",
            record.job_id,
            record.media_type,
            record.size_bytes or 0,
            self.tenants.label(record.owner),
        )
        return record

    def _check_queue_room(self, priority: Priority = Priority.high) -> None:
        """Back-pressure: refuse a new job (429) while MAX_QUEUED_JOBS wait at its priority or
        above (every engine), so a `batch` flood never refuses a `high` job. Before the form
        is read the priority is unknown: then only what even a `high` job meets is checked."""
        waiting = sum(self.store.queue_depths(ahead_of(priority)).values())
        if waiting >= self.settings.max_queued_jobs:
            scope = "" if priority is Priority.batch else f" at priority {priority.value} or above"
            raise QueueFull(
                f"{waiting} jobs are waiting{scope}, the limit is MAX_QUEUED_JOBS="
                f"{self.settings.max_queued_jobs}; retry after a while",
                headers={"Retry-After": str(QUEUE_FULL_RETRY_AFTER), "Connection": "close"},
            )


def _fingerprint(upload: ReceivedUpload) -> str:
    """What makes two uploads the same request: the file's bytes and the form fields (but
    `priority`); by reference, the fields alone (source_url among them)."""
    digest = hashlib.sha256()
    if upload.source_url is None:
        with open(upload.path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    # priority says when, not what: a repeat sent at another priority finds the same job
    fields = {k: v for k, v in upload.fields.items() if k != "priority"}
    digest.update(json.dumps(sorted(fields.items())).encode())
    return digest.hexdigest()
