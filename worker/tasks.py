"""The Celery task `ocr.run`, bound to the runner built (and warmed) at boot."""

from __future__ import annotations

from celery import Celery

from shared.jobs import TASK_RUN
from worker.pipeline import JobRunner


def register_tasks(app: Celery, runner: JobRunner) -> None:
    @app.task(name=TASK_RUN, acks_late=True, reject_on_worker_lost=True)
    def run_ocr_job(job_id: str) -> str | None:
        status = runner.run(job_id)
        return status.value if status else None
