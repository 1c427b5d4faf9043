"""The Celery app's configuration, shared by the API (sender) and the worker.

The queue and task names are part of the job protocol (shared/jobs/keys.py, queues.py); how
REDIS_URL reaches the broker (TLS, Sentinel) is shared/jobs/redis_url.py's.
"""

from __future__ import annotations

from celery import Celery

from shared.jobs.keys import QUEUE, TASK_RUN
from shared.jobs.redis_url import broker_ssl, broker_transport_extras
from shared.settings import Settings

__all__ = ["QUEUE", "TASK_RUN", "make_celery"]


def make_celery(settings: Settings) -> Celery:
    """Celery on Redis, tuned so a dying worker never loses a job (late acks, prefetch 1)."""
    app = Celery("ocrq", broker=settings.redis_url)
    app.conf.update(
        task_acks_late=True,
        # a task that raised (worker/tasks.py JobFailed: its job is recorded failed) is acked
        # like one that returned; Celery's default, pinned because the tasks rely on it
        task_acks_on_failure_or_timeout=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,  # job state lives in JobStore, not the result backend
        # every send names its queue (shared/jobs/queues.py); none is sent to the default
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        broker_use_ssl=broker_ssl(settings),
        broker_transport_options={
            # above the longest job, or Redis hands a running task to a second worker
            "visibility_timeout": settings.broker_visibility_timeout,
            "socket_connect_timeout": 1,
            "socket_timeout": 5,
            # BRPOP names a worker's queues in the order it consumes them (high, normal,
            # batch) and kombu never rotates them: Redis pops the first non-empty one
            "queue_order_strategy": "priority",
            **broker_transport_extras(settings),
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app
