"""A status stream's response ends, and lets go of its subscription, when its client leaves;
it keeps no task of its own once done."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from api import sse
from api.event_hub import EventHub, Signal, Subscription
from shared.jobs import EventKind, JobEvent

REDIS_URL = "redis://127.0.0.1:1/0"  # never connected: subscribing needs no Redis


async def _follow(subscription: Subscription) -> AsyncIterator[bytes]:
    """As JobWatch's messages do: one message per item, the end on CLOSE."""
    with subscription.closing():
        yield sse.OPENING
        while (item := await subscription.next()) is not Signal.CLOSE:
            yield sse.KEEPALIVE if item is None else b"event\n\n"


class Client:
    """The ASGI side of a client: what it was sent, and a disconnect when it leaves."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.gone = asyncio.Event()
        self._asked = 0

    async def receive(self) -> dict:
        self._asked += 1
        if self._asked == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)


def test_a_client_leaving_ends_the_stream_and_its_subscription() -> None:
    async def run() -> tuple[Client, int, int]:
        hub = EventHub(REDIS_URL)
        subscription = hub.subscribe("job-1")
        client = Client()
        response = sse.EventStreamResponse(_follow(subscription), subscription.end)
        serving = asyncio.create_task(response({"type": "http"}, client.receive, client.send))
        await asyncio.sleep(0.05)
        event = JobEvent("1-0", EventKind("queued"), "job-1", datetime.now(UTC))
        subscription.queue.put_nowait(event)
        await asyncio.sleep(0.05)
        client.gone.set()
        await asyncio.wait_for(serving, 5)
        tasks = len(asyncio.all_tasks()) - 1  # but this one
        return client, hub.subscriber_count, tasks

    client, subscribers, tasks = asyncio.run(run())
    bodies = [m.get("body") for m in client.sent if m["type"] == "http.response.body"]
    assert client.sent[0]["type"] == "http.response.start"
    assert bodies[:2] == [sse.OPENING, b"event\n\n"]
    assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert subscribers == 0
    assert tasks == 0


def test_a_stream_that_ends_by_itself_leaves_no_task() -> None:
    async def run() -> tuple[Client, int]:
        hub = EventHub(REDIS_URL)
        subscription = hub.subscribe("job-1")
        subscription.end()  # as the API's shutdown does
        client = Client()
        response = sse.EventStreamResponse(_follow(subscription), subscription.end)
        await asyncio.wait_for(response({"type": "http"}, client.receive, client.send), 5)
        await asyncio.sleep(0)
        return client, len(asyncio.all_tasks()) - 1

    client, tasks = asyncio.run(run())
    assert client.sent[-1]["more_body"] is False
    assert tasks == 0
