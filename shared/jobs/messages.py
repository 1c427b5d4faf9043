"""A job's (or a page range's) Celery message, built ahead of its push (FAIR_SHARE=on).

With the fair share a message is pushed onto its queue by a Lua script of the job protocol
(fair.py): in the step that records the job (its key has room in flight), or in the step that
marks the key's previous message taken (it waited). Nothing runs between the decision and the
push, so no outbox and no sweep stand behind it. The message is Celery's and kombu's own:
`send_task` on a producer whose channel keeps what kombu's Redis transport would LPUSH (the
list and the JSON) instead of pushing it. A message kombu would push to another list than the
queue's own name (message priorities or a key prefix, none of which ocrq sets) is not kept:
such work goes the outbox's way (send, then mark sent).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from celery import Celery
from kombu import Connection
from kombu.utils.json import dumps

from shared.jobs.keys import TASK_RUN, TASK_RUN_RANGE, parse_range_member


def task_call(member: str) -> tuple[str, list[str | int]]:
    """The task and its arguments that run `member` (a job id, or a range "<job id>/<k>")."""
    if "/" in member:
        job_id, part = parse_range_member(member)
        return TASK_RUN_RANGE, [job_id, part]
    return TASK_RUN, [member]


class TaskMessages:
    """Builds messages as `send_task` would push them; one per Celery app (`of`), thread-safe."""

    _by_app: weakref.WeakKeyDictionary[Celery, TaskMessages] = weakref.WeakKeyDictionary()
    _by_app_lock = threading.Lock()

    def __init__(self, celery: Celery) -> None:
        self.celery = celery
        self._lock = threading.Lock()  # one build at a time on the one capturing channel
        self._connection: Connection | None = None
        self._producer: object | None = None
        self._kept: list[tuple[str, str]] = []

    @classmethod
    def of(cls, celery: Celery) -> TaskMessages:
        with cls._by_app_lock:
            found = cls._by_app.get(celery)
            if found is None:
                found = cls._by_app[celery] = cls(celery)
            return found

    def build(self, member: str, queue: str) -> str | None:
        """The message that runs `member` from `queue` (kombu's JSON, as it would LPUSH it onto
        the list named `queue`); None when kombu would push it to another list."""
        task, args = task_call(member)
        with self._lock:
            producer = self._producer or self._open()
            self._kept.clear()
            self.celery.send_task(task, args=args, queue=queue, producer=producer, retry=False)
            [(key, message)] = self._kept
        return message if key == queue else None

    def _open(self) -> object:
        """A channel of the broker's own transport (connected once: kombu pings and declares
        the queue there), its `_put`, where kombu's Redis transport pushes, keeping instead."""
        self._connection = self.celery.connection_for_write()
        channel: Any = self._connection.default_channel  # kombu.transport.redis.Channel

        def keep(queue: str, message: dict, **_: object) -> None:
            priority = channel._get_message_priority(message, reverse=False)
            self._kept.append((channel._q_for_pri(queue, priority), dumps(message)))

        channel._put = keep
        self._producer = self.celery.amqp.Producer(channel)
        return self._producer
