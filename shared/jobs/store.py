"""JobStore: the only way a job's state changes, and how it is read back."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import redis

from shared.error_codes import ErrorCode
from shared.errors import JobNotFound
from shared.jobs import keys, queues, scripts
from shared.jobs.connection import (
    redis_errors_as_unavailable,
    stream_entries,
    text,
    text_fields,
    text_or_none,
)
from shared.jobs.events import JobEvent
from shared.jobs.fair import FairShare, tenant_of
from shared.jobs.idempotency import Idempotency
from shared.jobs.metrics import JobMetrics
from shared.jobs.outcomes import (
    Change,
    Claim,
    Outcome,
    RangeClaim,
    RangeDone,
    RangeRecovery,
    Recovery,
)
from shared.jobs.record import JobRecord, JobStatus, from_fields, to_fields, utcnow
from shared.jobs.usage import USAGE_RETENTION_SECONDS, TenantUsage
from shared.jobs.webhooks import WebhookDeliveries

if TYPE_CHECKING:
    from shared.settings import Settings

# the error code the package itself writes: the job's worker died JOB_MAX_ATTEMPTS times
WORKER_LOST = ErrorCode.worker_lost
_MESSAGE_LIMIT = 2000


class JobStore:
    """Job records as Redis hashes `ocrq:job:<id>`, their leases and their events.

    A record has no TTL while its job is queued or running; it expires JOB_TTL_SECONDS after
    the job ended (succeeded, failed or canceled), its events with it.
    """

    def __init__(
        self,
        client: redis.Redis,
        ttl_seconds: int,
        events_maxlen: int = keys.EVENTS_MAXLEN,
        usage_retention_seconds: int = USAGE_RETENTION_SECONDS,
        fair_cap: int = 2,
    ) -> None:
        self.redis = client  # job keys are written through the methods below only
        self.ttl = ttl_seconds
        self.events_maxlen = events_maxlen
        self.idempotency = Idempotency(client, ttl_seconds)
        self.usage = TenantUsage(client, usage_retention_seconds)
        self.metrics = JobMetrics(client)
        self.webhooks = WebhookDeliveries(client, ttl_seconds)
        self.fair = FairShare(client, fair_cap)  # FAIR_SHARE_IN_FLIGHT_PER_TENANT
        self._create = client.register_script(scripts.CREATE)
        self._create_queued = client.register_script(scripts.CREATE_QUEUED)
        self._delete = client.register_script(scripts.DELETE)
        self._claim = client.register_script(scripts.CLAIM)
        self._progress = client.register_script(scripts.PROGRESS)
        self._end = client.register_script(scripts.END)
        self._cancel = client.register_script(scripts.CANCEL)
        self._recover = client.register_script(scripts.RECOVER)
        self._renew = client.register_script(scripts.RENEW)
        self._release = client.register_script(scripts.RELEASE_LEASE)
        self._page = client.register_script(scripts.PAGE)
        self._plan = client.register_script(scripts.PLAN)
        self._range_claim = client.register_script(scripts.RANGE_CLAIM)
        self._range_done = client.register_script(scripts.RANGE_DONE)
        self._range_recover = client.register_script(scripts.RANGE_RECOVER)

    @classmethod
    def of_settings(cls, client: redis.Redis, settings: Settings) -> JobStore:
        """The store a process of the service uses: its retentions from the settings."""
        retention = settings.usage_retention_days * 24 * 3600
        return cls(
            client,
            settings.job_ttl_seconds,
            usage_retention_seconds=retention,
            fair_cap=settings.fair_share_in_flight_per_tenant,
        )

    def _change(
        self,
        script: redis.commands.core.Script,
        job_id: str,
        extra_keys: tuple[str, ...] = (),
        args: tuple[str | int | float, ...] = (),
    ) -> Change:
        """Run a state-change script with the keys and arguments they all share."""
        shared = [keys.job(job_id), keys.job_events(job_id), keys.EVENTS, keys.COUNTERS]
        return Change.decode(
            script(
                keys=[*shared, *extra_keys],
                args=[utcnow().isoformat(), self.ttl, self.events_maxlen, job_id, *args],
            )
        )

    # -- the API's changes --
    @redis_errors_as_unavailable
    def create(self, record: JobRecord, message: str | None = None) -> None:
        """Record a queued job (no TTL: it lives until it ends, however long it waits).

        With its Celery `message` (FAIR_SHARE=on, messages.py) the job joins its tenant's lane
        in the same step: the message pushed onto the job's queue now while the tenant has room,
        else when a worker takes the tenant's previous one (fair.py)."""
        args = tuple(item for pair in to_fields(record).items() for item in pair)
        if message is None:
            self._change(self._create, record.job_id, args=args)
            return
        assert record.queue is not None
        lane_keys, lane_args = self.fair.lane(record.queue, tenant_of(record.owner))
        lane = (*lane_args, message, *args)
        self._change(self._create_queued, record.job_id, tuple(lane_keys), lane)

    @redis_errors_as_unavailable
    def delete(self, job_id: str) -> None:
        """Remove a record and its events; one that never ran (its message could not be sent)
        is uncounted as submitted."""
        self._change(self._delete, job_id)

    @redis_errors_as_unavailable
    def cancel(self, job_id: str) -> JobStatus | None:
        """Cancel a queued or running job at once; the status it had, None if unknown.

        A running job's worker sees `canceled` before its next page and stops there; its work
        still waiting for the fair share (the job, its ranges) leaves the waiting list.
        """
        extra = (keys.plan(job_id), keys.pages_seen(job_id))
        change = self._change(self._cancel, job_id, extra)
        queue, owner = self.lane_of(job_id)
        if change.applied and queue is not None:
            self.fair.forget(job_id, queue, tenant_of(owner))
        return change.found

    def lane_of(self, job_id: str) -> tuple[str | None, str | None]:
        """(queue, owner) of a job, as its record names them (None: no record, or none)."""
        queue, owner = self.redis.hmget(keys.job(job_id), "queue", "owner")
        return text_or_none(queue), text_or_none(owner)

    # -- the worker's changes --
    def claim(self, job_id: str, holder: str, lease_seconds: int) -> Claim:
        """Take the job's lease and mark it running (one more attempt), if it is free."""
        extra = (keys.lease(job_id), keys.RUNNING, keys.plan(job_id), keys.pages_seen(job_id))
        return Claim.of(self._change(self._claim, job_id, extra, (holder, lease_seconds)))

    def renew(self, job_id: str, holder: str, lease_seconds: int, part: int | None = None) -> bool:
        """Renew the job's lease, or its range `part`'s."""
        lease = keys.lease(job_id) if part is None else keys.range_lease(job_id, part)
        return self._renew(keys=[lease], args=[holder, lease_seconds]) == 1

    def release(self, job_id: str, holder: str, part: int | None = None) -> None:
        """Give back the job's lease, or its range `part`'s."""
        if part is None:
            self._release(keys=[keys.lease(job_id), keys.RUNNING], args=[holder, job_id])
            return
        lease, member = keys.range_lease(job_id, part), keys.range_member(job_id, part)
        self._release(keys=[lease, keys.RANGES_RUNNING], args=[holder, member])

    def page_done(
        self,
        job_id: str,
        page: int,
        failed_code: ErrorCode | None = None,
        *,
        engine: str | None = None,
        engine_seconds: float = 0.0,
    ) -> None:
        """Count page `page` read (or failed with `failed_code`), once however often it is
        read, in the job's progress and in its tenant's usage of today (with the `engine`'s
        seconds on it); nothing once the job was canceled; JobNotFound once the record is gone."""
        outcome = ("ok", "") if failed_code is None else ("failed", ErrorCode(failed_code).value)
        extra = (keys.pages_seen(job_id),)
        usage = (engine or "", f"{max(engine_seconds, 0.0):.6f}", self.usage.retention_seconds)
        change = self._change(self._page, job_id, extra, (page, *outcome, *usage))
        if change.outcome is Outcome.missing:
            raise JobNotFound(f"the record of job {job_id} is gone")

    # -- page ranges (a job of more pages than one range) --
    def plan(self, job_id: str, holder: str, lease_seconds: int, count: int, size: int) -> bool:
        """Plan the running job this holder claimed into `count` ranges of `size` pages, once:
        its job lease becomes range 0's (this holder runs it), the others wait to be sent
        (`pending_range_sends`). False: planned already, or the lease is not this holder's."""
        extra = (
            keys.lease(job_id),
            keys.RUNNING,
            keys.plan(job_id),
            keys.range_lease(job_id, 0),
            keys.RANGES_RUNNING,
            keys.RANGE_SENDS,
        )
        args = (holder, lease_seconds, count, size)
        return self._change(self._plan, job_id, extra, args).applied

    def plan_of(self, job_id: str) -> tuple[int, int] | None:
        """(range count, range size) of a planned job; None when it has no plan."""
        count, size = self.redis.hmget(keys.plan(job_id), "count", "size")
        return (int(count), int(size)) if count and size else None

    def planned_at(self, job_id: str) -> datetime | None:
        """When the job was planned (its ranges queued); None when it has no plan."""
        at = text_or_none(self.redis.hget(keys.plan(job_id), "at"))
        return datetime.fromisoformat(at) if at else None

    def claim_range(self, job_id: str, part: int, holder: str, lease_seconds: int) -> RangeClaim:
        extra = (keys.plan(job_id), keys.range_lease(job_id, part), keys.RANGES_RUNNING)
        args = (part, holder, lease_seconds)
        return RangeClaim.of(self._change(self._range_claim, job_id, extra, args))

    def range_done(self, job_id: str, part: int, holder: str) -> RangeDone:
        """Range `part`'s pages are stored: mark it done; `assemble` for the last one."""
        extra = (keys.plan(job_id), keys.range_lease(job_id, part))
        return RangeDone.of(self._change(self._range_done, job_id, extra, (part, holder)))

    def recover_range(self, job_id: str, part: int, max_attempts: int) -> RangeRecovery:
        extra = (
            keys.plan(job_id),
            keys.range_lease(job_id, part),
            keys.RANGES_RUNNING,
            keys.RANGE_SENDS,
            keys.pages_seen(job_id),
        )
        args = (part, max_attempts, WORKER_LOST.value)
        return RangeRecovery.of(self._change(self._range_recover, job_id, extra, args))

    def running_ranges(self) -> list[tuple[str, int]]:
        """Ranges with a lease taken (alive or not), as (job id, range)."""
        members = self.redis.smembers(keys.RANGES_RUNNING)
        return sorted(keys.parse_range_member(text(m)) for m in members)

    def pending_range_sends(self, job_id: str | None = None) -> list[tuple[str, int]]:
        """Ranges whose message is not sent yet (of one job, or all)."""
        members = self.redis.smembers(keys.RANGE_SENDS)
        found = sorted(keys.parse_range_member(text(m)) for m in members)
        return [m for m in found if job_id is None or m[0] == job_id]

    def range_sent(self, job_id: str, part: int) -> None:
        self.redis.srem(keys.RANGE_SENDS, keys.range_member(job_id, part))

    def set_pages_total(self, job_id: str, pages_total: int) -> None:
        self._set_progress(job_id, pages_total=pages_total)

    def set_source(self, job_id: str, media_type: str, size_bytes: int) -> None:
        """A job by reference: what its worker fetched (the API had no document to sniff)."""
        self._set_progress(job_id, media_type=media_type, size_bytes=size_bytes)

    def _set_progress(self, job_id: str, **fields: int | str) -> None:
        """Record progress of a running job (nothing once it was canceled); JobNotFound when
        the record is gone (expired or lost by Redis)."""
        args = tuple(item for name, value in fields.items() for item in (name, value))
        if self._change(self._progress, job_id, args=args).outcome is Outcome.missing:
            raise JobNotFound(f"the record of job {job_id} is gone")

    def succeed(self, job_id: str) -> bool:
        """False when the job was canceled while it ran (`canceled` stays), or is gone."""
        args = (JobStatus.succeeded.value,)
        return self._change(self._end, job_id, self._side_keys(job_id), args).applied

    def fail(self, job_id: str, code: ErrorCode, message: str) -> bool:
        """False when the job ended already (canceled) or is gone. `code` must be a member."""
        args = (JobStatus.failed.value, ErrorCode(code).value, message[:_MESSAGE_LIMIT])
        return self._change(self._end, job_id, self._side_keys(job_id), args).applied

    @staticmethod
    def _side_keys(job_id: str) -> tuple[str, ...]:
        """The keys that expire with a job's record: its plan and its pages seen."""
        return (keys.plan(job_id), keys.pages_seen(job_id))

    # -- the orphan sweep's changes (any process) --
    def recover(self, job_id: str, max_attempts: int) -> Recovery:
        """A running job whose lease lapsed goes back to the queue, or fails `worker_lost`
        once `max_attempts` runs of it died."""
        extra = (keys.lease(job_id), keys.RUNNING, keys.REQUEUE, *self._side_keys(job_id))
        change = self._change(self._recover, job_id, extra, (max_attempts, WORKER_LOST.value))
        return Recovery.of(change)

    def running(self) -> list[str]:
        """Jobs with a lease taken (alive or not)."""
        return sorted(text(member) for member in self.redis.smembers(keys.RUNNING))

    def pending_requeues(self) -> list[str]:
        """Requeued jobs whose message is not sent yet."""
        return sorted(text(member) for member in self.redis.smembers(keys.REQUEUE))

    def queue_of(self, job_id: str) -> str | None:
        """The queue the job waits in, as its record names it (None: no record, or none)."""
        return text_or_none(self.redis.hget(keys.job(job_id), "queue"))

    def requeue_sent(self, job_id: str) -> None:
        self.redis.srem(keys.REQUEUE, job_id)

    # -- reads --
    @redis_errors_as_unavailable
    def get(self, job_id: str) -> JobRecord | None:
        return from_fields(job_id, text_fields(self.redis.hgetall(keys.job(job_id))))

    def require(self, job_id: str) -> JobRecord:
        record = self.get(job_id)
        if record is None:
            raise JobNotFound(f"no job with id {job_id!r} (unknown or expired)")
        return record

    def status(self, job_id: str) -> JobStatus | None:
        """The job's status alone (one HGET); None when its record is gone."""
        status = text_or_none(self.redis.hget(keys.job(job_id), "status"))
        return JobStatus(status) if status else None

    def traceparent(self, job_id: str) -> str | None:
        """The W3C traceparent the job's record keeps (traces on); None without one."""
        return text_or_none(self.redis.hget(keys.job(job_id), "traceparent"))

    def holder(self, job_id: str) -> str | None:
        """Who holds the job's lease now (None: nobody, or it lapsed)."""
        return text_or_none(self.redis.get(keys.lease(job_id)))

    @redis_errors_as_unavailable
    def exists_many(self, job_ids: list[str]) -> set[str]:
        """The ids among `job_ids` that still have a record: one round trip for a whole sweep."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.exists(keys.job(job_id))
        return {job_id for job_id, found in zip(job_ids, pipe.execute(), strict=True) if found}

    @redis_errors_as_unavailable
    def queue_depth(self) -> int:
        """Work waiting in all queues: messages (kombu keeps each queue in a Redis list named
        like it) and work the fair share has not released into them yet.

        Jobs a worker has taken sit in kombu's `unacked` hash instead, so they are not counted;
        canceled jobs still are until a worker drops them.
        """
        return sum(self.queue_depths().values())

    @redis_errors_as_unavailable
    def queue_depths(self, names: list[str] | None = None) -> dict[str, int]:
        """Work waiting per queue (every queue of the protocol unless `names`): its messages
        and the fair share's waiting work for it, one round trip."""
        names = queues.all_queues() if names is None else names
        if not names:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.llen(name)
        pipe.hmget(keys.FAIR_WAITING, names)
        *depths, waiting = pipe.execute()
        return {
            name: int(depth) + max(0, int(held or 0))
            for name, depth, held in zip(names, depths, waiting, strict=True)
        }

    @redis_errors_as_unavailable
    def running_by_engine(self) -> dict[str, int]:
        """Work a worker holds a lease on now, per engine kind: each whole job and each page
        range counts one, as a queue's waiting work does (the autoscaler's backlog adds the two).
        Two round trips: the leases, then the queues their job records name."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.smembers(keys.RUNNING)
        pipe.smembers(keys.RANGES_RUNNING)
        whole, ranges = pipe.execute()
        held = [text(m) for m in whole] + [keys.parse_range_member(text(m))[0] for m in ranges]
        if not held:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for job_id in held:
            pipe.hget(keys.job(job_id), "queue")
        counts: dict[str, int] = {}
        for queue in pipe.execute():
            engine = queues.engine_of(text(queue)) if queue else None
            if engine is not None:
                counts[engine.value] = counts.get(engine.value, 0) + 1
        return counts

    def running_count(self) -> int:
        """Jobs a worker holds a lease on now: the job's own, or one of its ranges'."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.scard(keys.RUNNING)
        pipe.smembers(keys.RANGES_RUNNING)
        whole, ranges = pipe.execute()
        return int(whole) + len({keys.parse_range_member(text(m))[0] for m in ranges})

    def ping(self) -> None:
        """Raises redis' ConnectionError when Redis does not answer."""
        self.redis.ping()

    def close(self) -> None:
        """Close the store's Redis connections (a process that is done with the store)."""
        self.redis.close()

    @redis_errors_as_unavailable
    def events(self, job_id: str, after_id: str | None = None) -> list[JobEvent]:
        """The job's events, oldest first; only those after stream id `after_id` if given."""
        start = f"({after_id}" if after_id else "-"
        entries = stream_entries(self.redis.xrange(keys.job_events(job_id), start))
        return [JobEvent.from_entry(i, f) for i, f in entries]

    @redis_errors_as_unavailable
    def history(self, job_id: str) -> tuple[JobRecord | None, list[JobEvent]]:
        """The record and all its events, read together (one MULTI): the record is the state
        right after the last of them. (None, []) when the job is unknown or expired."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(keys.job(job_id))
        pipe.xrange(keys.job_events(job_id))
        fields, entries = pipe.execute()
        record = from_fields(job_id, text_fields(fields))
        if record is None:
            return None, []
        return record, [JobEvent.from_entry(i, f) for i, f in stream_entries(entries)]

    @redis_errors_as_unavailable
    def recent_events(self, after_id: str = "0", count: int = 100) -> list[JobEvent]:
        """Up to `count` events of any job after stream id `after_id` ("0": the oldest kept)."""
        entries = stream_entries(self.redis.xrange(keys.EVENTS, f"({after_id}", count=count))
        return [JobEvent.from_entry(i, f) for i, f in entries]
