"""Push instead of poll, on the real stack: GET /jobs/{id}/events (server-sent events),
GET /jobs/{id}?wait=N and POST /ocr, all waiting on the API's one event hub."""

from __future__ import annotations

import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
import redis

from testkit.pages import encode, render_page
from testkit.sse import Message, events, messages
from testkit.stack import Stack, wait_terminal
from tests.integration.conftest import report_pdf

TERMINAL = ("succeeded", "failed", "canceled")
STATUS = {"page": "running", "requeued": "queued"}  # the job's status after such an event
ORDER = {"queued": 0, "running": 1, "page": 2, "succeeded": 3, "failed": 3, "canceled": 3}


def submit(api: httpx.Client, body: bytes, name: str = "report.pdf", **headers: str) -> str:
    response = api.post("/jobs", files={"file": (name, body)}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


@contextmanager
def stream(api: httpx.Client, job_id: str, **headers: str) -> Iterator[Iterator[Message]]:
    """The job's status stream, message by message (ends when the server closes it)."""
    with api.stream("GET", f"/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield messages(response.iter_lines())


def history(api: httpx.Client, job_id: str) -> list[Message]:
    """Every event the job had, replayed (its stream after id 0-0; the job has ended)."""
    response = api.get(f"/jobs/{job_id}/events", params={"last_event_id": "0-0"})
    assert response.status_code == 200, response.text
    return list(events(response.text.split("\n")))


def order(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def test_a_stream_follows_a_job_from_queued_to_succeeded_then_closes(api: httpx.Client) -> None:
    job_id = submit(api, report_pdf())
    with stream(api, job_id) as stream_messages:
        first = next(stream_messages)
        assert first.retry == 2000 and first.data is None
        received = list(stream_messages)  # until the server closes the stream
    got = [m for m in received if m.data is not None]

    # the current state at once (a warm worker may have read a page before the stream opened),
    # then every change in order, the end last
    kinds = [m.event for m in got]
    assert kinds[0] in ("queued", "running", "page") and kinds[-1] == "succeeded", kinds
    assert [ORDER[k] for k in kinds] == sorted(ORDER[k] for k in kinds), kinds
    assert kinds.count("page") >= 3 and kinds.count("succeeded") == 1
    assert [order(m.id) for m in got] == sorted({order(m.id) for m in got})  # rising, unique
    # each message is the job as GET /jobs/{id} shows it: the last one exactly
    assert all(m.job["job_id"] == job_id for m in got)
    assert all(m.job["status"] == STATUS.get(m.event, m.event) for m in got)
    done = [m.job["progress"]["pages_done"] for m in got]
    assert done == sorted(done) and done[-1] == 4
    assert got[-1].job == api.get(f"/jobs/{job_id}").json()
    # what the stream sent live is what a replay of the job's events shows
    replay = history(api, job_id)
    assert [m.event for m in replay][:2] == ["queued", "running"]
    tail = [m for m in replay if order(m.id) >= order(got[0].id)]
    assert [(m.id, m.event, m.job) for m in tail] == [(m.id, m.event, m.job) for m in got]


def test_resuming_with_last_event_id_misses_nothing_and_repeats_nothing(
    api: httpx.Client,
) -> None:
    job_id = submit(api, report_pdf())
    with stream(api, job_id) as stream_messages:  # the first connection drops after a page
        before = []
        for message in stream_messages:
            if message.data is not None:
                before.append(message)
                if message.event == "page" or message.event in TERMINAL:
                    break
    last_id = before[-1].id
    with stream(api, job_id, **{"Last-Event-ID": last_id}) as stream_messages:
        after = [m for m in stream_messages if m.data is not None]

    replay = history(api, job_id)
    ids = [m.id for m in before + after]
    assert len(ids) == len(set(ids))
    assert ids == [m.id for m in replay if order(m.id) >= order(before[0].id)]
    assert after[-1].event == "succeeded" and after[-1].job["status"] == "succeeded"
    assert [m.job for m in after] == [m.job for m in replay if order(m.id) > order(last_id)]
    # a resume after the end sends nothing and closes; so does the query form
    with stream(api, job_id, **{"Last-Event-ID": after[-1].id}) as stream_messages:
        assert [m.data for m in stream_messages] == [None]  # only the opening retry


def test_a_canceled_jobs_stream_ends_with_canceled(api: httpx.Client) -> None:
    job_id = submit(api, report_pdf())
    with stream(api, job_id) as stream_messages:
        got = []
        for message in stream_messages:
            if message.data is None:
                continue
            got.append(message)
            if len(got) == 1:
                assert api.delete(f"/jobs/{job_id}").status_code == 200
    assert got[-1].event == "canceled" and got[-1].job["status"] == "canceled"
    assert got[-1].job == api.get(f"/jobs/{job_id}").json()


def test_unknown_jobs_and_bad_ids_get_json_errors(api: httpx.Client) -> None:
    for job_id in ("0" * 32, "not-a-job"):
        response = api.get(f"/jobs/{job_id}/events")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "job_not_found"
    job_id = submit(api, encode(render_page([("Bad ids", 30)], width=300)), "a.png")
    response = api.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    for wait in ("0", "61", "soon"):
        response = api.get(f"/jobs/{job_id}", params={"wait": wait})
        assert response.status_code == 422, wait
    wait_terminal(api, job_id)


def test_wait_answers_when_the_job_changes_and_at_once_when_it_ended(
    api: httpx.Client,
) -> None:
    job_id = submit(api, report_pdf())
    seen = api.get(f"/jobs/{job_id}").json()
    while seen["status"] not in TERMINAL:
        started = time.monotonic()
        now = api.get(f"/jobs/{job_id}", params={"wait": 50}, timeout=60).json()
        assert time.monotonic() - started < 45  # a change answered it, not the 50 s
        assert (now["status"], now["progress"]) != (seen["status"], seen["progress"])
        seen = now
    assert seen["status"] == "succeeded"
    started = time.monotonic()
    assert api.get(f"/jobs/{job_id}", params={"wait": 50}, timeout=60).json() == seen
    assert time.monotonic() - started < 45


def test_post_ocr_answers_with_the_text_of_a_fast_page(api: httpx.Client) -> None:
    png = encode(render_page([("Synchronous answers", 40)], width=700))
    response = api.post(
        "/ocr", params={"format": "text"}, files={"file": ("a.png", png)}, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "Synchronous answers" in response.text


def test_a_failed_job_ends_its_stream_with_its_error_and_post_ocr_answers_409(
    api: httpx.Client,
) -> None:
    jpeg = encode(render_page([("Cut short", 30)], width=400), "JPEG")
    cut = jpeg[: len(jpeg) // 2]  # decodes at upload (its header), fails in the worker
    job_id = submit(api, cut, "cut.jpg")
    with stream(api, job_id) as stream_messages:
        last = [m for m in stream_messages if m.data is not None][-1]
    assert last.event == "failed" and last.job["error"]["code"] == "invalid_image"
    assert last.job["error"]["message"] and last.job == api.get(f"/jobs/{job_id}").json()

    response = api.post("/ocr", files={"file": ("cut.jpg", cut)}, timeout=60)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "job_failed" and "invalid_image" in error["message"]


def test_a_client_leaving_post_ocr_cancels_nothing(stack: Stack, api: httpx.Client) -> None:
    files = {"file": ("report.pdf", report_pdf())}
    key = f"ocr-leaves-{uuid.uuid4().hex}"
    with (
        httpx.Client(base_url=stack.url, timeout=httpx.Timeout(10, read=0.5)) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post("/ocr", files=files, headers={"Idempotency-Key": key})
    # the same key finds the job the /ocr request queued: it runs to its end
    replay = api.post("/jobs", files=files, headers={"Idempotency-Key": key})
    assert replay.status_code == 200, replay.text
    assert wait_terminal(api, replay.json()["job_id"])["status"] == "succeeded"


# -- an API of its own, without a worker: jobs stay queued --
KEYS = ("stream-key-one", "stream-key-two")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_without_a_worker_streams_keep_alive_and_waits_give_up_in_time(
    side_stack: Callable[..., Stack], redis_client: redis.Redis
) -> None:
    """Jobs stay queued: streams take the jobs' auth and keep alive while idle; ?wait answers
    after its N s unchanged, POST /ocr after SYNC_WAIT_SECONDS with POST /jobs's answer; a
    stream open while the hub loses Redis gets what happened meanwhile; a stream open at
    shutdown is ended."""
    stack = side_stack(
        API_KEYS=",".join(KEYS), STREAM_KEEPALIVE_SECONDS="0.3", SYNC_WAIT_SECONDS="0.5"
    )
    stack.start_api()
    png = encode(render_page([("Nobody reads this", 30)], width=400))
    with httpx.Client(base_url=stack.url, timeout=10, headers=_auth(KEYS[0])) as api:
        response = api.post("/ocr", files={"file": ("a.png", png)})
        assert response.status_code == 202, response.text
        accepted = api.post("/jobs", files={"file": ("a.png", png)})
        # exactly the body and headers POST /jobs answers with
        assert response.json().keys() == accepted.json().keys()
        job_id = response.json()["job_id"]
        assert response.headers["location"] == f"/jobs/{job_id}"
        links = {"self": f"/jobs/{job_id}", "result": f"/jobs/{job_id}/result"}
        assert response.json()["links"] == links

        # the same auth as GET /jobs/{id}: no key 401, another key's job 404
        anonymous = {"Authorization": ""}
        assert api.get(f"/jobs/{job_id}/events", headers=anonymous).status_code == 401
        assert api.get(f"/jobs/{job_id}", params={"wait": 1}, headers=anonymous).status_code == 401
        other = api.get(f"/jobs/{job_id}/events", headers=_auth(KEYS[1]))
        assert other.status_code == 404 and other.json()["error"]["code"] == "job_not_found"
        with stream(api, job_id) as stream_messages:
            opening, first, idle = (next(stream_messages) for _ in range(3))
        assert opening.retry == 2000
        assert (first.event, first.job["status"]) == ("queued", "queued")
        assert idle.comments == ["keepalive"] and idle.data is None

        started = time.monotonic()
        waited = api.get(f"/jobs/{job_id}", params={"wait": 1})
        assert time.monotonic() - started >= 1  # nothing changed: the whole second
        assert waited.json() == api.get(f"/jobs/{job_id}").json()

        # the hub's connection dies (as when Redis restarts); the job is canceled meanwhile
        with stream(api, job_id) as stream_messages:
            assert next(stream_messages).retry == 2000 and next(stream_messages).event == "queued"
            db = redis_client.connection_pool.connection_kwargs.get("db", 0)
            hub = [
                c for c in redis_client.client_list() if c["cmd"] == "xread" and c["db"] == str(db)
            ]
            assert len(hub) == 1  # the hub's one connection, whatever streams are open
            redis_client.client_kill_filter(_id=hub[0]["id"])
            assert api.delete(f"/jobs/{job_id}").status_code == 200
            rest = [m for m in stream_messages if m.data is not None]
        assert [m.event for m in rest] == ["canceled"]
        assert rest[0].job == api.get(f"/jobs/{job_id}").json()

        # shutting down, the API ends its open streams rather than wait on them
        queued = api.post("/jobs", files={"file": ("a.png", png)}).json()["job_id"]
        with stream(api, queued) as stream_messages:
            assert next(stream_messages).retry == 2000 and next(stream_messages).event == "queued"
            assert stack.api is not None
            stack.api.send_signal(signal.SIGTERM)
            assert [m.data for m in stream_messages if m.data is not None] == []
        # uvicorn re-raises the SIGTERM once its graceful shutdown is done
        assert stack.api.wait(timeout=30) == -signal.SIGTERM
        assert "Application shutdown complete" in (stack.base / "api.log").read_text()


def test_the_api_answers_health_at_once_with_redis_down(side_stack: Callable[..., Stack]) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stack = side_stack(REDIS_URL=f"redis://127.0.0.1:{port}/0")
    stack.start_api()
    with httpx.Client(base_url=stack.url, timeout=10) as api:
        started = time.monotonic()
        assert api.get("/health").status_code == 200
        assert time.monotonic() - started < 2
        response = api.get(f"/jobs/{'0' * 32}/events")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "queue_unavailable"
