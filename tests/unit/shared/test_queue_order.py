"""Real Redis, real kombu: a consumer of several queues takes the first non-empty one in the
order it names them (queue_order_strategy='priority'), and the sweep requeues into a job's own
queue."""

from __future__ import annotations

import uuid

import redis
from kombu import Consumer, Queue

from shared.jobs import (
    TASK_RUN,
    JobRecord,
    JobStatus,
    JobStore,
    connect_redis,
    recover_orphans,
    utcnow,
)
from shared.jobs.queues import queue_name, worker_queues
from shared.queue import make_celery
from shared.settings import Settings


def _received_order(app, queues: list[str], count: int) -> list[str]:
    got: list[str] = []

    def on_message(_body, message) -> None:  # type: ignore[no-untyped-def]
        got.append(message.delivery_info["routing_key"])
        message.ack()

    with (
        app.connection_for_read() as conn,
        Consumer(conn.default_channel, [Queue(q) for q in queues], callbacks=[on_message]),
    ):
        conn.default_channel.basic_qos(0, 1, False)
        while len(got) < count:
            conn.drain_events(timeout=5)
    return got


def test_a_worker_takes_high_before_normal_before_batch(
    settings: Settings, redis_client: redis.Redis
) -> None:
    app = make_celery(settings)
    queues = worker_queues("rapidocr")
    for queue in reversed(queues):  # the lowest sent first: arrival order must not win
        for _ in range(2):
            app.send_task(TASK_RUN, args=["x"], queue=queue, retry=False)

    order = _received_order(app, queues, 6)

    assert order == [q for q in queues for _ in range(2)]


def test_the_sweep_requeues_an_orphan_into_its_own_queue(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = JobStore(connect_redis(settings.redis_url), 600)
    queue = queue_name("tesseract", "batch")
    job_id = uuid.uuid4().hex
    store.create(
        JobRecord(job_id=job_id, status=JobStatus.queued, created_at=utcnow(), queue=queue)
    )
    old_job = uuid.uuid4().hex  # a record naming no queue (the API always names one)
    store.create(JobRecord(job_id=old_job, status=JobStatus.queued, created_at=utcnow()))
    for job in (job_id, old_job):
        store.claim(job, "dead:1", 1)
    redis_client.delete(*(f"ocrq:lease:{j}" for j in (job_id, old_job)))  # the worker died

    report = recover_orphans(store, make_celery(settings), settings)

    assert sorted(report.requeued) == sorted([job_id, old_job])
    fallback = queue_name(settings.ocr_engine, "normal")
    assert store.queue_depths([queue, fallback, "ocr"]) == {queue: 1, fallback: 1, "ocr": 0}
    assert store.get(job_id).queue == queue
