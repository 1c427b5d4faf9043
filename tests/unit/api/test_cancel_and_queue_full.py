"""DELETE /jobs/{id}, and back-pressure: 429 queue_full once MAX_QUEUED_JOBS wait."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from shared.jobs import JobStore, connect_redis
from shared.settings import Settings
from testkit.pages import encode, render_page


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _png() -> bytes:
    return encode(render_page([("Hello 123", 30)], width=300))


def _submit(client: TestClient, **headers: str):
    return client.post("/jobs", files={"file": ("a.png", _png())}, headers=headers)


def test_cancel_queued_job_removes_its_upload(client: TestClient, settings: Settings) -> None:
    job_id = _submit(client).json()["job_id"]
    assert (settings.temp_dir / job_id / "input").is_file()

    response = client.delete(f"/jobs/{job_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "canceled" and body["finished_at"] is not None
    assert not (settings.temp_dir / job_id).exists()
    assert client.get(f"/jobs/{job_id}").json()["status"] == "canceled"
    result = client.get(f"/jobs/{job_id}/result")
    assert result.status_code == 409 and result.json()["error"]["code"] == "job_canceled"
    assert client.delete(f"/jobs/{job_id}").status_code == 200  # again: same answer


def test_cancel_running_job_leaves_its_files_to_the_worker(
    client: TestClient, settings: Settings
) -> None:
    job_id = _submit(client).json()["job_id"]
    JobStore(connect_redis(settings.redis_url), 60).claim(job_id, "w1:1", 30)

    assert client.delete(f"/jobs/{job_id}").json()["status"] == "canceled"
    assert (settings.temp_dir / job_id / "input").is_file()  # the worker is reading it


def test_cancel_finished_job_is_409(client: TestClient, settings: Settings) -> None:
    job_id = _submit(client).json()["job_id"]
    store = JobStore(connect_redis(settings.redis_url), 60)
    store.claim(job_id, "w1:1", 30)
    store.fail(job_id, "invalid_image", "bad")

    response = client.delete(f"/jobs/{job_id}")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_finished"
    assert client.get(f"/jobs/{job_id}").json()["status"] == "failed"


@pytest.mark.parametrize("job_id", ["0" * 32, "not-a-job"])
def test_cancel_unknown_job_is_404(client: TestClient, job_id: str) -> None:
    response = client.delete(f"/jobs/{job_id}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


def test_full_queue_answers_429_with_retry_after_and_keeps_nothing(settings: Settings) -> None:
    bounded = settings.model_copy(update={"max_queued_jobs": 2})
    with TestClient(create_app(bounded)) as client:
        first = _submit(client, **{"Idempotency-Key": "one"})
        assert _submit(client).status_code == 202

        full = _submit(client)
        replay = _submit(client, **{"Idempotency-Key": "one"})
        full_keyed = _submit(client, **{"Idempotency-Key": "three"})

    assert full.status_code == 429
    assert full.json()["error"]["code"] == "queue_full"
    assert int(full.headers["retry-after"]) > 0
    assert replay.status_code == 200 and replay.json()["job_id"] == first.json()["job_id"]
    assert full_keyed.status_code == 429
    assert len(list(settings.temp_dir.iterdir())) == 2


def test_a_canceled_job_still_counts_until_a_worker_drops_it(settings: Settings) -> None:
    bounded = settings.model_copy(update={"max_queued_jobs": 1})
    with TestClient(create_app(bounded)) as client:
        job_id = _submit(client).json()["job_id"]
        client.delete(f"/jobs/{job_id}")

        assert _submit(client).status_code == 429


def test_checks_answer_in_their_order_queue_size_then_type(settings: Settings) -> None:
    """429 before 413 before a bad Content-Type's 400, however many are wrong at once."""
    strict = settings.model_copy(update={"max_queued_jobs": 1, "max_upload_mb": 0.01})
    bad_type = {"content-type": "text/plain"}
    big = b"x" * 200_000  # over the 10 KB limit and its multipart slack
    with TestClient(create_app(strict)) as client:
        oversized = client.post("/jobs", content=big, headers=bad_type)
        small = client.post("/jobs", content=b"x", headers=bad_type)
    with TestClient(create_app(settings)) as client:
        # the one job MAX_QUEUED_JOBS=1 allows; `high`, so that even a high job would wait
        # behind it: only then is 429 known before the form (and its priority) is read
        png = {"file": ("a.png", _png())}
        queued = client.post("/jobs", files=png, data={"priority": "high"})
    with TestClient(create_app(strict)) as client:
        full = client.post("/jobs", content=big, headers=bad_type)

    assert oversized.json()["error"]["code"] == "file_too_large"
    assert small.json()["error"]["code"] == "invalid_request"
    assert full.json()["error"]["code"] == "queue_full"
    assert [p.name for p in settings.temp_dir.iterdir()] == [queued.json()["job_id"]]
