"""The Celery tasks `ocr.run` (a job) and `ocr.run_range` (one page range of a planned job),
bound to the runner built (and warmed) at boot. Each first tells the fair share its message
was taken off the queue (`taken`: the key's next work is released, shared/jobs/dispatch.py).

A task whose run failed its job raises JobFailed once the job is recorded failed, so Celery
(and Flower, from its task-failed event) counts a failed job as a failed task. Nothing else
changes: the exception is expected (`throws`: logged in one line, no traceback), never retried,
and with late acks Celery acks a task that raised as it acks one that returned
(task_acks_on_failure_or_timeout, on by default); only a worker lost mid-task requeues it.
"""

from __future__ import annotations

from collections.abc import Callable

from celery import Celery

from shared.jobs import TASK_RUN, JobStatus
from shared.jobs.keys import TASK_RUN_RANGE
from worker.pipeline import JobRunner
from worker.recycling import Recycler


class JobFailed(Exception):
    """The job this task ran is recorded failed (its code and message: GET /jobs/{id})."""


def register_tasks(
    app: Celery,
    runner: JobRunner,
    recycler: Recycler | None = None,
    taken: Callable[[str, int | None], None] | None = None,
) -> None:
    def reported(job_id: str, status: JobStatus | None) -> str | None:
        if status is JobStatus.failed and runner.took_failure(job_id):
            raise JobFailed(f"job {job_id} failed")
        return status.value if status else None

    @app.task(name=TASK_RUN, acks_late=True, reject_on_worker_lost=True, throws=(JobFailed,))
    def run_ocr_job(job_id: str) -> str | None:
        if taken is not None:
            taken(job_id, None)
        try:
            status = runner.run(job_id)
        finally:
            # the job's state is final here; its message is acked when this returns, and a
            # recycled process exits only after that (Celery's warm shutdown)
            if recycler is not None:
                recycler.job_done()
        return reported(job_id, status)

    @app.task(name=TASK_RUN_RANGE, acks_late=True, reject_on_worker_lost=True, throws=(JobFailed,))
    def run_ocr_range(job_id: str, part: int) -> str | None:
        if taken is not None:
            taken(job_id, int(part))
        try:
            status = runner.run_range(job_id, int(part))
        finally:
            if recycler is not None:
                recycler.job_done()
        return reported(job_id, status)
