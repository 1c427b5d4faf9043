"""The HTTP client against a scripted transport: what it retries, what it reports, what it sends."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from ocrq_client.client import (
    ApiError,
    AsyncOcrqClient,
    ConnectionFailed,
    OcrqClient,
    RetryEvent,
    RetryPolicy,
    WaitTimeout,
    file_idempotency_key,
)
from tests.unit.client.scripted import JOB_ID, Script, error, job_body


def test_queue_full_is_retried_after_retry_after_with_jitter_then_succeeds() -> None:
    script = Script(
        error(429, "queue_full", **{"Retry-After": "2"}),
        error(429, "queue_full", **{"Retry-After": "2"}),
        httpx.Response(202, json=job_body()),
    )
    events: list[RetryEvent] = []

    job = script.client(on_retry=events.append).submit(b"\x89PNG", filename="a.png")

    assert job.job_id == JOB_ID and not job.replayed
    assert len(script.sleeps) == 2 and all(2 <= s <= 2 + 30 for s in script.sleeps)
    assert [e.reason for e in events] == ["queue_full", "queue_full"]
    keys = {r.headers["idempotency-key"] for r in script.requests}
    assert len(keys) == 1  # the same key on every retry: never two jobs


def test_connection_refused_and_gateway_errors_are_retried() -> None:
    script = Script(
        httpx.ConnectError("refused"),
        error(502, "http_502"),
        error(503, "queue_unavailable"),
        httpx.Response(200, json=job_body("succeeded")),
    )

    job = script.client().get(JOB_ID)

    assert job.status == "succeeded" and len(script.sleeps) == 3
    assert script.sleeps[0] <= 0.5 and script.sleeps[2] <= 2.0  # exponential ceiling


def test_gives_up_after_max_attempts() -> None:
    refused = Script(*[httpx.ConnectError("refused")] * 3)
    unavailable = Script(*[error(503, "queue_unavailable")] * 3)
    policy = RetryPolicy(max_attempts=3)

    with pytest.raises(ConnectionFailed, match="after 3 attempts"):
        refused.client(retry=policy).get(JOB_ID)
    with pytest.raises(ApiError) as raised:
        unavailable.client(retry=policy).get(JOB_ID)
    assert raised.value.code == "queue_unavailable" and len(unavailable.requests) == 3


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "empty_file"), (404, "job_not_found"), (409, "job_failed"), (415, "x"), (401, "u")],
)
def test_permanent_errors_are_raised_at_once(status: int, code: str) -> None:
    script = Script(error(status, code))

    with pytest.raises(ApiError) as raised:
        script.client().get(JOB_ID)

    assert (raised.value.status_code, raised.value.code) == (status, code)
    assert script.sleeps == []


def test_key_in_use_by_a_concurrent_upload_is_waited_out() -> None:
    script = Script(
        error(409, "idempotency_key_in_use", **{"Retry-After": "1"}),
        httpx.Response(200, json=job_body("running")),
    )

    job = script.client().submit(b"data", filename="x", idempotency_key="k")

    assert job.replayed and job.status == "running"
    assert script.requests[0].headers["idempotency-key"] == "k"


def test_busy_retries_stop_after_busy_timeout() -> None:
    script = Script(*[error(429, "queue_full", **{"Retry-After": "0"})] * 3)

    with pytest.raises(ApiError) as raised:
        script.client(retry=RetryPolicy(busy_timeout=0)).submit(b"x", filename="x")

    assert raised.value.code == "queue_full" and raised.value.retry_after == 0


def test_backoff_delay_is_bounded_even_after_many_attempts() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30)

    assert all(0 <= policy.delay(n) <= 30 for n in range(2000))
    assert all(5 <= policy.delay(n, retry_after=5) <= 35 for n in range(50))


def test_submit_sends_the_file_as_multipart_with_its_name(tmp_path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(b"\x89PNG-bytes")
    script = Script(httpx.Response(202, json=job_body()))

    script.client().submit(path, idempotency_key=file_idempotency_key(path.read_bytes()))

    request = script.requests[0]
    assert b'filename="scan.png"' in request.content and b"\x89PNG-bytes" in request.content
    assert request.headers["idempotency-key"].startswith("sha256-")
    assert file_idempotency_key(b"a") != file_idempotency_key(b"b")


def test_wait_polls_a_server_without_events_then_result_fetches_the_format() -> None:
    script = Script(
        error(404, "not_found"),  # an older server: no GET /jobs/{id}/events route
        httpx.Response(200, json=job_body("queued")),
        httpx.Response(200, json=job_body("running")),
        httpx.Response(200, json=job_body("succeeded")),
        httpx.Response(200, text="Invoice 123\n"),
    )
    client = script.client()

    assert client.wait(JOB_ID).status == "succeeded"
    assert client.result(JOB_ID, "text") == b"Invoice 123\n"
    assert script.requests[-1].url.params["format"] == "text"
    assert script.sleeps == [0.25, 0.375]
    assert script.requests[0].url.path.endswith("/events") and not client.streams_events


def test_wait_times_out() -> None:
    script = Script(*[httpx.Response(200, json=job_body("running"))] * 50)

    with pytest.raises(WaitTimeout):
        script.client().wait(JOB_ID, timeout=0)


def test_url_and_api_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCRQ_URL", "http://env.test:9000/")
    monkeypatch.setenv("OCRQ_API_KEY", "s3cret")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=job_body("canceled"))

    with OcrqClient(transport=httpx.MockTransport(handler)) as client:
        assert client.cancel(JOB_ID).status == "canceled"
    with OcrqClient("http://arg.test", api_key="", transport=httpx.MockTransport(handler)) as c:
        c.get(JOB_ID)

    assert str(seen[0].url) == f"http://env.test:9000/jobs/{JOB_ID}"
    assert seen[0].method == "DELETE" and seen[0].headers["authorization"] == "Bearer s3cret"
    assert seen[1].url.host == "arg.test" and "authorization" not in seen[1].headers


def test_async_client_retries_the_same_way() -> None:
    script = Script(
        httpx.ConnectError("refused"),
        error(429, "queue_full", **{"Retry-After": "1"}),
        httpx.Response(202, json=job_body()),
        error(404, "not_found"),  # no event stream: wait() polls
        httpx.Response(200, json=job_body("succeeded")),
        httpx.Response(200, json={"job_id": JOB_ID}),
    )
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def scenario() -> tuple[str, str, dict]:
        async with AsyncOcrqClient(
            "http://ocrq.test", transport=httpx.MockTransport(script), sleep=sleep
        ) as client:
            job = await client.submit(b"\x89PNG", filename="a.png")
            done = await client.wait(job.job_id)
            return job.status, done.status, json.loads(await client.result(job.job_id))

    assert asyncio.run(scenario()) == ("queued", "succeeded", {"job_id": JOB_ID})
    assert len(sleeps) == 2 and sleeps[1] >= 1


def test_result_rejects_unknown_format_before_sending() -> None:
    script = Script()
    with pytest.raises(ValueError, match="format"):
        script.client().result(JOB_ID, "docx")  # type: ignore[arg-type]
    assert script.requests == []
