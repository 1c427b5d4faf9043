"""EventHub: one reader of every job's events per API process, fanning them out by job id.

Status streams, `?wait=N` long-polls and POST /ocr each subscribe to one job and wait on an
asyncio queue: an idle one costs neither a thread nor a Redis connection, only the queue. The
hub's single task reads the global event stream (shared/jobs/tail.py) with XREAD BLOCK from
the position it reached, so nothing written while it reconnects is skipped; after Redis was
away it tells every subscriber to re-read its job (RESYNC), in case Redis lost or trimmed
events meanwhile. It never makes a request wait for Redis: /health answers while it is down.

A subscriber subscribes first and reads its job's history second, then drops live events it
has seen already (by stream id): an event between the two is never lost, at worst seen twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Iterator

from redis import RedisError

from shared.errors import QueueUnavailable
from shared.jobs import JobEvent
from shared.jobs.tail import EventTail

log = logging.getLogger(__name__)

READY_TIMEOUT = 3.0  # a subscriber's wait for the hub's first position (Redis down: 503)
_BACKOFF_START, _BACKOFF_MAX = 0.2, 5.0


class Signal(enum.Enum):
    RESYNC = "resync"  # the hub was cut off from Redis: re-read the job's history
    CLOSE = "close"  # the API is shutting down: answer now and end


class Subscription:
    """One waiter's view of one job's live events (and the hub's signals)."""

    def __init__(self, hub: EventHub, job_id: str) -> None:
        self.hub = hub
        self.job_id = job_id
        self.queue: asyncio.Queue[JobEvent | Signal] = asyncio.Queue()

    async def next(self, timeout: float | None = None) -> JobEvent | Signal | None:
        """The next event or signal; None when `timeout` seconds passed without one."""
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None

    def close(self) -> None:
        self.hub.unsubscribe(self)

    def end(self) -> None:
        """Its waiter answers now and ends (its client left)."""
        self.queue.put_nowait(Signal.CLOSE)

    async def aclose(self) -> None:
        """close() for an async caller (a BackgroundTask with a plain function takes a thread)."""
        self.close()

    @contextlib.contextmanager
    def closing(self) -> Iterator[Subscription]:
        try:
            yield self
        finally:
            self.close()


class EventHub:
    def __init__(self, redis_url: str, block_seconds: float = 5.0) -> None:
        self._tail = EventTail(redis_url, block_seconds)
        self._subscribers: dict[str, set[Subscription]] = {}
        self._position: str | None = None  # the last event read; None until first connected
        self._ready = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    # -- lifetime (the app's lifespan) --
    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="event-hub")

    async def stop(self) -> None:
        self.close_streams()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._tail.close()

    def close_streams(self) -> None:
        """Shutting down: every waiter answers now (a stream ends; its client resumes it
        elsewhere with Last-Event-ID), and new ones are answered at once."""
        self._closing = True
        self._broadcast(Signal.CLOSE)

    # -- subscribers --
    def subscribe(self, job_id: str) -> Subscription:
        """Start receiving the job's events (close() the subscription when done)."""
        subscription = Subscription(self, job_id)
        self._subscribers.setdefault(job_id, set()).add(subscription)
        if self._closing:
            subscription.queue.put_nowait(Signal.CLOSE)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscriptions = self._subscribers.get(subscription.job_id)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._subscribers[subscription.job_id]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until the hub knows where the stream stands (at once but for the first seconds of
        the process); a subscriber reads its job's history only after that, so every later
        event reaches it. 503 queue_unavailable when Redis does not answer."""
        if self._ready.is_set():
            return
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            raise QueueUnavailable("the event stream (Redis) is unreachable") from None

    # -- the reader --
    async def _follow(self) -> None:
        backoff = _BACKOFF_START
        cut_off = False
        while True:
            try:
                if self._position is None:
                    self._position = await self._tail.latest_id()
                    self._ready.set()
                    log.info("event hub following events after %s", self._position)
                events = await self._tail.read(self._position)
                if cut_off:
                    log.info("event hub reconnected to Redis at %s", self._position)
                    self._broadcast(Signal.RESYNC)
                    cut_off, backoff = False, _BACKOFF_START
                for event in events:
                    self._dispatch(event)
                    self._position = event.id
            except (RedisError, OSError) as exc:
                if not cut_off:
                    log.warning("event hub lost Redis (%s); retrying", exc)
                cut_off = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            except Exception:  # the hub must outlive any single failure
                log.exception("event hub failed; retrying")
                cut_off = True
                await asyncio.sleep(_BACKOFF_MAX)

    def _dispatch(self, event: JobEvent) -> None:
        for subscription in self._subscribers.get(event.job_id, ()):
            subscription.queue.put_nowait(event)

    def _broadcast(self, signal: Signal) -> None:
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.queue.put_nowait(signal)
