"""Following every job's events as they happen: the global stream (`keys.EVENTS`) read with
XREAD BLOCK on one asyncio connection.

The API's event hub (api/event_hub.py) holds one EventTail per process and fans what it reads
out to the status streams, long-polls and POST /ocr waiting on a job, so none of them holds a
Redis connection of its own. A job's past events are read from its own stream instead
(JobStore.history / JobStore.events).
"""

from __future__ import annotations

import logging

import redis.asyncio

from shared.jobs import keys
from shared.jobs.connection import read_entries, text
from shared.jobs.events import JobEvent

log = logging.getLogger(__name__)

START = "0-0"  # the position before any event


class EventTail:
    """Reads the global event stream from a position onwards. Connects on first use and again
    after Redis comes back (a command on a broken connection raises redis' ConnectionError)."""

    def __init__(self, redis_url: str, block_seconds: float = 5.0) -> None:
        self.block_ms = int(block_seconds * 1000)
        self._client = redis.asyncio.Redis.from_url(
            redis_url,
            decode_responses=True,
            protocol=2,
            socket_connect_timeout=1.0,
            # a blocked XREAD answers after block_ms at the latest: a longer silence is trouble
            socket_timeout=block_seconds + 5.0,
            retry_on_timeout=False,
        )

    async def latest_id(self) -> str:
        """The id of the newest event (START when there is none): where a new reader begins."""
        newest = await self._client.xrevrange(keys.EVENTS, "+", "-", count=1)
        return text(newest[0][0]) if newest else START

    async def read(self, after_id: str, count: int = 1000) -> list[JobEvent]:
        """Events after `after_id`, oldest first; waits up to `block_seconds` for one."""
        reply = await self._client.xread({keys.EVENTS: after_id}, count=count, block=self.block_ms)
        events = []
        for entry_id, fields in read_entries(reply):
            try:
                events.append(JobEvent.from_entry(entry_id, fields))
            except (KeyError, ValueError):  # a foreign or newer writer's entry: skip it
                log.warning("event %s unreadable, skipped: %r", entry_id, fields)
        return events

    async def close(self) -> None:
        await self._client.aclose()
