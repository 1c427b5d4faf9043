"""The fair share: within one queue (engine x priority), workers serve API keys in turn.

Kombu's queue is a FIFO list: one key's flood would put every other key's job behind it. So
with FAIR_SHARE=on a tenant (the job record's `owner`, '' without keys) has at most
FAIR_SHARE_IN_FLIGHT_PER_TENANT messages in one queue that no worker has taken yet (its
in-flight zset, `keys.fair_flight`); the rest of its work (a job id, or a page range "<job
id>/<k>") waits in its list (`keys.fair_wait`) with its Celery message (FAIR_MESSAGES, built by
messages.py). Each step is one Lua script (scripts.py):
- the API's submit (CREATE_QUEUED, JobStore.create with a message): the record is written and,
  while nothing of the tenant waits and it has room, the message pushed onto the queue; else
  the job joins the tenant's list. One round trip, as the record alone.
- a worker's take, first thing in its task (FAIR_TAKEN): the work leaves the in-flight zset
  and the tenant's next waiting work is released: into flight, its message pushed onto the
  queue in the same step.
So the Celery queue holds at most a few messages per tenant, interleaved: the next one a worker
takes is at most (tenants x cap) messages away, whoever flooded.

Crash safety: released work is sent work (the push is inside the step), so no process dies
between the two. A worker that dies after taking a message has it redelivered by kombu (late
acks); a second take of the same work releases nothing more (the room is the zset's size);
the job's lease recovery is unchanged and admits one runner. Work whose message was taken but
not marked (a worker that died between the two) is dropped from the in-flight zset by the
sweep once its job has ended. Work waiting without a message (kombu would push it elsewhere,
messages.py, or an older version admitted it) goes to the send outbox (FAIR_SENDS) as it is
released: its releaser sends it and takes it out; the orphan sweep sends what a dead one did
not (after SEND_GRACE_SECONDS, so it rarely doubles a live sender's send); a message sent twice
is harmless (the job's or range's lease admits one runner; one done is not read again).

Each queue keeps its own lanes: a `high` job is released into the `high` queue whatever the
`normal` ones of any key do, and workers take `high` first as before.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis

from shared.jobs import keys, scripts
from shared.jobs.connection import text

# released work whose message is older than this in the outbox is sent by the sweep
SEND_GRACE_SECONDS = 10.0
_ENDED = {"succeeded", "failed", "canceled"}


def tenant_of(owner: str | None) -> str:
    """The tenant a job's work is shared under: its key's fingerprint, '' without keys."""
    return owner or ""


def job_of(member: str) -> str:
    """The job a piece of work belongs to (a job id, or a range member "<job id>/<k>")."""
    return member.partition("/")[0]


class FairShare:
    """The fair share's Redis side: per-tenant waiting lists, in flight, and the send outbox."""

    def __init__(self, client: redis.Redis, cap: int) -> None:
        self.redis = client
        self.cap = cap  # work of one tenant released into one queue and not taken yet
        self._admit = client.register_script(scripts.FAIR_ADMIT)
        self._release = client.register_script(scripts.FAIR_RELEASE)
        self._taken = client.register_script(scripts.FAIR_TAKEN)
        self._forget = client.register_script(scripts.FAIR_FORGET)

    def lane(
        self, queue: str, tenant: str, cap: int | None = None
    ) -> tuple[list[str], list[str | int | float]]:
        """A lane's keys (waiting list, in-flight zset) and arguments (now, cap, queue, name),
        as the scripts take them first."""
        lane_keys = [keys.fair_wait(queue, tenant), keys.fair_flight(queue, tenant)]
        cap = self.cap if cap is None else cap
        return lane_keys, [time.time(), cap, queue, keys.fair_lane(queue, tenant)]

    def _run(
        self,
        script: redis.commands.core.Script,
        queue: str,
        tenant: str,
        args: tuple[str | int, ...],
        extra_keys: tuple[str, ...] = (),
        cap: int | None = None,
    ) -> object:
        lane_keys, lane_args = self.lane(queue, tenant, cap)
        return script(keys=[*lane_keys, *extra_keys], args=[*lane_args, *args])

    def admit(
        self,
        members: list[str],
        queue: str,
        tenant: str,
        *,
        front: bool = False,
        messages: list[str | None] | None = None,
    ) -> list[str]:
        """Put work at the back (or `front`) of the tenant's list with its Celery `messages`
        (None: none kept) and release what fits: released work without a message, in order,
        for the caller to send (`sent` after)."""
        pairs = _pairs(members, messages)
        args = ("front" if front else "back", "0", *pairs)
        return _texts(self._run(self._admit, queue, tenant, args, (keys.FAIR_SENDS,)))

    def admit_ranges(
        self,
        job_id: str,
        parts: list[int],
        queue: str,
        tenant: str,
        messages: list[str | None] | None = None,
    ) -> list[str]:
        """A planned job's ranges waiting in RANGE_SENDS go to the front of the tenant's list
        (each once, however many processes admit them); as `admit`."""
        members = [keys.range_member(job_id, part) for part in parts]
        args = ("front", "1", *_pairs(members, messages))
        return _texts(self._run(self._admit, queue, tenant, args, (keys.RANGE_SENDS,)))

    def taken(self, job_id: str, member: str) -> tuple[str | None, list[str]]:
        """A worker took `member` (work of `job_id`) off its queue: the tenant's next work is
        released. (The job's queue, released work without a message for the caller to send);
        (None, []) when the record is gone."""
        reply = _texts(self._taken(keys=[keys.job(job_id)], args=[time.time(), self.cap, member]))
        return (reply[0], reply[1:]) if reply else (None, [])

    def top_up(self, queue: str, tenant: str, cap: int | None = None) -> list[str]:
        """Release what fits (the sweep; `cap` None: the setting's)."""
        return _texts(self._run(self._release, queue, tenant, (), cap=cap))

    def forget(self, job_id: str, queue: str, tenant: str) -> int:
        """A canceled job's work leaves the tenant's list; how many entries went."""
        return int(self._run(self._forget, queue, tenant, (job_id,)))  # type: ignore[call-overload]

    def sent(self, members: Iterable[str]) -> None:
        """Their messages are sent: out of the outbox."""
        members = list(members)
        if members:
            self.redis.zrem(keys.FAIR_SENDS, *members)

    def unsent(self, older_than: float = SEND_GRACE_SECONDS) -> list[str]:
        """Work released more than `older_than` seconds ago whose message is not sent."""
        edge = time.time() - older_than
        return _texts(self.redis.zrangebyscore(keys.FAIR_SENDS, "-inf", edge))

    def lanes(self) -> list[tuple[str, str]]:
        """(queue, tenant) of every tenant with work waiting."""
        return sorted(keys.parse_fair_lane(text(m)) for m in self.redis.smembers(keys.FAIR_ACTIVE))

    def drop_ended(self, queue: str, tenant: str) -> int:
        """Work in flight whose job has ended or is gone (its taker died before marking it, or
        it was canceled) stops holding the tenant's room; how many went."""
        flight = keys.fair_flight(queue, tenant)
        members = _texts(self.redis.zrange(flight, 0, -1))
        if not members:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for member in members:
            pipe.hget(keys.job(job_of(member)), "status")
        ended = [
            m
            for m, s in zip(members, pipe.execute(), strict=True)
            if s is None or text(s) in _ENDED
        ]
        if ended:
            self.redis.zrem(flight, *ended)
        return len(ended)

    def waiting(self, queues: list[str]) -> dict[str, int]:
        """Work waiting (not released yet) per queue."""
        counts = self.redis.hmget(keys.FAIR_WAITING, queues)
        return {q: max(0, int(c or 0)) for q, c in zip(queues, counts, strict=True)}


def _pairs(members: list[str], messages: list[str | None] | None) -> list[str]:
    """member, message ('' none), ... as FAIR_ADMIT takes them."""
    kept = messages or [None] * len(members)
    return [item for pair in zip(members, kept, strict=True) for item in (pair[0], pair[1] or "")]


def _texts(reply: object) -> list[str]:
    assert isinstance(reply, list)
    return [text(m) for m in reply]
