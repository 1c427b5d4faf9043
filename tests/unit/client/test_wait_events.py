"""wait() on the job's event stream, against a scripted transport: resume, breaks, fallback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from ocrq_client.client import ApiError, AsyncOcrqClient, Job, WaitTimeout
from tests.unit.client.scripted import JOB_ID, Script, error, job_body


def message(event_id: str, status: str, pages_done: int = 0, pages_total: int = 2) -> bytes:
    body = job_body(status, progress={"pages_done": pages_done, "pages_total": pages_total})
    return f"id: {event_id}\r\nevent: {status}\r\ndata: {json.dumps(body)}\r\n\r\n".encode()


QUEUED, RUNNING = message("1-0", "queued"), message("2-0", "running")
PAGE1, PAGE2 = message("3-0", "running", 1), message("4-0", "running", 2)
SUCCEEDED = message("5-0", "succeeded", 2)


def sse(*chunks: bytes, cut: bool = False) -> httpx.Response:
    """A 200 event stream of `chunks`; `cut`: the connection drops after the last one."""

    def body() -> Iterator[bytes]:
        yield b"retry: 2000\r\n\r\n"
        yield from chunks
        if cut:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())


def test_wait_returns_the_final_job_from_one_stream_and_tells_every_state() -> None:
    script = Script(sse(QUEUED, RUNNING + PAGE1, b": keepalive\r\n\r\n", PAGE2, SUCCEEDED))
    seen: list[Job] = []

    job = script.client().wait(JOB_ID, on_update=seen.append)

    assert job.status == "succeeded" and job.progress.pages_done == 2
    assert [(j.status, j.progress.pages_done) for j in seen] == [
        ("queued", 0), ("running", 0), ("running", 1), ("running", 2), ("succeeded", 2),
    ]  # fmt: skip
    [request] = script.requests
    assert request.url.path == f"/jobs/{JOB_ID}/events" and "last-event-id" not in request.headers
    assert request.headers["accept"] == "text/event-stream" and script.sleeps == []


def test_a_stream_cut_mid_message_resumes_after_the_last_whole_one() -> None:
    script = Script(
        sse(QUEUED, RUNNING, PAGE1[:30], cut=True),  # cut inside the page event
        sse(PAGE1, PAGE2, SUCCEEDED),
    )

    job = script.client().wait(JOB_ID)

    assert job.status == "succeeded"
    assert script.requests[1].headers["last-event-id"] == "2-0"  # page 1 was never whole
    assert script.sleeps == [2.0]  # the server's retry: 2000


def test_streams_that_keep_breaking_before_a_message_fall_back_to_polling() -> None:
    script = Script(
        sse(QUEUED, cut=True),  # told something: the streak of breaks starts after it
        httpx.ReadTimeout("idle"),
        error(503, "queue_unavailable"),  # the third in a row: poll from now on
        httpx.Response(200, json=job_body("running")),
        httpx.Response(200, json=job_body("succeeded")),
    )
    client = script.client()

    assert client.wait(JOB_ID).status == "succeeded"
    paths = [r.url.path.rsplit("/", 1)[-1] for r in script.requests]
    assert paths == ["events"] * 3 + [JOB_ID] * 2
    assert [r.headers.get("last-event-id") for r in script.requests[:3]] == [None, "1-0", "1-0"]
    assert script.sleeps == [2.0, 4.0, 0.0, 0.25]  # backoff between streams, then polling
    assert client.streams_events  # the server has the route: the next wait streams again


def test_an_unknown_job_is_an_error_not_a_missing_route() -> None:
    script = Script(error(404, "job_not_found"))

    with pytest.raises(ApiError) as raised:
        script.client().wait(JOB_ID)

    assert raised.value.code == "job_not_found" and len(script.requests) == 1


def test_a_server_without_the_route_is_polled_and_not_asked_again() -> None:
    script = Script(
        error(404, "not_found"),
        *[httpx.Response(200, json=job_body("succeeded"))] * 3,
    )
    client = script.client()

    for _ in range(3):
        client.wait(JOB_ID)

    assert [r.url.path.endswith("/events") for r in script.requests] == [True] + [False] * 3


def test_a_reconnect_that_would_pass_the_deadline_is_a_wait_timeout() -> None:
    script = Script(sse(QUEUED, RUNNING))  # the stream ends; the retry (2 s) is past 1 s

    with pytest.raises(WaitTimeout, match="still running"):
        script.client().wait(JOB_ID, timeout=1)


def test_the_async_client_resumes_the_same_way() -> None:
    def body(*chunks: bytes, cut: bool) -> AsyncIterator[bytes]:
        async def chunks_then_cut() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk
            if cut:
                raise httpx.ReadError("connection reset")

        return chunks_then_cut()

    answers = [body(b"retry: 500\n\n", QUEUED, RUNNING, cut=True), body(SUCCEEDED, cut=False)]
    requests: list[httpx.Request] = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        stream = answers.pop(0)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream)

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def scenario() -> Job:
        async with AsyncOcrqClient(
            "http://ocrq.test", transport=httpx.MockTransport(handler), sleep=sleep
        ) as client:
            return await client.wait(JOB_ID)

    assert asyncio.run(scenario()).status == "succeeded"
    assert requests[1].headers["last-event-id"] == "2-0" and sleeps == [0.5]
