"""The orphan sweep: jobs whose worker died go back to the queue (or fail with worker_lost).

A job planned into page ranges has no job lease: each of its ranges is recovered alone (back
to the queue as an `ocr.run_range` message, or the job fails worker_lost once one range's
runs died JOB_MAX_ATTEMPTS times), and range messages a planner could not send are sent here,
as is the fair share's released work whose sender died (dispatch.py).

Run by every worker and by the API, so a job never stays `running` forever even when no worker
is left: it waits `queued` for the next one instead.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from celery import Celery

from shared.jobs.dispatch import Dispatch
from shared.jobs.keys import TASK_RUN
from shared.jobs.outcomes import RangeRecovery, Recovery
from shared.jobs.queues import queue_name
from shared.jobs.store import JobStore
from shared.options import Priority
from shared.settings import Settings
from shared.storage import job_files
from shared.tracing import job_logs

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _about(store: JobStore, job_id: str) -> AbstractContextManager[None]:
    """The sweep's lines about a job it recovered: tagged with the job's trace (one HGET)."""
    return job_logs(job_id, store.traceparent(job_id))


def recover_orphans(store: JobStore, celery: Celery, settings: Settings) -> SweepReport:
    """One pass. Safe to run anywhere and concurrently: each orphan is taken by one sweeper."""
    report = SweepReport()
    max_attempts = settings.job_max_attempts
    for job_id in store.running():
        outcome = store.recover(job_id, max_attempts)
        if outcome is Recovery.requeued:
            report.requeued.append(job_id)
            with _about(store, job_id):
                log.warning("job=%s lost its worker (lease lapsed); requeued", job_id)
        elif outcome is Recovery.failed:
            report.failed.append(job_id)
            # a failed job keeps neither its upload nor what a dead run may have half written
            job_files(settings, job_id).remove_all()
            with _about(store, job_id):
                log.error(
                    "job=%s lost its worker %d time(s); failed worker_lost, its files removed",
                    job_id,
                    max_attempts,
                )
        elif outcome is Recovery.missing:
            log.warning(
                "job=%s was running but its record is gone (expired or Redis lost it); "
                "no longer tracked, its files are left to the retention sweep",
                job_id,
            )
    for job_id, part in store.running_ranges():
        range_outcome = store.recover_range(job_id, part, max_attempts)
        if range_outcome is RangeRecovery.requeued:
            report.requeued.append(f"{job_id}/{part}")
            with _about(store, job_id):
                log.warning(
                    "job=%s range %d lost its worker (lease lapsed); requeued", job_id, part
                )
        elif range_outcome is RangeRecovery.failed:
            report.failed.append(job_id)
            job_files(settings, job_id).remove_all()
            with _about(store, job_id):
                log.error(
                    "job=%s range %d lost its worker %d time(s); failed worker_lost, "
                    "its files removed",
                    job_id,
                    part,
                    max_attempts,
                )
    # Send the messages last: a sweeper that dies here leaves the ids in the requeue set and
    # the next pass sends them. A duplicate message is harmless: the lease admits one runner.
    # Each goes back to its own queue (engine and priority); a record naming none (only ever
    # written by hand) to this process's engine at normal priority.
    fallback = queue_name(settings.ocr_engine, Priority.normal)
    for job_id in store.pending_requeues():
        queue = store.queue_of(job_id) or fallback
        celery.send_task(TASK_RUN, args=[job_id], queue=queue, retry=False)
        store.requeue_sent(job_id)
    dispatch = Dispatch(store, celery, settings.fair_share)
    dispatch.ranges(fallback=fallback)
    dispatch.sweep()
    return report
