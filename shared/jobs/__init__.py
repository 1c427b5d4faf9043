"""The job protocol: one owner for a job's state in Redis.

States: queued -> running -> succeeded | failed, and queued | running -> canceled; a running
job whose worker died goes back to queued (or fails worker_lost after JOB_MAX_ATTEMPTS).
Ended jobs never change again.

Who calls what (all on `JobStore`, each change one Lua script in scripts.py):
- API: `create` (queued) then sends the Celery task `keys.TASK_RUN` on the job's queue
  (queues.py: one per engine kind and priority, e.g. `ocr.rapidocr.high`); `delete`
  if that send failed; `cancel`; reads `get`/`require`, `queue_depth`; `idempotency`
  (idempotency.py) for the Idempotency-Key.
- worker: `claim` (takes the lease, running), `renew` while it runs (worker/watchdog.py),
  `set_pages_total` and `page_done` per page read or failed (counted once per page however
  often it is read: a bitmap; refused once canceled, JobNotFound once the record is gone),
  then `succeed` or `fail(code, message)`, and `release`.
- worker, a job of more pages than one range: `plan` (once: the job lease becomes range 0's,
  the other ranges wait in a send set until their `keys.TASK_RUN_RANGE` message is sent on the
  job's queue), `claim_range` (a range's own lease and attempts), `range_done` (`assemble` for
  exactly one range, the last one done: it ends the job), `renew`/`release` with the range.
- the fair share (FAIR_SHARE=on, fair.py, dispatch.py, messages.py): the API's job (recorded
  and admitted in one script, `Dispatch.submit`) and a plan's ranges (`ranges`) wait in their
  key's list per queue with their Celery messages and are released a few at a time, each
  message pushed by the releasing script; each task first says its message was taken
  (`Dispatch.taken`, one script): the key's next work goes out.
- any process, every ORPHAN_SWEEP_SECONDS: `sweep.recover_orphans` -> `recover` for jobs whose
  lease lapsed, `recover_range` for ranges whose lease lapsed (the job stays running), and the
  range messages not sent yet, and the fair share's (`Dispatch.sweep`).
- /metrics: `metrics` (counters, histograms), `running_count`, `queue_depth`/`queue_depths`, and
  `WorkerRegistry` (heartbeats, workers.py).

A record (`keys.job`) has no TTL while queued or running and expires JOB_TTL_SECONDS after
the end. Every state change writes, in the same script, one event (events.py: queued,
running, page, requeued, succeeded, failed, canceled) to the job's stream and the global one,
and counts its outcome (submitted, succeeded, failed, canceled) for /metrics: no caller counts.
Read them with `events(job_id, after_id)`, `history(job_id)` (record and events together) and
`recent_events(after_id, count)`; webhooks and status streams read there and need no change to
the API or the worker. What each event means is timeline.py's fold beside the scripts (the job
as it was at each event: what a status stream shows). Every state-change script answers one
shape, read once by outcomes.py into named results (`Claim`, `Recovery`, `Change`).
`tail.EventTail` follows the global stream live (XREAD BLOCK, asyncio): the API's event hub
(api/event_hub.py) reads it for every status stream of its process. Webhook deliveries
(webhooks.py, `JobStore.webhooks`): the dispatchers' consumer group on the global stream
and each delivery's state (due zset, a hash each), read by GET /jobs/{id}.
Tenants (usage.py, `JobStore.usage`): the API `admit`s a job against its key's quotas
(counting it submitted) and gives it back if it is not queued after all; the PAGE script counts
each page once in its tenant's usage of the day; every end of a job (`finish` in scripts.py)
takes it out of its tenant's jobs queued or running.
keys.py names every Redis key; nothing outside this package builds one.
"""

from shared.jobs.connection import (
    connect_redis,
    connect_settings_redis,
    redis_errors_as_unavailable,
)
from shared.jobs.events import EventKind, JobEvent
from shared.jobs.idempotency import Bound, Idempotency, Pending
from shared.jobs.keys import QUEUE, TASK_RUN
from shared.jobs.metrics import HISTOGRAMS, JOB_COUNTERS, JobMetrics
from shared.jobs.outcomes import Claim, Recovery
from shared.jobs.record import JobError, JobRecord, JobStatus, utcnow
from shared.jobs.store import WORKER_LOST, JobStore
from shared.jobs.sweep import SweepReport, recover_orphans
from shared.jobs.workers import WorkerBeat, WorkerRegistry, default_worker_id

__all__ = [
    "HISTOGRAMS",
    "JOB_COUNTERS",
    "QUEUE",
    "TASK_RUN",
    "WORKER_LOST",
    "Bound",
    "Claim",
    "EventKind",
    "Idempotency",
    "JobError",
    "JobEvent",
    "JobMetrics",
    "JobRecord",
    "JobStatus",
    "JobStore",
    "Pending",
    "Recovery",
    "SweepReport",
    "WorkerBeat",
    "WorkerRegistry",
    "connect_redis",
    "connect_settings_redis",
    "default_worker_id",
    "recover_orphans",
    "redis_errors_as_unavailable",
    "utcnow",
]
