"""POST /jobs routes a job to the queue of its engine and priority; back-pressure by priority;
/metrics counts each queue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from shared.jobs import WorkerBeat, WorkerRegistry
from shared.jobs.queues import all_queues
from shared.settings import Settings
from testkit.pages import encode, render_page

PNG = encode(render_page([("Hello 123", 30)], width=300))


def _submit(client: TestClient, **fields: str):
    return client.post("/jobs", files={"file": ("a.png", PNG)}, data=fields)


def _depths(redis_client: redis.Redis) -> dict[str, int]:
    return {q: n for q in all_queues() if (n := redis_client.llen(q))}


def _beat(redis_client: redis.Redis, worker_id: str, engine: str) -> None:
    beat = WorkerBeat(worker_id, engine, "cpu", warm=True, pid=1, started_at="now")
    WorkerRegistry(redis_client).beat(beat, ttl_seconds=30)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_each_priority_has_its_queue_and_the_record_names_it(
    client: TestClient, redis_client: redis.Redis
) -> None:
    default = _submit(client).json()["job_id"]
    for priority in ("high", "batch", "batch"):
        assert _submit(client, priority=priority).status_code == 202

    assert _depths(redis_client) == {
        "ocr.rapidocr.high": 1,
        "ocr.rapidocr.normal": 1,
        "ocr.rapidocr.batch": 2,
    }
    assert redis_client.hget(f"ocrq:job:{default}", "queue") == "ocr.rapidocr.normal"


def test_a_bad_priority_is_422_and_keeps_nothing(client: TestClient, settings: Settings) -> None:
    response = _submit(client, priority="urgent")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_option"
    assert "priority" in response.json()["error"]["message"]
    assert list(settings.temp_dir.iterdir()) == []


def test_a_batch_flood_does_not_refuse_high_or_normal_jobs(
    settings: Settings, redis_client: redis.Redis
) -> None:
    bounded = settings.model_copy(update={"max_queued_jobs": 2})
    with TestClient(create_app(bounded)) as client:
        flood = [_submit(client, priority="batch").status_code for _ in range(3)]
        high = _submit(client, priority="high")
        normal = _submit(client)
        normal_full = _submit(client)

    assert flood == [202, 202, 429]
    assert high.status_code == normal.status_code == 202
    # high + normal waiting reach the limit for a normal job, not for a high one
    assert normal_full.status_code == 429
    assert "at priority normal or above" in normal_full.json()["error"]["message"]
    assert len(list(settings.temp_dir.iterdir())) == 4


def test_the_one_engine_live_workers_serve_is_the_default(
    client: TestClient, redis_client: redis.Redis
) -> None:
    _beat(redis_client, "gpu-1", "paddleocr-vl")

    assert _submit(client, priority="high").status_code == 202
    assert _depths(redis_client) == {"ocr.paddleocr-vl.high": 1}


def test_an_engine_no_live_worker_serves_is_503_and_keeps_nothing(
    client: TestClient, redis_client: redis.Redis, settings: Settings
) -> None:
    _beat(redis_client, "cpu-1", "rapidocr")

    response = _submit(client, engine="paddleocr-vl")

    assert response.status_code == 503
    body = response.json()["error"]
    assert body["code"] == "engine_not_served"
    assert "paddleocr-vl" in body["message"] and "rapidocr" in body["message"]
    assert int(response.headers["retry-after"]) > 0
    assert list(settings.temp_dir.iterdir()) == [] and _depths(redis_client) == {}


def test_several_engines_live_route_by_the_option_then_default_engine(
    settings: Settings, redis_client: redis.Redis
) -> None:
    _beat(redis_client, "cpu-1", "rapidocr")
    _beat(redis_client, "gpu-1", "paddleocr-vl")
    routed = settings.model_copy(update={"default_engine": "paddleocr-vl"})
    with TestClient(create_app(routed)) as client:
        assert _submit(client).status_code == 202
        assert _submit(client, engine="rapidocr", priority="batch").status_code == 202

    assert _depths(redis_client) == {"ocr.paddleocr-vl.normal": 1, "ocr.rapidocr.batch": 1}


def test_with_no_live_worker_a_job_waits_in_its_queue(
    client: TestClient, redis_client: redis.Redis
) -> None:
    assert _submit(client, engine="tesseract").status_code == 202
    assert _depths(redis_client) == {"ocr.tesseract.normal": 1}


def test_metrics_count_each_queue_and_the_total(client: TestClient) -> None:
    _submit(client, priority="high")
    _submit(client, priority="batch")
    _submit(client, priority="batch")

    text = client.get("/metrics").text

    assert "ocrq_queue_depth 3.0" in text
    assert (
        'ocrq_queue_depth_by_queue{engine="rapidocr",priority="batch",queue="ocr.rapidocr.batch"}'
        " 2.0" in text
    )
    assert 'queue="ocr"}' not in text  # no legacy queue: Celery's default one is never used
    # the autoscaler's figure: every priority of the engine (no worker holds any yet)
    assert 'ocrq_engine_backlog{engine="rapidocr"} 3.0' in text
    assert 'ocrq_engine_backlog{engine="tesseract"} 0.0' in text


def test_while_the_only_worker_restarts_jobs_keep_going_to_its_engine(
    settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.engine_choice.LIVE_ENGINES_CACHE_SECONDS", 0.0)
    with TestClient(create_app(settings)) as client:
        _beat(redis_client, "gpu-1", "paddleocr-vl")
        assert _submit(client).status_code == 202
        WorkerRegistry(redis_client).remove("gpu-1")  # its heartbeat is gone: restarting
        assert _submit(client).status_code == 202

    assert _depths(redis_client) == {"ocr.paddleocr-vl.normal": 2}


def test_ready_lists_the_jobs_waiting_per_queue(client: TestClient) -> None:
    _submit(client, priority="batch")

    queues = client.get("/ready").json()["queues"]

    assert queues["ocr.rapidocr.batch"] == 1 and "ocr" not in queues  # no legacy queue
    assert sum(queues.values()) == 1 and len(queues) == 9


def test_a_repeat_at_another_priority_finds_the_same_job(
    client: TestClient, redis_client: redis.Redis
) -> None:
    key = {"Idempotency-Key": "same-scan"}
    first = client.post(
        "/jobs", files={"file": ("a.png", PNG)}, data={"priority": "batch"}, headers=key
    )
    again = client.post(
        "/jobs", files={"file": ("a.png", PNG)}, data={"priority": "high"}, headers=key
    )

    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["job_id"] == first.json()["job_id"]
    assert _depths(redis_client) == {"ocr.rapidocr.batch": 1}
