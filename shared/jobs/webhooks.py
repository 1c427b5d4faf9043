"""Webhook deliveries in Redis: the dispatchers' consumer group on the global event stream,
and each delivery's state, so a restarted sender carries on where the last one stopped.

- Dispatchers read `ocrq:events` in the consumer group `webhooks` (several share the work);
  a dispatcher that died with events unacknowledged has them taken over (XAUTOCLAIM) by
  another after `min_idle`. Scheduling a delivery is idempotent: an event read twice makes one.
- A delivery is a hash (`webhook_delivery`) with the body fixed at scheduling (every retry
  sends the same bytes, the same delivery id) and a member of the zset `WEBHOOKS_DUE` scored by
  when it is due, and of its lane's: the lane is the job's API key (owner) and the callback's
  host:port, found through two indexes (owners, then each owner's hosts, scored by their
  earliest due delivery). A sender takes due ones owner by owner and lane by lane, at most a
  few per lane and per owner less what it has in flight there (so a host that hangs holds only
  its lane's slots, a key only its own share, and a full one never stands in front of another's
  due deliveries), pushing them a lease ahead (a sender that dies mid-attempt leaves them due
  again), then records the outcome: delivered, retrying (due again later) or gave_up. A final
  delivery expires JOB_TTL_SECONDS later.
- `ocrq:webhooks:job:<id>` lists a job's deliveries by event time: GET /jobs/{id} shows the
  latest.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime

import redis

from shared.callback_urls import host_lane
from shared.jobs import keys, scripts
from shared.jobs.connection import (
    read_entries,
    redis_errors_as_unavailable,
    text,
    text_fields,
    text_or_none,
)
from shared.jobs.events import JobEvent


@dataclass(frozen=True)
class Delivery:
    """One webhook POST to make (and remake until it succeeds or gives up)."""

    delivery_id: str
    job_id: str
    event: str
    event_id: str
    url: str
    body: str  # the JSON sent, the same on every attempt
    owner: str = ""  # the job's key fingerprint: which secret signs it
    created_at: str = ""
    lane: str = ""  # host:port of the url: deliveries are taken and sent per lane
    traceparent: str = ""  # the job's trace (traces on): the sender's lines name it


@dataclass(frozen=True)
class DeliveryState:
    """What GET /jobs/{id} shows of a job's latest delivery."""

    delivery_id: str
    event: str
    url: str
    attempts: int
    last_attempt_at: str | None
    last_outcome: str | None  # delivered, retrying, gave_up; None before the first attempt
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None


def delivery_id_for(event: JobEvent) -> str:
    """Derived from the event, so a re-read event schedules nothing new."""
    return f"{event.job_id}-{event.id}"


class WebhookDeliveries:
    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self.ttl = ttl_seconds
        self._schedule = client.register_script(scripts.WEBHOOK_SCHEDULE)
        self._take = client.register_script(scripts.WEBHOOK_TAKE)
        self._outcome = client.register_script(scripts.WEBHOOK_OUTCOME)
        self._adopt = client.register_script(scripts.WEBHOOK_ADOPT)
        self._reclaim_cursor = "0-0"

    # -- the dispatchers' consumer group --
    def ensure_group(self) -> None:
        """Create the group at the stream's start, once (a new group reads what is kept)."""
        try:
            self._redis.xgroup_create(keys.EVENTS, keys.WEBHOOK_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_events(self, consumer: str, count: int, block_ms: int) -> list[JobEvent]:
        """New events for this consumer (waits up to block_ms for one)."""
        answer = self._redis.xreadgroup(
            keys.WEBHOOK_GROUP, consumer, {keys.EVENTS: ">"}, count=count, block=block_ms
        )
        return [JobEvent.from_entry(i, f) for i, f in read_entries(answer)]

    def reclaim(self, consumer: str, min_idle_ms: int, count: int) -> list[JobEvent]:
        """Events another consumer took and left unacknowledged for min_idle_ms, now ours."""
        answer = self._redis.xautoclaim(
            keys.EVENTS,
            keys.WEBHOOK_GROUP,
            consumer,
            min_idle_ms,
            start_id=self._reclaim_cursor,
            count=count,
        )
        self._reclaim_cursor = answer[0]
        return [JobEvent.from_entry(i, f) for i, f in answer[1] if f]

    def prune_consumers(self, keep: str, idle_ms: int) -> int:
        """Forget consumers (dead processes: each process is a new one) with nothing pending
        that were idle for idle_ms; the number forgotten."""
        pruned = 0
        for consumer in self._redis.xinfo_consumers(keys.EVENTS, keys.WEBHOOK_GROUP):
            name = consumer["name"]
            if name != keep and consumer["pending"] == 0 and consumer["idle"] > idle_ms:
                self._redis.xgroup_delconsumer(keys.EVENTS, keys.WEBHOOK_GROUP, name)
                pruned += 1
        return pruned

    def ack(self, event_ids: list[str]) -> None:
        if event_ids:
            self._redis.xack(keys.EVENTS, keys.WEBHOOK_GROUP, *event_ids)

    # -- deliveries --
    def schedule(self, delivery: Delivery, event_ms: int, due: float | None = None) -> bool:
        """Record a delivery, due now (or at `due`); False when it exists already."""
        due = time.time() if due is None else due
        lane = delivery.lane or host_lane(delivery.url)
        values = {f.name: getattr(delivery, f.name) for f in fields(delivery)}
        values |= {"lane": lane, "attempts": 0, "next_attempt_at": _iso(due)}
        args = [item for pair in values.items() for item in pair]
        return (
            self._schedule(
                keys=[
                    keys.webhook_delivery(delivery.delivery_id),
                    keys.WEBHOOKS_DUE,
                    keys.job_webhooks(delivery.job_id),
                    keys.WEBHOOK_OWNERS,
                    keys.webhook_owner_hosts(delivery.owner),
                    keys.webhook_lane(delivery.owner, lane),
                ],
                args=[delivery.delivery_id, due, event_ms, self.ttl, delivery.owner, lane, *args],
            )
            == 1
        )

    def take_due(
        self,
        limit: int,
        lease_seconds: float,
        per_lane: int | None = None,
        per_owner: int | None = None,
        in_flight: Mapping[tuple[str, str], int] | None = None,
    ) -> list[tuple[Delivery, int]]:
        """Up to `limit` due deliveries, each with the number of the attempt now taken: at most
        `per_lane` to one (owner, host) lane and `per_owner` of one owner (but the owner '': no
        keys), less the caller's `in_flight` by lane. None: no bound but `limit`."""
        now = time.time()
        in_flight = {lane: n for lane, n in (in_flight or {}).items() if n > 0}
        by_owner: Counter[str] = Counter()
        for (owner, _), n in in_flight.items():
            by_owner[owner] += n
        answer = self._take(
            keys=[keys.WEBHOOKS_DUE, keys.WEBHOOK_OWNERS],
            args=[
                now,
                lease_seconds,
                limit,
                keys.webhook_delivery(""),
                _iso(now),
                keys.webhook_owner_hosts(""),
                keys.WEBHOOK_LANE_PREFIX,
                _UNBOUNDED if per_lane is None else per_lane,
                _UNBOUNDED if per_owner is None else per_owner,
                len(in_flight),
                *(item for (owner, host), n in in_flight.items() for item in (owner, host, n)),
                *(item for pair in by_owner.items() for item in pair),
            ],
        )
        taken = []
        for delivery_id, attempt in zip(answer[::2], answer[1::2], strict=True):
            delivery = self.load(delivery_id)
            if delivery is not None:
                taken.append((delivery, int(attempt)))
        return taken

    def load(self, delivery_id: str) -> Delivery | None:
        data = text_fields(self._redis.hgetall(keys.webhook_delivery(delivery_id)))
        if not data:
            return None
        return Delivery(**{f.name: data.get(f.name, "") for f in fields(Delivery)})

    def record(
        self,
        delivery_id: str,
        attempt: int,
        outcome: str,
        status_code: int | None,
        error: str | None,
        next_due: float | None,
    ) -> bool:
        """An attempt's outcome; `next_due` None makes it final. False: a later attempt was
        taken meanwhile (this sender overran its lease), so this word is dropped."""
        values = {
            "last_outcome": outcome,
            "last_status_code": "" if status_code is None else status_code,
            "last_error": error or "",
        }
        if next_due is not None:
            values["next_attempt_at"] = _iso(next_due)
        args = [item for pair in values.items() for item in pair]
        next_arg = "" if next_due is None else next_due
        return (
            self._outcome(
                keys=[keys.webhook_delivery(delivery_id), keys.WEBHOOKS_DUE, keys.WEBHOOK_OWNERS],
                args=[
                    delivery_id,
                    attempt,
                    next_arg,
                    self.ttl,
                    keys.webhook_owner_hosts(""),
                    keys.WEBHOOK_LANE_PREFIX,
                    *args,
                ],
            )
            == 1
        )

    def adopt_unlaned(self) -> int:
        """Put deliveries scheduled before lanes existed (by an older version) in their lanes,
        so senders take them; the number adopted. Senders run it when they start."""
        adopted = 0
        for entry in self._redis.zrange(keys.WEBHOOKS_DUE, 0, -1):
            delivery_id = text(entry)
            hash_key = keys.webhook_delivery(delivery_id)
            laned, url, owned = self._redis.hmget(hash_key, "lane", "url", "owner")
            if laned or not url:
                continue
            lane, owner = host_lane(text(url)), text_or_none(owned) or ""
            adopted += self._adopt(
                keys=[
                    hash_key,
                    keys.WEBHOOKS_DUE,
                    keys.WEBHOOK_OWNERS,
                    keys.webhook_owner_hosts(owner),
                    keys.webhook_lane(owner, lane),
                ],
                args=[delivery_id, owner, lane],
            )
        return adopted

    def pending_count(self) -> int:
        """Deliveries not final yet (due or in flight)."""
        return int(self._redis.zcard(keys.WEBHOOKS_DUE))

    @redis_errors_as_unavailable
    def latest_for_job(self, job_id: str) -> DeliveryState | None:
        """The job's latest delivery (by event time) and how it went."""
        ids = self._redis.zrevrange(keys.job_webhooks(job_id), 0, 0)
        if not ids:
            return None
        delivery_id = text(ids[0])
        data = text_fields(self._redis.hgetall(keys.webhook_delivery(delivery_id)))
        if not data:
            return None
        code = data.get("last_status_code")
        return DeliveryState(
            delivery_id=delivery_id,
            event=data.get("event", ""),
            url=data.get("url", ""),
            attempts=int(data.get("attempts") or 0),
            last_attempt_at=data.get("last_attempt_at") or None,
            last_outcome=data.get("last_outcome") or None,
            last_status_code=int(code) if code else None,
            last_error=data.get("last_error") or None,
            next_attempt_at=data.get("next_attempt_at") or None,
        )


_UNBOUNDED = 2**31  # a per-lane or per-owner bound that never binds


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()
