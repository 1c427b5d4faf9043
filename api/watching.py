"""JobWatch: waiting on a job's events instead of polling its record.

- `stream`: GET /jobs/{id}/events, the job at once and then at every event, until its end;
- `current`: GET /jobs/{id}?wait=N, the job once it changed (or after N s);
- `wait_for_end`: POST /ocr, the job once it ended (or after SYNC_WAIT_SECONDS).

Each subscribes to the API's event hub (api/event_hub.py) before it reads the job's history,
so no event falls between the two; the reads run in threads like every other Redis read of
the API, while the waits cost no thread. At most OPENING_READS of those reads run at once:
thousands of streams opening together otherwise filled the whole thread pool with them, and
forty threads parsing Redis answers kept the event loop waiting for the GIL at each of its
system calls (python -m bench.stream_opening).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from starlette.concurrency import run_in_threadpool

from api import sse
from api.event_hub import EventHub, Signal, Subscription
from api.schemas import JobView
from api.service import JobAccess
from shared.errors import JobNotFound
from shared.jobs import JobEvent, JobRecord
from shared.jobs.timeline import Moment, event_order, latest, moments_after, next_moment

log = logging.getLogger(__name__)

WAIT_LIMIT_SECONDS = 60  # the longest GET /jobs/{id}?wait=N
OPENING_READS = 4  # a job's history read as a wait or stream opens: at most this many at once


class JobWatch:
    def __init__(self, access: JobAccess, hub: EventHub, keepalive_seconds: float) -> None:
        self.access = access
        self.hub = hub
        self.keepalive = keepalive_seconds
        self._opening_reads = asyncio.Semaphore(OPENING_READS)

    async def _open(
        self, job_id: str, api_key: str | None
    ) -> tuple[Subscription, JobRecord, list[JobEvent], JobView]:
        """Subscribe, then read the job's history (404 for an unknown or another key's job)."""
        subscription = self.hub.subscribe(job_id)
        try:
            await self.hub.wait_ready()
            async with self._opening_reads:
                record, events, now = await run_in_threadpool(self._read, job_id, api_key)
        except BaseException:
            subscription.close()
            raise
        return subscription, record, events, now

    def _read(self, job_id: str, api_key: str | None) -> tuple[JobRecord, list[JobEvent], JobView]:
        """The job's record and events, and the job as GET /jobs/{id} shows it (blocking)."""
        record, events = self.access.history(job_id, api_key)
        return record, events, self.access.view(record)

    def _now(self, job_id: str, api_key: str | None) -> tuple[JobRecord, JobView]:
        """The job's record and the job as GET /jobs/{id} shows it (blocking)."""
        record = self.access.get(job_id, api_key)
        return record, self.access.view(record)

    # -- GET /jobs/{id}/events --
    async def stream(
        self, job_id: str, api_key: str | None, last_event_id: str | None
    ) -> tuple[AsyncIterator[bytes], Subscription]:
        """The stream's messages, and its subscription (to close should the stream never
        start). Errors (404, 503) are raised here, before anything is sent."""
        subscription, record, events, now = await self._open(job_id, api_key)
        if last_event_id is None:
            moments = [latest(record, events)]
        else:
            moments = moments_after(record, events, last_event_id)
        steps = [sse.Step.shown(moment, now) for moment in moments]
        # with nothing after Last-Event-ID, the record is the job as of that id
        base = steps[-1] if steps else sse.Step.shown(latest(record, events), now)
        return self._messages(subscription, api_key, steps, base, last_event_id), subscription

    async def _messages(
        self,
        subscription: Subscription,
        api_key: str | None,
        steps: list[sse.Step],
        base: sse.Step,
        last_id: str | None,
    ) -> AsyncIterator[bytes]:
        job_id = subscription.job_id
        try:
            yield sse.OPENING + b"".join(sse.message(step) for step in steps)
            if base.terminal:
                return  # it ended (and was sent, unless Last-Event-ID had it already)
            if steps:
                last_id = steps[-1].event_id or last_id
            while True:
                item = await subscription.next(self.keepalive)
                if item is None:
                    yield sse.KEEPALIVE
                    continue
                if item is Signal.CLOSE:
                    return
                if item is Signal.RESYNC:
                    # Redis was away: re-read, in case it lost or trimmed events meanwhile
                    try:
                        record, events, now = await run_in_threadpool(self._read, job_id, api_key)
                    except JobNotFound:
                        return
                    moments = moments_after(record, events, last_id or "0-0")
                    new = [sse.Step.shown(moment, now) for moment in moments]
                else:
                    if last_id is not None and event_order(item.id) <= event_order(last_id):
                        continue  # read with the history already
                    new = [await self._step(job_id, api_key, base, item)]
                if not new:
                    continue
                yield b"".join(sse.message(step) for step in new)
                last_id, base = new[-1].event_id or last_id, new[-1]
                if new[-1].terminal:
                    return
        finally:
            subscription.close()

    async def _step(
        self, job_id: str, api_key: str | None, before: sse.Step, event: JobEvent
    ) -> sse.Step:
        """The message for a live event: folded onto the previous one; an end is re-read, as
        the record then is final (and holds the failure's message)."""
        if event.kind.terminal:
            with contextlib.suppress(JobNotFound):
                record, now = await run_in_threadpool(self._now, job_id, api_key)
                if record.status.terminal:
                    return sse.Step(Moment(event.id, event.kind, record), now)
        return sse.Step.shown(next_moment(before.moment, event), before.view)

    # -- GET /jobs/{id}?wait=N --
    async def current(self, job_id: str, api_key: str | None, wait: float | None) -> JobView:
        """The job now; with `wait`, once it changed (any event) or after `wait` seconds."""
        if wait is not None:
            await self._wait(job_id, api_key, wait, until_end=False)
        record = await run_in_threadpool(self.access.get, job_id, api_key)
        await self.access.check_result(record)  # a succeeded job's files may be gone
        return await run_in_threadpool(self.access.view, record)

    # -- POST /ocr --
    async def wait_for_end(
        self,
        job_id: str,
        api_key: str | None,
        seconds: float,
        give_up: Awaitable[object] | None = None,
    ) -> JobRecord:
        """The job once it ended, or as it is after `seconds` or when `give_up` is done (its
        client left): waiting changes nothing of the job."""
        await self._wait(job_id, api_key, seconds, until_end=True, give_up=give_up)
        return await run_in_threadpool(self.access.get, job_id, api_key)

    async def _wait(
        self,
        job_id: str,
        api_key: str | None,
        seconds: float,
        *,
        until_end: bool,
        give_up: Awaitable[object] | None = None,
    ) -> None:
        """Until the job's next event (`until_end`: its end), at most `seconds`; not at all for
        a job that ended."""
        stopper = asyncio.ensure_future(give_up) if give_up is not None else None
        try:
            subscription, record, events, _ = await self._open(job_id, api_key)
            with subscription.closing():
                if record.status.terminal:
                    return  # it will not change again
                last = event_order(events[-1].id) if events else (0, 0)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(seconds):
                        while not await self._answers(
                            subscription, api_key, stopper, last, until_end
                        ):
                            pass
        finally:
            if stopper is not None:
                stopper.cancel()

    async def _answers(
        self,
        subscription: Subscription,
        api_key: str | None,
        stopper: asyncio.Future[object] | None,
        last: tuple[int, int],
        until_end: bool,
    ) -> bool:
        """Whether the next item ends the wait: a new event (an end, `until_end`), the client
        gone, the API shutting down; after a Redis outage, the job having changed meanwhile."""
        item = await _next_unless(subscription, stopper)
        if item is Signal.RESYNC:
            if not until_end:
                return True
            record = await run_in_threadpool(self.access.get, subscription.job_id, api_key)
            return record.status.terminal
        if item is None or item is Signal.CLOSE:
            return True
        return event_order(item.id) > last and (not until_end or item.kind.terminal)


async def _next_unless(
    subscription: Subscription, stopper: asyncio.Future[object] | None
) -> JobEvent | Signal | None:
    """The subscription's next item, or None once `stopper` is done first."""
    if stopper is None:
        return await subscription.next()
    getter = asyncio.ensure_future(subscription.next())
    try:
        either: set[asyncio.Future[Any]] = {getter, stopper}
        done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()
    return getter.result() if getter in done else None
