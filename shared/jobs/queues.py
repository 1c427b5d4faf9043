"""The Celery queues of the job protocol: one per (engine kind, priority).

A job waits in `ocr.<engine>.<priority>`, e.g. `ocr.rapidocr.high`. A worker consumes its
engine's queues highest priority first. Kombu's Redis transport keeps each queue's waiting messages
in a Redis list named like the queue; with `queue_order_strategy='priority'` (shared/queue.py)
its BRPOP names the lists in this order, so Redis pops from the first non-empty one.
"""

from __future__ import annotations

from shared.jobs.keys import QUEUE
from shared.options import Engine, Priority

# highest first: the order a worker names its queues in
PRIORITIES: tuple[Priority, ...] = (Priority.high, Priority.normal, Priority.batch)
_PRIORITY_NAMES = frozenset(p.value for p in Priority)
_ENGINE_NAMES = frozenset(e.value for e in Engine)


def queue_name(engine: Engine | str, priority: Priority | str) -> str:
    """The queue a job for `engine` at `priority` waits in."""
    return f"{QUEUE}.{Engine(engine).value}.{Priority(priority).value}"


def worker_queues(engine: Engine | str) -> list[str]:
    """What a worker whose engine is `engine` consumes, in the order it takes them."""
    return [queue_name(engine, p) for p in PRIORITIES]


def all_queues() -> list[str]:
    """Every queue a job can wait in: each engine's by priority."""
    return [queue_name(e, p) for e in Engine for p in PRIORITIES]


def priority_of(queue: str) -> Priority | None:
    """The priority a queue serves; None for a name that is no queue of the protocol."""
    parts = queue.split(".")
    return Priority(parts[2]) if len(parts) == 3 and parts[2] in _PRIORITY_NAMES else None


def engine_of(queue: str) -> Engine | None:
    parts = queue.split(".")
    return Engine(parts[1]) if len(parts) == 3 and parts[1] in _ENGINE_NAMES else None


def ahead_of(priority: Priority) -> list[str]:
    """The queues whose jobs a worker takes before (or with) a new job at `priority`: the ones
    at that priority or above, every engine."""
    rank = PRIORITIES.index(priority)
    return [q for q in all_queues() if (p := priority_of(q)) and PRIORITIES.index(p) <= rank]
