"""The fair share on the real Redis and kombu: per-key waiting lists released a few at a time
into the Celery queue (the scripts FAIR_ADMIT, FAIR_RELEASE, FAIR_FORGET), refilled as workers
take messages, counted in the queue depth, and safe when a process stops between two steps."""

from __future__ import annotations

import base64
import json
import uuid

import redis

from shared.jobs import Claim, JobRecord, JobStatus, JobStore, connect_redis, utcnow
from shared.jobs.dispatch import Dispatch
from shared.jobs.queues import queue_name
from shared.queue import make_celery
from shared.settings import Settings

NORMAL = queue_name("rapidocr", "normal")
HIGH = queue_name("rapidocr", "high")


def _store(settings: Settings, cap: int = 2) -> JobStore:
    return JobStore(connect_redis(settings.redis_url), 600, fair_cap=cap)


def _job(store: JobStore, owner: str | None, queue: str = NORMAL) -> JobRecord:
    record = JobRecord(
        job_id=uuid.uuid4().hex,
        status=JobStatus.queued,
        created_at=utcnow(),
        owner=owner,
        queue=queue,
    )
    store.create(record)
    return record


def _messages(client: redis.Redis, queue: str) -> list[list[object]]:
    """The task args of the messages in a kombu queue, in the order a worker takes them."""
    raw = reversed(client.lrange(queue, 0, -1))  # kombu LPUSHes and BRPOPs
    return [json.loads(base64.b64decode(json.loads(m)["body"]))[0] for m in raw]


def _take(client: redis.Redis, dispatch: Dispatch, queue: str) -> list[object]:
    """What a worker does: pop the oldest message, then tell the fair share it took it."""
    args = json.loads(base64.b64decode(json.loads(client.rpop(queue))["body"]))[0]
    dispatch.taken(args[0], args[1] if len(args) > 1 else None)
    return args


def test_a_flood_waits_in_its_keys_list_and_another_key_goes_next(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = _store(settings)
    dispatch = Dispatch(store, make_celery(settings), fair_share=True)
    flood = [_job(store, "key-a") for _ in range(10)]
    for record in flood:
        dispatch.job(record)
    lone = _job(store, "key-b")
    dispatch.job(lone)

    # two of A's in the queue, then B's; the other 8 of A's wait, counted as queued all the same
    assert _messages(redis_client, NORMAL) == [[flood[0].job_id], [flood[1].job_id], [lone.job_id]]
    assert store.queue_depths([NORMAL]) == {NORMAL: 11}
    # each message a worker takes releases its key's next: B's is the third taken, not the 11th
    taken = [_take(redis_client, dispatch, NORMAL)[0] for _ in range(11)]
    assert taken.index(lone.job_id) == 2
    assert sorted(taken) == sorted(r.job_id for r in [*flood, lone])  # each once
    assert store.queue_depths([NORMAL]) == {NORMAL: 0}
    assert redis_client.zcard("ocrq:fair:sends") == 0


def test_priorities_keep_their_queues(settings: Settings, redis_client: redis.Redis) -> None:
    store = _store(settings)
    dispatch = Dispatch(store, make_celery(settings), fair_share=True)
    for _ in range(5):
        dispatch.job(_job(store, "key-a"))
    urgent = _job(store, "key-b", HIGH)
    dispatch.job(urgent)

    # a full normal lane of A's does not hold B's high job back: it is in the high queue
    assert _messages(redis_client, HIGH) == [[urgent.job_id]]
    assert store.queue_depths([HIGH, NORMAL]) == {HIGH: 1, NORMAL: 5}


def test_a_job_canceled_while_waiting_leaves_the_list(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = _store(settings, cap=1)
    dispatch = Dispatch(store, make_celery(settings), fair_share=True)
    first, waiting, last = (_job(store, None) for _ in range(3))
    for record in (first, waiting, last):
        dispatch.job(record)

    assert store.cancel(waiting.job_id) is JobStatus.queued
    assert store.queue_depths([NORMAL]) == {NORMAL: 2}
    assert [_take(redis_client, dispatch, NORMAL)[0] for _ in range(2)] == [
        first.job_id,
        last.job_id,
    ]


def test_a_plans_ranges_go_before_the_keys_other_jobs_each_once(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = _store(settings, cap=1)
    dispatch = Dispatch(store, make_celery(settings), fair_share=True)
    big, other = _job(store, "key-a"), _job(store, "key-a")
    dispatch.job(big)
    dispatch.job(other)  # waits: A has one in flight
    _take(redis_client, dispatch, NORMAL)  # a worker takes the big job...
    assert store.claim(big.job_id, "w1:1", 30) is Claim.claimed
    assert store.plan(big.job_id, "w1:1", 30, 3, 4)  # ...and plans it: ranges 1 and 2 to send
    # the other job went out when the big one was taken; now the ranges queue up behind it
    assert dispatch.ranges(big.job_id) == 2
    assert dispatch.ranges(big.job_id) == 0  # a second admission (a sweeper) finds none
    assert store.queue_depths([NORMAL]) == {NORMAL: 3}
    order = [_take(redis_client, dispatch, NORMAL) for _ in range(3)]
    assert order == [[other.job_id], [big.job_id, 1], [big.job_id, 2]]


def test_work_released_but_not_sent_is_sent_by_the_sweep_once(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = _store(settings)
    dispatch = Dispatch(store, make_celery(settings), fair_share=True)
    record = _job(store, "key-a")
    # the API died after the release script, before the send: nothing is in the Celery queue
    assert store.fair.admit([record.job_id], NORMAL, "key-a") == [record.job_id]
    assert _messages(redis_client, NORMAL) == []
    assert store.queue_depths([NORMAL]) == {NORMAL: 0}

    assert dispatch.sweep(grace=0) == 1
    assert dispatch.sweep(grace=0) == 0  # sent once: out of the outbox
    assert _messages(redis_client, NORMAL) == [[record.job_id]]


def test_a_message_sent_twice_runs_the_job_once(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = _store(settings)
    dispatch = Dispatch(store, make_celery(settings), fair_share=True)
    record = _job(store, "key-a")
    released = store.fair.admit([record.job_id], NORMAL, "key-a")
    # the API sent the message and died before marking it sent: the sweep sends it again
    dispatch._send(released[0], NORMAL)
    assert dispatch.sweep(grace=0) == 1
    assert _messages(redis_client, NORMAL) == [[record.job_id], [record.job_id]]

    assert store.claim(record.job_id, "w1:1", 30) is Claim.claimed
    assert store.claim(record.job_id, "w2:1", 30) is Claim.busy  # the duplicate is dropped
    assert store.succeed(record.job_id)
    assert store.claim(record.job_id, "w2:1", 30) is Claim.succeeded
    assert store.require(record.job_id).attempts == 1


def test_in_flight_work_of_an_ended_job_frees_its_keys_room(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = _store(settings, cap=1)
    dispatch = Dispatch(store, make_celery(settings), fair_share=True)
    first, second = _job(store, "key-a"), _job(store, "key-a")
    dispatch.job(first)
    dispatch.job(second)
    # the first's message was taken by a worker that died before telling the fair share, and
    # the job ended since (here: canceled); its room comes back with the sweep
    redis_client.rpop(NORMAL)
    store.cancel(first.job_id)

    dispatch.sweep(grace=0)

    assert _messages(redis_client, NORMAL) == [[second.job_id]]


def test_switched_off_the_sweep_releases_everything_still_waiting(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = _store(settings, cap=1)
    records = [_job(store, "key-a") for _ in range(4)]
    on = Dispatch(store, make_celery(settings), fair_share=True)
    for record in records:
        on.job(record)
    assert len(_messages(redis_client, NORMAL)) == 1

    off = Dispatch(store, make_celery(settings), fair_share=False)
    off.sweep(grace=0)
    assert _messages(redis_client, NORMAL) == [[r.job_id] for r in records]
    assert store.queue_depths([NORMAL]) == {NORMAL: 4}
    newer = _job(store, "key-a")
    off.job(newer)  # off: straight into the queue
    assert _messages(redis_client, NORMAL)[-1] == [newer.job_id]


def test_a_submit_records_and_queues_in_one_step_with_celerys_own_message(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = _store(settings, cap=1)
    celery = make_celery(settings)
    dispatch = Dispatch(store, celery, fair_share=True)
    first, second = (
        JobRecord(
            job_id=uuid.uuid4().hex,
            status=JobStatus.queued,
            created_at=utcnow(),
            owner="key-a",
            queue=NORMAL,
        )
        for _ in range(2)
    )
    dispatch.submit(first)  # A has room: recorded, and its message on the queue
    dispatch.submit(second)  # A's one slot is taken: recorded, waiting with its message
    assert store.require(first.job_id).status is JobStatus.queued
    assert store.require(second.job_id).status is JobStatus.queued
    [pushed] = redis_client.lrange(NORMAL, 0, -1)
    # what `send_task` itself pushes, but for its ids
    celery.send_task("ocr.run", args=[first.job_id], queue=NORMAL, retry=False)
    sent = redis_client.lpop(NORMAL)
    ours, theirs = json.loads(pushed), json.loads(sent)
    assert ours["body"] == theirs["body"]
    assert ours.keys() == theirs.keys()
    assert (
        ours["headers"]["task"] == "ocr.run" and ours["headers"].keys() == theirs["headers"].keys()
    )
    assert ours["properties"]["delivery_info"] == theirs["properties"]["delivery_info"]
    assert redis_client.hexists("ocrq:fair:messages", second.job_id)

    # the take releases the next with its kept message, in the same step: nothing to send after
    assert _take(redis_client, dispatch, NORMAL) == [first.job_id]
    assert _messages(redis_client, NORMAL) == [[second.job_id]]
    assert redis_client.zcard("ocrq:fair:sends") == 0
    assert redis_client.hlen("ocrq:fair:messages") == 0


def _one_slot_of_key_a(settings: Settings) -> tuple[JobStore, Dispatch, JobRecord, JobRecord]:
    """Key A with one slot in flight, taken by its first job (queued); a second job recorded."""
    store = _store(settings, cap=1)
    dispatch = Dispatch(store, make_celery(settings), fair_share=True)
    first, second = _job(store, "key-a"), _job(store, "key-a")
    dispatch.job(first)
    return store, dispatch, first, second


def test_work_waiting_without_its_message_is_sent_by_its_releaser(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store, dispatch, first, older = _one_slot_of_key_a(settings)
    # waiting as an older version left it: the id alone, no message kept
    assert store.fair.admit([older.job_id], NORMAL, "key-a") == []
    assert _take(redis_client, dispatch, NORMAL) == [first.job_id]
    # released through the outbox: the taker sent it and took it out
    assert _messages(redis_client, NORMAL) == [[older.job_id]]
    assert redis_client.zcard("ocrq:fair:sends") == 0


def test_a_canceled_waiting_job_leaves_no_message_behind(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store, dispatch, first, waiting = _one_slot_of_key_a(settings)
    dispatch.job(waiting)
    assert redis_client.hexists("ocrq:fair:messages", waiting.job_id)
    store.cancel(waiting.job_id)
    assert redis_client.hlen("ocrq:fair:messages") == 0
    assert _take(redis_client, dispatch, NORMAL) == [first.job_id]
    assert _messages(redis_client, NORMAL) == []
