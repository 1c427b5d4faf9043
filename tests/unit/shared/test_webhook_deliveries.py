"""Webhook delivery state in the real Redis: scheduled once per event, taken under a lease,
outcomes of a stale attempt dropped, and a dead dispatcher's events taken over."""

from __future__ import annotations

import time

import redis

from shared.jobs import JobRecord, JobStatus, JobStore, keys, utcnow
from shared.jobs.webhooks import Delivery, WebhookDeliveries, delivery_id_for
from shared.options import JobOptions
from worker.webhooks.dispatcher import Dispatcher

HOOK = "https://hooks.example/ocr"


def _job(store: JobStore, job_id: str, **options: str) -> None:
    store.create(
        JobRecord(
            job_id=job_id,
            status=JobStatus.queued,
            created_at=utcnow(),
            options=JobOptions(**options),
        )
    )


def _delivery(delivery_id: str = "d1", url: str = HOOK, owner: str = "") -> Delivery:
    return Delivery(delivery_id, "job1", "succeeded", "1-0", url, '{"a":1}', owner)


def test_a_delivery_is_scheduled_once_and_retaken_only_after_its_lease(
    redis_client: redis.Redis,
) -> None:
    deliveries = WebhookDeliveries(redis_client, 60)

    assert deliveries.schedule(_delivery(), 1)
    assert not deliveries.schedule(_delivery(), 1)  # the same event read twice
    [(taken, attempt)] = deliveries.take_due(10, lease_seconds=0.5)
    assert (taken.delivery_id, taken.body, attempt) == ("d1", '{"a":1}', 1)
    assert deliveries.take_due(10, lease_seconds=0.5) == []  # in flight
    time.sleep(0.7)  # its sender died mid-attempt: due again after the lease
    [(again, attempt)] = deliveries.take_due(10, lease_seconds=5)
    assert attempt == 2 and again.body == taken.body


def test_a_stale_attempts_outcome_is_dropped_and_a_final_one_expires(
    redis_client: redis.Redis,
) -> None:
    deliveries = WebhookDeliveries(redis_client, 60)
    deliveries.schedule(_delivery(), 1)
    deliveries.take_due(1, lease_seconds=0)
    [(_, attempt)] = deliveries.take_due(1, lease_seconds=30)

    assert not deliveries.record("d1", 1, "retrying", 500, "HTTP 500", time.time())  # stale
    assert deliveries.record("d1", attempt, "delivered", 200, None, None)
    assert deliveries.pending_count() == 0
    state = deliveries.latest_for_job("job1")
    assert (state.last_outcome, state.last_status_code, state.attempts) == ("delivered", 200, 2)
    assert 0 < redis_client.ttl(keys.webhook_delivery("d1")) <= 60


def test_a_busy_host_is_taken_past_not_waited_on(redis_client: redis.Redis) -> None:
    """Deliveries are taken per lane (key and host:port): at most `per_lane` of one, less what
    the sender has in flight there, and a full lane does not hide those queued behind it."""
    deliveries = WebhookDeliveries(redis_client, 60)
    now = time.time()
    for n in range(6):  # the slow host's deliveries, all due before the other's
        slow = _delivery(f"slow{n}", "http://slow.example:81/h", "key-a")
        deliveries.schedule(slow, n, now - 10 + n)
    deliveries.schedule(_delivery("fast", "http://fast.example/h", "key-a"), 9, now - 1)

    first = deliveries.take_due(4, lease_seconds=30, per_lane=2)
    in_flight = {("key-a", "slow.example:81"): 2}
    second = deliveries.take_due(4, lease_seconds=30, per_lane=2, in_flight=in_flight)

    assert [d.delivery_id for d, _ in first] == ["slow0", "slow1", "fast"]
    assert {d.lane for d, _ in first} == {"slow.example:81", "fast.example:80"}
    assert second == []  # the slow lane is full, the fast one in flight: nothing taken
    assert deliveries.record("fast", 1, "retrying", 500, "receiver answered 500", now - 1)
    [(again, _)] = deliveries.take_due(1, 30, per_lane=2, in_flight=in_flight)
    assert again.delivery_id == "fast"
    assert deliveries.pending_count() == 7


def test_a_busy_key_is_taken_past_not_waited_on(redis_client: redis.Redis) -> None:
    """One key's deliveries to many hosts: at most `per_owner` of them taken, and another key's
    delivery, due after all of them, is taken at once."""
    deliveries = WebhookDeliveries(redis_client, 60)
    now = time.time()
    for n in range(20):
        flood = _delivery(f"a{n}", f"http://h{n}.example/h", "key-a")
        deliveries.schedule(flood, n, now - 30 + n)
    deliveries.schedule(_delivery("b", "http://hooks.b.example/h", "key-b"), 99, now - 1)

    first = deliveries.take_due(8, 30, per_lane=2, per_owner=3)
    in_flight = {("key-a", d.lane): 1 for d, _ in first if d.owner == "key-a"}
    second = deliveries.take_due(8, 30, per_lane=2, per_owner=3, in_flight=in_flight)

    assert [d.delivery_id for d, _ in first] == ["a0", "a1", "a2", "b"]
    assert second == []  # key-a is at its share, and nothing else is due
    # without keys (owner ''), one tenant: no share
    for n in range(5):
        deliveries.schedule(_delivery(f"x{n}", f"http://x{n}.example/h", ""), 200 + n, now)
    assert len(deliveries.take_due(8, 30, per_lane=2, per_owner=3, in_flight=in_flight)) == 5


def test_deliveries_of_an_older_version_are_put_in_their_lanes(
    redis_client: redis.Redis,
) -> None:
    deliveries = WebhookDeliveries(redis_client, 60)
    deliveries.schedule(_delivery("old", owner="key-a"), 1)
    redis_client.hdel(keys.webhook_delivery("old"), "lane")  # as the previous version left it
    lane = keys.webhook_lane("key-a", "hooks.example:443")
    redis_client.delete(keys.WEBHOOK_OWNERS, keys.webhook_owner_hosts("key-a"), lane)

    assert deliveries.take_due(10, lease_seconds=30) == []
    assert deliveries.adopt_unlaned() == 1 and deliveries.adopt_unlaned() == 0
    [(taken, _)] = deliveries.take_due(10, lease_seconds=0)
    assert taken.delivery_id == "old" and taken.lane == "hooks.example:443"
    # an older sender (no lanes) records it final: out of the due zset, left in its lane
    redis_client.zrem(keys.WEBHOOKS_DUE, "old")
    assert deliveries.take_due(10, lease_seconds=30) == []  # never sent again
    assert redis_client.exists(keys.WEBHOOK_OWNERS, keys.webhook_owner_hosts("key-a"), lane) == 0


def test_only_events_the_job_asked_for_become_deliveries(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client, 60)
    deliveries = WebhookDeliveries(redis_client, 60)
    deliveries.ensure_group()
    _job(store, "a" * 32, callback_url=HOOK)
    _job(store, "b" * 32, callback_url=HOOK, callback_events="all")
    _job(store, "c" * 32)
    for job_id in ("a" * 32, "b" * 32, "c" * 32):
        store.cancel(job_id)
    events = deliveries.read_events("one", 100, 100)

    assert Dispatcher(store, deliveries, "one").handle(events) == 3  # a: end; b: queued + end
    jobs = sorted(d.job_id[0] + d.event for d, _ in deliveries.take_due(10, 30))
    assert jobs == ["acanceled", "bcanceled", "bqueued"]
    assert deliveries.read_events("one", 100, 100) == []  # acknowledged


def test_a_dead_dispatchers_unacknowledged_events_are_taken_over(
    redis_client: redis.Redis,
) -> None:
    store = JobStore(redis_client, 60)
    deliveries = WebhookDeliveries(redis_client, 60)
    deliveries.ensure_group()
    deliveries.ensure_group()  # a second dispatcher starting: the group is there already
    _job(store, "d" * 32, callback_url=HOOK)
    store.cancel("d" * 32)
    read_by_the_dead_one = deliveries.read_events("dead", 100, 100)
    assert [e.kind for e in read_by_the_dead_one] == ["queued", "canceled"]

    assert deliveries.read_events("alive", 100, 100) == []  # not delivered twice as new
    time.sleep(0.15)
    taken_over = deliveries.reclaim("alive", min_idle_ms=100, count=100)
    assert [e.id for e in taken_over] == [e.id for e in read_by_the_dead_one]
    assert Dispatcher(store, deliveries, "alive").handle(taken_over) == 1
    [(delivery, _)] = deliveries.take_due(10, 30)
    assert delivery.delivery_id == delivery_id_for(read_by_the_dead_one[1])


def test_consumers_of_dead_processes_with_nothing_pending_are_forgotten(
    redis_client: redis.Redis,
) -> None:
    store = JobStore(redis_client, 60)
    deliveries = WebhookDeliveries(redis_client, 60)
    deliveries.ensure_group()
    _job(store, "e" * 32, callback_url=HOOK)
    _job(store, "f" * 32, callback_url=HOOK)
    deliveries.read_events("holds-one", 1, 100)  # its event stays pending
    deliveries.ack([e.id for e in deliveries.read_events("done", 100, 100)])
    time.sleep(0.05)

    assert deliveries.prune_consumers("me", idle_ms=10) == 1
    names = {c["name"] for c in redis_client.xinfo_consumers(keys.EVENTS, keys.WEBHOOK_GROUP)}
    assert names == {"holds-one"}
