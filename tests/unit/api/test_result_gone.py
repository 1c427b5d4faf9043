"""A succeeded job whose result files are gone (removed, `make clean`, another STORAGE_URL) no
longer reads as succeeded: GET /jobs/{id} and its result answer 410 `result_gone`, so a client
knows to submit the file again instead of waiting for a result that will never come."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from shared.jobs import Claim, JobStore, connect_redis
from shared.settings import Settings
from shared.storage import JobFiles
from testkit.pages import encode, render_page
from tests.unit.api.owners import ALICE


@pytest.fixture
def store(secured: Settings) -> JobStore:
    return JobStore(connect_redis(secured.redis_url), secured.job_ttl_seconds)


def _succeeded(client: TestClient, settings: Settings, store: JobStore) -> JobFiles:
    """A job through the API, finished as a worker finishes it (every result format stored)."""
    png = encode(render_page([("Gone soon", 30)], width=300))
    job_id = client.post("/jobs", files={"file": ("a.png", png)}, headers=ALICE).json()["job_id"]
    assert store.claim(job_id, "w1:1", 30) is Claim.claimed
    files = JobFiles(settings.temp_dir, settings.output_dir, job_id)
    for fmt, data in (("json", b'{"pages": []}'), ("markdown", b"Gone\n"), ("text", b"Gone\n")):
        files.write_result(fmt, data)
    assert store.succeed(job_id)
    return files


def test_a_succeeded_job_whose_result_is_gone_answers_410_result_gone(
    owner_client: TestClient, secured: Settings, store: JobStore
) -> None:
    files = _succeeded(owner_client, secured, store)
    job = f"/jobs/{files.job_id}"
    assert owner_client.get(job, headers=ALICE).json()["status"] == "succeeded"

    files.remove_all()  # as `make clean` or a lost bucket would

    for path in (job, f"{job}?wait=1", f"{job}/result", f"{job}/result?format=text"):
        response = owner_client.get(path, headers=ALICE)
        assert response.status_code == 410, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "result_gone" and "submit the file again" in error["message"]
    # the record itself is untouched: the job did succeed, its files are what went
    assert store.get(files.job_id).status.value == "succeeded"


def test_result_gone_is_documented_in_openapi(owner_client: TestClient) -> None:
    paths = owner_client.get("/openapi.json").json()["paths"]
    assert "410" in paths["/jobs/{job_id}"]["get"]["responses"]
    assert "410" in paths["/jobs/{job_id}/result"]["get"]["responses"]
