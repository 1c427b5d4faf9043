"""The Celery tasks `ocr.run` (a job) and `ocr.run_range` (one page range of a planned job),
bound to the runner built (and warmed) at boot. Each first tells the fair share its message
was taken off the queue (`taken`: the key's next work is released, shared/jobs/dispatch.py)."""

from __future__ import annotations

from collections.abc import Callable

from celery import Celery

from shared.jobs import TASK_RUN
from shared.jobs.keys import TASK_RUN_RANGE
from worker.pipeline import JobRunner
from worker.recycling import Recycler


def register_tasks(
    app: Celery,
    runner: JobRunner,
    recycler: Recycler | None = None,
    taken: Callable[[str, int | None], None] | None = None,
) -> None:
    @app.task(name=TASK_RUN, acks_late=True, reject_on_worker_lost=True)
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
        return status.value if status else None

    @app.task(name=TASK_RUN_RANGE, acks_late=True, reject_on_worker_lost=True)
    def run_ocr_range(job_id: str, part: int) -> str | None:
        if taken is not None:
            taken(job_id, int(part))
        try:
            status = runner.run_range(job_id, int(part))
        finally:
            if recycler is not None:
                recycler.job_done()
        return status.value if status else None
