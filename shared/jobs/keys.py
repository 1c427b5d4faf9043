"""Every Redis key of ocrq, and the Celery queue and task names: nothing else builds one.

Job state: `ocrq:job:<id>` (the record, a hash), `ocrq:lease:<id>` (who runs it),
`ocrq:running` / `ocrq:requeue` (sets the orphan sweep walks); a job of several page ranges:
`ocrq:plan:<id>` (its ranges), `ocrq:lease:<id>/<k>` (who runs range k), `ocrq:seen:<id>`
(pages counted), `ocrq:ranges:running` / `ocrq:ranges:sends` (the sweep's sets for ranges);
`ocrq:events:<id>` (the job's events) and `ocrq:events` (everyone's, capped). Beside it:
`ocrq:idem:<sha256>` (Idempotency-Key), `ocrq:metrics:*` (counters, histograms),
`ocrq:worker:<id>` (heartbeats).
Tenants (usage.py; a tenant is a job's owner fingerprint, `anonymous` without a key):
`ocrq:usage:<tenant>:<YYYY-MM-DD>` (a day's usage, a hash, USAGE_RETENTION_DAYS),
`ocrq:usage:totals` (pages and jobs by tenant since ever, for /metrics), `ocrq:usage:billed:<id>`
(a bitmap of the job's pages counted in usage; never reset by a re-run), `ocrq:tenant:<tenant>`
(a zset of the tenant's jobs queued or running, for max_queued).
The fair share (fair.py), per queue (engine x priority) and tenant (the API key's fingerprint,
'' without keys): `ocrq:fair:wait:<queue>:<tenant>` (work not released to Celery yet, a list),
`ocrq:fair:flight:<queue>:<tenant>` (released, not taken by a worker yet, a zset); and
`ocrq:fair:active` ("<queue>|<tenant>" with work waiting), `ocrq:fair:waiting` (a hash: waiting
count per queue), `ocrq:fair:messages` (a hash: waiting work -> its Celery message, pushed as it
is released), `ocrq:fair:sends` (released work whose message is not sent yet, a zset: work
waiting without its message).
Webhooks: `ocrq:webhooks:due` (deliveries by due time), `ocrq:webhooks:delivery:<id>` (one
delivery's state), `ocrq:webhooks:job:<id>` (a job's deliveries by event time); the consumer
group `webhooks` on `ocrq:events`.
Kombu keeps the queued messages in a list named like the queue: `ocr.<engine>.<priority>`
(queues.py builds those names) and the pre-upgrade `ocr`.
"""

from __future__ import annotations

import hashlib

PREFIX = "ocrq:"

QUEUE = "ocr"  # the prefix of queues.py's names (Celery's default queue: no job is sent there)
TASK_RUN = "ocr.run"
TASK_RUN_RANGE = "ocr.run_range"  # [job id, range index]: one page range of a planned job

RANGES_RUNNING = f"{PREFIX}ranges:running"  # "<job id>/<k>" of ranges with a lease taken
RANGE_SENDS = f"{PREFIX}ranges:sends"  # "<job id>/<k>" of ranges whose message is not sent yet
RUNNING = f"{PREFIX}running"  # jobs with a lease taken, to find orphans without SCAN
REQUEUE = f"{PREFIX}requeue"  # orphans set back to queued whose message is not sent yet
EVENTS = f"{PREFIX}events"  # every job's events, capped (webhook dispatchers read it)
EVENTS_MAXLEN = 100_000  # about; XADD MAXLEN ~ trims whole macro nodes
COUNTERS = f"{PREFIX}metrics:counters"
WORKER_PREFIX = f"{PREFIX}worker:"
FAIR_ACTIVE = f"{PREFIX}fair:active"  # "<queue>|<tenant>" of tenants with work waiting
FAIR_WAITING = f"{PREFIX}fair:waiting"  # hash: queue -> work waiting (not released yet)
FAIR_SENDS = f"{PREFIX}fair:sends"  # zset: released work -> when; its message not sent yet
FAIR_MESSAGES = f"{PREFIX}fair:messages"  # hash: waiting work -> its Celery message (kombu's JSON)
# a tenant's lanes: the take's script builds them too, from the job's queue and owner
FAIR_WAIT_PREFIX = f"{PREFIX}fair:wait:"
FAIR_FLIGHT_PREFIX = f"{PREFIX}fair:flight:"
WEBHOOKS_DUE = f"{PREFIX}webhooks:due"  # zset: delivery id -> unix time it is due
# zset: the owner (API key fingerprint, '' without keys) of deliveries not final -> when its
# earliest is due; webhook_owner_hosts: its callback hosts (host:port) the same; webhook_lane:
# its deliveries to one host, as WEBHOOKS_DUE holds them all (senders take lane by lane)
WEBHOOK_OWNERS = f"{PREFIX}webhooks:owners"
WEBHOOK_LANE_PREFIX = f"{PREFIX}webhooks:lane:"
WEBHOOK_GROUP = "webhooks"  # the dispatchers' consumer group on EVENTS
# tenants: the Lua of PAGE and of a job's end build these from the record's owner
USAGE_PREFIX = f"{PREFIX}usage:"
USAGE_TOTALS = f"{USAGE_PREFIX}totals"
USAGE_BILLED_PREFIX = f"{USAGE_PREFIX}billed:"
TENANT_PREFIX = f"{PREFIX}tenant:"
ANONYMOUS_TENANT = "anonymous"  # jobs without an owner (auth off); never a fingerprint


def job(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def lease(job_id: str) -> str:
    return f"{PREFIX}lease:{job_id}"


def plan(job_id: str) -> str:
    """A multi-range job's plan (a hash): range count and size, each range's state/attempts."""
    return f"{PREFIX}plan:{job_id}"


def range_lease(job_id: str, index: int) -> str:
    return f"{PREFIX}lease:{job_id}/{int(index)}"


def pages_seen(job_id: str) -> str:
    """A bitmap of the job's page numbers already counted (a re-run range counts none twice)."""
    return f"{PREFIX}seen:{job_id}"


def range_member(job_id: str, index: int) -> str:
    """A range as RANGES_RUNNING and RANGE_SENDS name it."""
    return f"{job_id}/{int(index)}"


def parse_range_member(member: str) -> tuple[str, int]:
    job_id, _, index = member.partition("/")
    return job_id, int(index)


def fair_wait(queue: str, tenant: str) -> str:
    """A tenant's work (job ids, range members) waiting to be released into `queue`."""
    return f"{FAIR_WAIT_PREFIX}{queue}:{tenant}"


def fair_flight(queue: str, tenant: str) -> str:
    """A tenant's work released into `queue` that no worker has taken yet (zset by time)."""
    return f"{FAIR_FLIGHT_PREFIX}{queue}:{tenant}"


def fair_lane(queue: str, tenant: str) -> str:
    """A (queue, tenant) as FAIR_ACTIVE names it."""
    return f"{queue}|{tenant}"


def parse_fair_lane(lane: str) -> tuple[str, str]:
    queue, _, tenant = lane.partition("|")
    return queue, tenant


def job_events(job_id: str) -> str:
    return f"{EVENTS}:{job_id}"


def idempotency(scope: str | None, key: str) -> str:
    """Hashed, so neither the client's key nor the API key it is scoped to is stored as is."""
    digest = hashlib.sha256(f"{scope or ''}\n{key}".encode()).hexdigest()
    return f"{PREFIX}idem:{digest}"


def histogram(name: str) -> str:
    return f"{PREFIX}metrics:hist:{name}"


def worker(worker_id: str) -> str:
    return f"{WORKER_PREFIX}{worker_id}"


def webhook_delivery(delivery_id: str) -> str:
    return f"{PREFIX}webhooks:delivery:{delivery_id}"


def webhook_owner_hosts(owner: str) -> str:
    return f"{PREFIX}webhooks:owner:{owner}"


def webhook_lane(owner: str, host: str) -> str:
    return f"{WEBHOOK_LANE_PREFIX}{owner}|{host}"  # scripts build it so too, from the prefix


def job_webhooks(job_id: str) -> str:
    return f"{PREFIX}webhooks:job:{job_id}"


def tenant(owner: str | None) -> str:
    """The tenant part of a tenant's keys: the owner fingerprint, or `anonymous`."""
    return owner or ANONYMOUS_TENANT


def usage_day(owner: str | None, day: str) -> str:
    """A tenant's usage of one UTC day (`YYYY-MM-DD`)."""
    return f"{USAGE_PREFIX}{tenant(owner)}:{day}"


def usage_billed(job_id: str) -> str:
    return f"{USAGE_BILLED_PREFIX}{job_id}"


def tenant_active(owner: str | None) -> str:
    """The tenant's jobs queued or running (a zset: job id -> when it was admitted)."""
    return f"{TENANT_PREFIX}{tenant(owner)}"
