"""Probes, index and docs; Redis-down behaviour."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from shared.jobs import WorkerBeat, WorkerRegistry
from shared.settings import Settings
from testkit.pages import encode, render_page

DEAD_REDIS = "redis://127.0.0.1:6399/0"  # nothing listens there


def test_health_index_and_docs(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json() == {"status": "ok"}
        index = client.get("/").json()
        assert index["name"] == "ocrq"
        for link in (index["docs"], index["redoc"], index["openapi"]):
            assert client.get(link).status_code == 200
        spec = client.get("/openapi.json").json()
        assert "multipart/form-data" in spec["paths"]["/jobs"]["post"]["requestBody"]["content"]


def test_ready_lists_live_workers_and_warm_state(settings: Settings, redis_client) -> None:
    registry = WorkerRegistry(redis_client)
    beat = WorkerBeat("w1", "rapidocr", "cpu", warm=False, pid=1, started_at="now")
    with TestClient(create_app(settings)) as client:
        assert client.get("/ready").json()["workers"] == 0
        registry.beat(beat, ttl_seconds=30)
        body = client.get("/ready").json()
        assert (body["workers"], body["engines_warm"]) == (1, False)
        beat.warm = True
        registry.beat(beat, ttl_seconds=30)
        assert client.get("/ready").json()["engines_warm"] is True


def test_ready_shows_a_worker_whose_engine_backend_is_unavailable(
    settings: Settings, redis_client
) -> None:
    registry = WorkerRegistry(redis_client)
    beat = WorkerBeat("w1", "paddleocr-vl", "server:http://vl/v1", True, pid=1, started_at="now")
    with TestClient(create_app(settings)) as client:
        registry.beat(beat, ttl_seconds=30)
        body = client.get("/ready").json()
        assert (body["engines_available"], body["worker_details"][0]["engine_available"]) == (
            True,
            True,
        )
        beat.engine_available, beat.engine_error = False, "http://vl/v1 does not answer"
        registry.beat(beat, ttl_seconds=30)
        body = client.get("/ready").json()
    assert body["status"] == "ok" and body["engines_warm"] is True
    assert body["engines_available"] is False
    worker = body["worker_details"][0]
    assert (worker["engine_available"], worker["engine_error"]) == (
        False,
        "http://vl/v1 does not answer",
    )


def test_redis_down_gives_fast_503_and_health_stays_up(settings: Settings) -> None:
    down = settings.model_copy(update={"redis_url": DEAD_REDIS})
    png = encode(render_page([("Hi", 20)], width=100))
    with TestClient(create_app(down)) as client:
        assert client.get("/health").status_code == 200
        started = time.perf_counter()
        post = client.post("/jobs", files={"file": ("a.png", png)})
        get = client.get(f"/jobs/{'a' * 32}")
        ready = client.get("/ready")
        elapsed = time.perf_counter() - started
    assert post.status_code == get.status_code == ready.status_code == 503
    assert post.json()["error"]["code"] == get.json()["error"]["code"] == "queue_unavailable"
    assert elapsed < 10  # generous: a hang would be the 30 s+ client default
    leftovers = [p for p in Path(settings.temp_dir).rglob("*") if p.is_file()]
    assert leftovers == []


def test_a_503_says_queue_unavailable_without_the_redis_address(settings: Settings) -> None:
    down = settings.model_copy(update={"redis_url": DEAD_REDIS})
    address = DEAD_REDIS.removeprefix("redis://").split("/")[0]  # host:port
    png = encode(render_page([("Hi", 20)], width=100))
    with TestClient(create_app(down)) as client:
        answers = [
            client.post("/jobs", files={"file": ("a.png", png)}),
            client.get(f"/jobs/{'a' * 32}"),
            client.delete(f"/jobs/{'a' * 32}"),
            client.get("/metrics"),
        ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert error["code"] == "queue_unavailable"
        assert error["message"].startswith("queue unavailable")
        host, port = address.rsplit(":", 1)
        assert host not in answer.text and port not in answer.text


def test_openapi_declares_the_metrics_503(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        metrics = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]

    assert metrics["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
