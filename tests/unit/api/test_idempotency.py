"""POST /jobs with an Idempotency-Key: a repeated key answers the same job and queues nothing."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from shared.jobs import Claim, JobStore, Pending, connect_redis, keys
from shared.jobs.queues import queue_name
from shared.settings import Settings
from testkit.pages import encode, render_page


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _png(text: str = "Hello 123") -> bytes:
    return encode(render_page([(text, 30)], width=300))


def _post(client: TestClient, key: str | None, data: bytes, **headers: str):
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/jobs", files={"file": ("a.png", data)}, headers=headers)


def _uploads(settings: Settings) -> list[Path]:
    return sorted(settings.temp_dir.glob("*/input")) if settings.temp_dir.exists() else []


def test_repeated_key_answers_200_with_the_same_job_and_queues_nothing(
    client: TestClient, settings: Settings, redis_client: redis.Redis
) -> None:
    first = _post(client, "sha256-abc", _png())
    again = _post(client, "sha256-abc", _png())

    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert redis_client.llen(queue_name("rapidocr", "normal")) == 1
    assert len(_uploads(settings)) == 1  # the repeat was read to a scratch file, then dropped
    assert [p.name for p in settings.temp_dir.iterdir() if p.name.startswith(".")] == []


def test_other_key_or_no_key_makes_a_new_job(client: TestClient, settings: Settings) -> None:
    a = _post(client, "key-a", _png()).json()["job_id"]
    b = _post(client, "key-b", _png()).json()["job_id"]
    c = _post(client, None, _png()).json()["job_id"]

    assert len({a, b, c}) == 3


def test_keys_are_scoped_per_api_key(settings: Settings) -> None:
    secured = settings.model_copy(update={"api_keys": "alice,bob"})
    with TestClient(create_app(secured)) as client:
        alice = _post(client, "same", _png(), Authorization="Bearer alice")
        bob = _post(client, "same", _png(), Authorization="Bearer bob")
        alice_again = _post(client, "same", _png(), Authorization="Bearer alice")

    assert (alice.status_code, bob.status_code, alice_again.status_code) == (202, 202, 200)
    assert alice.json()["job_id"] != bob.json()["job_id"]
    assert alice_again.json()["job_id"] == alice.json()["job_id"]


def test_rejected_upload_frees_its_key(client: TestClient) -> None:
    rejected = _post(client, "k", b"")
    accepted = _post(client, "k", _png())

    assert rejected.status_code == 400
    assert accepted.status_code == 202


def test_canceled_job_frees_its_key(client: TestClient) -> None:
    first = _post(client, "k", _png()).json()["job_id"]
    assert client.delete(f"/jobs/{first}").status_code == 200

    second = _post(client, "k", _png())

    assert second.status_code == 202 and second.json()["job_id"] != first


def test_key_of_a_concurrent_upload_in_progress_is_409_retry(
    client: TestClient, settings: Settings
) -> None:
    from shared.jobs import JobStore, connect_redis

    store = JobStore(connect_redis(settings.redis_url), 60)
    assert store.idempotency.claim(None, "busy", None) is not None  # another upload's

    response = _post(client, "busy", _png())

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_in_use"
    assert response.headers["retry-after"] == "1"
    assert _uploads(settings) == []


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9"])
def test_malformed_key_is_400(client: TestClient, key: str) -> None:
    response = client.post(
        "/jobs",
        files={"file": ("a.png", _png())},
        headers={"Idempotency-Key": key.encode("utf-8")},  # raw bytes: non-ASCII too
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_openapi_documents_the_key_the_replay_and_429(client: TestClient) -> None:
    post = client.get("/openapi.json").json()["paths"]["/jobs"]["post"]

    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert {"200", "202", "409", "429"} <= set(post["responses"])


def test_openapi_declares_the_keys_the_api_accepts(client: TestClient) -> None:
    """A generator (schemathesis) keeps to the declared key; the edges of it are accepted,
    the first step past them is 400, as the description says."""
    post = client.get("/openapi.json").json()["paths"]["/jobs"]["post"]
    key = next(p for p in post["parameters"] if p["name"] == "Idempotency-Key")["schema"]
    assert (key["pattern"], key["minLength"], key["maxLength"]) == ("^[!-~]{1,255}$", 1, 255)

    for accepted in ["!", "~" * 255, "sha256-" + "f" * 64]:
        assert re.fullmatch(key["pattern"], accepted)
        assert _post(client, accepted, _png()).status_code == 202, accepted
    for refused in ["~" * 256, "a b", "\x7f"]:
        assert not re.fullmatch(key["pattern"], refused)
        assert _post(client, refused, _png()).status_code == 400, refused


def test_repeated_key_with_another_file_is_422_and_makes_nothing(
    client: TestClient, settings: Settings
) -> None:
    first = _post(client, "k", _png("First file 1"))
    other = _post(client, "k", _png("Second file 2"))

    assert first.status_code == 202
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert first.json()["job_id"] in other.json()["error"]["message"]
    assert len(_uploads(settings)) == 1


def test_repeated_key_with_another_form_field_is_422(client: TestClient) -> None:
    data = _png()
    assert _post(client, "k", data).status_code == 202

    response = client.post(
        "/jobs",
        files={"file": ("a.png", data)},
        data={"note": "x"},
        headers={"Idempotency-Key": "k"},
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("files", "status", "code"),
    [
        ({"other": ("a.png", b"x")}, 422, "file_missing"),
        ({"file": ("a.png", b"")}, 400, "empty_file"),
        ({"file": ("a.png", b"plain text")}, 415, "unsupported_media_type"),
    ],
)
def test_malformed_repeat_of_a_known_key_gets_the_same_4xx_as_a_new_upload(
    client: TestClient, settings: Settings, files: dict, status: int, code: str
) -> None:
    assert _post(client, "k", _png()).status_code == 202

    response = client.post("/jobs", files=files, headers={"Idempotency-Key": "k"})

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert sorted(p.name for p in settings.temp_dir.iterdir() if p.name.startswith(".")) == []


def test_a_key_lives_as_long_as_its_job_then_as_long_as_its_record(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """JOB_TTL_SECONDS counts from the job's end, for its key as for its record: a repeat while
    the job runs past the TTL finds the job instead of making a second one."""
    short = settings.model_copy(update={"job_ttl_seconds": 2})
    store = JobStore(connect_redis(short.redis_url), short.job_ttl_seconds)
    with TestClient(create_app(short)) as client:
        first = _post(client, "sha256-long", _png()).json()["job_id"]
        assert store.claim(first, "w1:1", 30) is Claim.claimed  # held running
        time.sleep(short.job_ttl_seconds + 1.5)

        again = _post(client, "sha256-long", _png())
        assert (again.status_code, again.json()["job_id"]) == (200, first)

        assert store.succeed(first)
        key = keys.idempotency(None, "sha256-long")
        assert 0 < redis_client.ttl(key) <= short.job_ttl_seconds
        assert redis_client.ttl(key) == redis_client.ttl(keys.job(first))
        time.sleep(short.job_ttl_seconds + 1)
        # record and key gone together: the same key now makes a new job
        later = _post(client, "sha256-long", _png())
        assert later.status_code == 202 and later.json()["job_id"] != first


def test_a_key_bound_after_its_job_ended_expires_with_its_record(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = JobStore(connect_redis(settings.redis_url), 60)
    with TestClient(create_app(settings)) as client:
        job_id = _post(client, None, _png()).json()["job_id"]
    store.cancel(job_id)  # ended before its key was bound
    claim = store.idempotency.claim(None, "late", None)
    assert isinstance(claim, Pending)
    assert store.idempotency.bind(None, "late", claim, job_id, "f" * 64)
    assert 0 < redis_client.ttl(keys.idempotency(None, "late")) <= 60
