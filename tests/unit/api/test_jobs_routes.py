"""The API in-process against the real Redis (no worker): accept, poll, errors, cleanup."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from shared.jobs import JobStatus, JobStore, connect_redis
from shared.settings import Settings
from testkit.pages import encode, render_page


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _png() -> bytes:
    return encode(render_page([("Hello 123", 30)], width=300))


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def test_post_job_answers_202_with_id_location_and_links(
    client: TestClient, settings: Settings
) -> None:
    response = client.post("/jobs", files={"file": ("scan.png", _png(), "image/png")})

    assert response.status_code == 202
    body = response.json()
    job_id = body["job_id"]
    assert body["status"] == "queued"
    assert response.headers["location"] == f"/jobs/{job_id}"
    assert body["links"] == {"self": f"/jobs/{job_id}", "result": f"/jobs/{job_id}/result"}
    stored = settings.temp_dir / job_id / "input"
    assert stored.read_bytes() == _png()
    # the client's file name is metadata only
    assert [p.name for p in (settings.temp_dir / job_id).iterdir()] == ["input"]


def test_get_job_shows_queued_record(client: TestClient) -> None:
    job_id = client.post("/jobs", files={"file": ("a.png", _png())}).json()["job_id"]

    body = client.get(f"/jobs/{job_id}").json()

    assert body["status"] == "queued"
    assert body["progress"] == {"pages_done": 0, "pages_total": 1, "pages_failed": 0}  # at upload
    assert body["error"] is None
    assert body["started_at"] is None and body["finished_at"] is None


def test_result_of_unfinished_job_is_409(client: TestClient) -> None:
    job_id = client.post("/jobs", files={"file": ("a.png", _png())}).json()["job_id"]

    response = client.get(f"/jobs/{job_id}/result")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "result_not_ready"


def test_result_of_failed_job_is_409_job_failed(client: TestClient, settings: Settings) -> None:
    job_id = client.post("/jobs", files={"file": ("a.png", _png())}).json()["job_id"]
    JobStore(connect_redis(settings.redis_url), 60).fail(job_id, "invalid_image", "bad")

    response = client.get(f"/jobs/{job_id}/result?format=text")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_failed"
    assert client.get(f"/jobs/{job_id}").json()["error"] == {
        "code": "invalid_image",
        "message": "bad",
    }


@pytest.mark.parametrize("job_id", ["0" * 32, "not-a-job", "..%2F..%2Fetc"])
def test_unknown_job_is_404(client: TestClient, job_id: str) -> None:
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/result"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] in ("job_not_found", "not_found")


def test_bad_result_format_is_422(client: TestClient) -> None:
    response = client.get(f"/jobs/{'0' * 32}/result?format=docx")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert "format" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"", 400, "empty_file"),
        (b"just some text, not an image at all", 415, "unsupported_media_type"),
        (b"PK\x03\x04 a zip file renamed to png", 415, "unsupported_media_type"),
        (b"\x89PNG", 415, "unsupported_media_type"),  # too short to be a PNG
    ],
)
def test_bad_uploads_get_clear_4xx_and_leave_nothing(
    client: TestClient, settings: Settings, payload: bytes, status: int, code: str
) -> None:
    response = client.post("/jobs", files={"file": ("page.png", payload, "image/png")})

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert _files_under(settings.temp_dir) == []


def test_upload_over_limit_is_413_and_leaves_nothing(
    client: TestClient, settings: Settings
) -> None:
    big = _png() + b"\0" * (settings.max_upload_bytes + 10)

    response = client.post("/jobs", files={"file": ("big.png", big)})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"
    assert _files_under(settings.temp_dir) == []


def test_upload_over_limit_without_content_length_is_413(
    client: TestClient, settings: Settings
) -> None:
    boundary = "b0undary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
    chunks = [head.encode(), _png()] + [b"\0" * 65536] * 32  # 2 MB against a 1 MB limit

    response = client.post(
        "/jobs",
        content=iter(chunks),  # chunked: no Content-Length to reject early on
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )

    assert response.status_code == 413
    assert _files_under(settings.temp_dir) == []


def test_missing_file_field_is_422(client: TestClient) -> None:
    response = client.post("/jobs", data={"other": "x"}, files={"not_file": ("a.png", _png())})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "file_missing"


def test_non_multipart_body_is_400(client: TestClient) -> None:
    response = client.post("/jobs", content=_png(), headers={"content-type": "image/png"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_path_like_filename_never_becomes_a_path(client: TestClient, settings: Settings) -> None:
    response = client.post("/jobs", files={"file": ("../../evil\x00.png", _png())})

    assert response.status_code == 202
    job_id = response.json()["job_id"]
    stored = [p.relative_to(settings.temp_dir).as_posix() for p in _files_under(settings.temp_dir)]
    assert stored == [f"{job_id}/input"]
    store = JobStore(connect_redis(settings.redis_url), 60)
    filename = store.require(job_id).filename or ""
    assert filename.startswith("../../evil") and "\x00" not in filename  # kept as metadata


def test_job_record_retention_counts_from_the_jobs_end(
    client: TestClient, settings: Settings
) -> None:
    job_id = client.post("/jobs", files={"file": ("a.png", _png())}).json()["job_id"]
    store = JobStore(connect_redis(settings.redis_url), settings.job_ttl_seconds)

    assert store.require(job_id).status is JobStatus.queued
    assert store.redis.ttl(f"ocrq:job:{job_id}") == -1  # queued: kept however long it waits
    assert client.delete(f"/jobs/{job_id}").json()["status"] == "canceled"
    ttl = store.redis.ttl(f"ocrq:job:{job_id}")
    assert settings.job_ttl_seconds - 5 <= ttl <= settings.job_ttl_seconds


def test_a_record_that_is_gone_or_partial_is_404_everywhere(
    client: TestClient, settings: Settings
) -> None:
    job_id = client.post("/jobs", files={"file": ("a.png", _png())}).json()["job_id"]
    store = JobStore(connect_redis(settings.redis_url), settings.job_ttl_seconds)
    key = f"ocrq:job:{job_id}"

    for lose in (
        lambda: store.redis.delete(key),
        lambda: store.redis.hset(key, mapping={"pages_done": 2}),  # what older versions wrote
    ):
        lose()
        for response in (
            client.get(f"/jobs/{job_id}"),
            client.get(f"/jobs/{job_id}/result"),
            client.delete(f"/jobs/{job_id}"),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "job_not_found"


def test_api_keys_required_when_set(settings: Settings) -> None:
    secured = settings.model_copy(update={"api_keys": "k1, k2"})
    with TestClient(create_app(secured)) as client:
        assert client.get("/health").status_code == 200
        no_key = client.post("/jobs", files={"file": ("a.png", _png())})
        assert no_key.status_code == 401
        assert no_key.json()["error"]["code"] == "unauthorized"
        bad = client.get(f"/jobs/{'0' * 32}", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        ok = client.post(
            "/jobs", files={"file": ("a.png", _png())}, headers={"Authorization": "Bearer k2"}
        )
        assert ok.status_code == 202


@pytest.mark.parametrize(
    ("path", "location"),
    [
        (f"/jobs/{'a' * 32}/", f"/jobs/{'a' * 32}"),
        (f"/jobs/{'a' * 32}/result/?format=text", f"/jobs/{'a' * 32}/result?format=text"),
    ],
)
def test_a_trailing_slash_redirects_to_a_relative_location(
    client: TestClient, path: str, location: str
) -> None:
    """Never a URL built from the Host header (`http://evil.example/jobs/...`)."""
    response = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)

    assert response.status_code == 307
    assert response.headers["location"] == location


@pytest.mark.parametrize("path", ["//evil.example/", "//health/", "/nowhere/"])
def test_no_redirect_where_no_route_is(client: TestClient, path: str) -> None:
    url = httpx.URL(scheme="http", host="testserver", path=path)  # "//x" kept as a path
    response = client.get(url, headers={"Host": "evil.example"}, follow_redirects=False)

    assert response.status_code == 404
    assert "location" not in response.headers
