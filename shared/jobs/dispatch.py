"""How work reaches the Celery queues: straight (FAIR_SHARE=off), or through the fair share
(fair.py): into its tenant's waiting list, released a few at a time per tenant.

Used by the API (a new job recorded and queued: `submit`), the worker (a plan's ranges:
`ranges`; a message taken off the queue: `taken`) and the orphan sweep of every process
(`sweep`: the outbox's unsent messages, stale in-flight work, and with FAIR_SHARE=off whatever
still waits in the lists). Every message names its job's own queue (engine and priority). With
the fair share each message is built here (messages.py) and pushed by the fair share's scripts
as its work is released: one round trip to submit, one to take.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from celery import Celery
from kombu.exceptions import KombuError
from redis import RedisError

from shared.jobs import keys
from shared.jobs.fair import SEND_GRACE_SECONDS, job_of, tenant_of
from shared.jobs.messages import TaskMessages, task_call
from shared.jobs.record import JobRecord
from shared.jobs.store import JobStore

log = logging.getLogger(__name__)

_DRAIN = 1 << 30  # FAIR_SHARE=off: everything still waiting is released at once


class Dispatch:
    def __init__(self, store: JobStore, celery: Celery, fair_share: bool) -> None:
        self.store = store
        self.celery = celery
        self.fair_share = fair_share
        self.messages = TaskMessages.of(celery)  # opens its channel on the first build

    # -- the API --
    def submit(self, record: JobRecord) -> None:
        """Record a new job and queue it. FAIR_SHARE=off: the record, then its message; on: one
        script does both (its message built here first). Raises when it may not be queued
        (QueueUnavailable, or the broker's error): the caller removes the record."""
        if self.fair_share:
            assert record.queue is not None
            message = self.messages.build(record.job_id, record.queue)
            if message is not None:
                self.store.create(record, message)
                return
        self.store.create(record)
        self.job(record)

    def job(self, record: JobRecord) -> None:
        """Queue a job whose record exists. Raises when it could not be queued; with the fair
        share, once admitted it is queued: a failed send is the sweep's to redo."""
        assert record.queue is not None
        if not self.fair_share:
            self._send(record.job_id, record.queue)
            return
        message = self.messages.build(record.job_id, record.queue)
        tenant = tenant_of(record.owner)
        unsent = self.store.fair.admit([record.job_id], record.queue, tenant, messages=[message])
        self.send(unsent, record.queue, safe=True)

    # -- the worker --
    def ranges(self, job_id: str | None = None, fallback: str | None = None) -> int:
        """Queue the ranges a plan (or a range's recovery) left waiting for a message (of
        `job_id`, or all); how many were admitted or sent."""
        by_job: dict[str, list[int]] = defaultdict(list)
        for range_job, part in self.store.pending_range_sends(job_id):
            by_job[range_job].append(part)
        for range_job, parts in by_job.items():
            queue, owner = self._queue_and_owner(range_job)
            queue = queue or fallback
            if queue is None:  # the record is gone: nothing will run these
                for part in parts:
                    self.store.range_sent(range_job, part)
                continue
            if self.fair_share:
                messages = [
                    self.messages.build(keys.range_member(range_job, part), queue) for part in parts
                ]
                fair = self.store.fair
                unsent = fair.admit_ranges(range_job, parts, queue, tenant_of(owner), messages)
                self.send(unsent, queue)
                continue
            for part in parts:
                self._send(keys.range_member(range_job, part), queue)
                self.store.range_sent(range_job, part)
        return sum(len(parts) for parts in by_job.values())

    def taken(self, job_id: str, part: int | None = None) -> None:
        """A worker took this job's (or range's) message off its queue: its tenant's next work
        goes out (one script). Never raises: the sweep tops up a tenant it could not."""
        if not self.fair_share:
            return
        member = job_id if part is None else keys.range_member(job_id, part)
        try:
            queue, unsent = self.store.fair.taken(job_id, member)
            if queue is not None and unsent:
                self.send(unsent, queue)
        except (RedisError, KombuError, OSError) as exc:
            log.warning(
                "job=%s: the fair share's next release failed (%s); the sweep will", job_id, exc
            )

    # -- the orphan sweep (any process) --
    def sweep(self, grace: float = SEND_GRACE_SECONDS) -> int:
        """Send what released work a dead process did not; free the room of ended work; release
        what fits (everything, with FAIR_SHARE=off). How many messages it sent itself (the
        release script pushes those of work kept with its message)."""
        fair, sent = self.store.fair, 0
        unsent = fair.unsent(grace)
        for member in unsent:
            queue = self.store.queue_of(job_of(member))
            if queue is None:
                fair.sent([member])  # its record is gone: nothing to run
                continue
            self.send([member], queue)
            sent += 1
        for queue, tenant in fair.lanes():
            if self.fair_share:
                fair.drop_ended(queue, tenant)
            released = fair.top_up(queue, tenant, None if self.fair_share else _DRAIN)
            self.send(released, queue)
            sent += len(released)
        return sent

    def send(self, members: list[str], queue: str, safe: bool = False) -> None:
        """Send released work's messages on `queue`, then take them out of the outbox; `safe`:
        a failure is logged, the sweep sends them later."""
        try:
            for member in members:
                self._send(member, queue)
            self.store.fair.sent(members)
        except (RedisError, KombuError, OSError) as exc:
            if not safe:
                raise
            log.warning("could not send %s now (%s); the orphan sweep will", members, exc)

    def _send(self, member: str, queue: str) -> None:
        task, args = task_call(member)
        self.celery.send_task(task, args=args, queue=queue, retry=False)

    def _queue_and_owner(self, job_id: str) -> tuple[str | None, str | None]:
        return self.store.lane_of(job_id)
