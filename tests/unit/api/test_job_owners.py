"""With API_KEYS set, a job belongs to the key that created it: other keys get 404."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from shared.jobs import Claim, JobStore, connect_redis
from shared.settings import Settings
from shared.storage import JobFiles
from testkit.pages import encode, render_page
from tests.unit.api.owners import ALICE, BOB


def _submit(owner_client: TestClient, headers: dict[str, str]) -> str:
    png = encode(render_page([("Owner 42", 30)], width=300))
    response = owner_client.post("/jobs", files={"file": ("a.png", png)}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def _finish(settings: Settings, job_id: str) -> None:
    """Play the worker: a stored result and a succeeded record."""
    store = JobStore(connect_redis(settings.redis_url), settings.job_ttl_seconds)
    assert store.claim(job_id, "w1:1", 30) is Claim.claimed
    files = JobFiles(settings.temp_dir, settings.output_dir, job_id)
    files.write_result("json", b"{}")  # as a worker, every format (GET /jobs/{id} checks json)
    files.write_result("text", b"Owner 42\n")
    assert store.succeed(job_id)


def test_each_key_sees_only_its_own_jobs(owner_client: TestClient, secured: Settings) -> None:
    alices, bobs = _submit(owner_client, ALICE), _submit(owner_client, BOB)
    _finish(secured, alices)

    assert owner_client.get(f"/jobs/{alices}", headers=ALICE).status_code == 200
    assert owner_client.get(f"/jobs/{bobs}", headers=BOB).status_code == 200
    assert (
        owner_client.get(f"/jobs/{alices}/result?format=text", headers=ALICE).text == "Owner 42\n"
    )

    unknown = owner_client.get(f"/jobs/{'0' * 32}", headers=BOB).json()
    for path in (f"/jobs/{alices}", f"/jobs/{alices}/result?format=text"):
        response = owner_client.get(path, headers=BOB)
        assert response.status_code == 404
        # indistinguishable from an unknown id, so ids cannot be probed
        assert response.json()["error"]["message"] == unknown["error"]["message"].replace(
            "0" * 32, alices
        )
    assert owner_client.delete(f"/jobs/{alices}", headers=BOB).status_code == 404
    assert owner_client.get(f"/jobs/{bobs}", headers=ALICE).status_code == 404
    assert owner_client.delete(f"/jobs/{bobs}", headers=ALICE).status_code == 404
    # Alice's wrong DELETE touched nothing: Bob's job is still queued, with its upload
    assert owner_client.get(f"/jobs/{bobs}", headers=BOB).json()["status"] == "queued"
    assert (secured.temp_dir / bobs / "input").is_file()
    assert owner_client.delete(f"/jobs/{bobs}", headers=BOB).json()["status"] == "canceled"


def test_the_record_keeps_a_fingerprint_never_the_key(
    owner_client: TestClient, secured: Settings
) -> None:
    job_id = _submit(owner_client, ALICE)
    store = JobStore(connect_redis(secured.redis_url), secured.job_ttl_seconds)

    raw = store.redis.hgetall(f"ocrq:job:{job_id}")
    assert len(raw["owner"]) == 64
    everything = " ".join(
        f"{k} {v}" for key in store.redis.scan_iter("*") for k, v in _dump(store, key)
    )
    assert "alice-key-0001" not in everything


def _dump(store: JobStore, key: str) -> list[tuple[str, str]]:
    kind = store.redis.type(key)
    if kind == "hash":
        return list(store.redis.hgetall(key).items())
    if kind == "string":
        return [(key, store.redis.get(key) or "")]
    if kind == "list":
        return [(key, v) for v in store.redis.lrange(key, 0, -1)]
    return [(key, "")]


def test_jobs_made_without_auth_are_not_shown_to_keys(settings: Settings) -> None:
    """Turning API_KEYS on later does not hand the open service's jobs to every key."""
    keyed = settings.model_copy(update={"api_keys": "alice-key-0001"})  # before the cache fills
    with TestClient(create_app(settings)) as open_client:
        job_id = _submit(open_client, {})
        assert open_client.get(f"/jobs/{job_id}").status_code == 200
    with TestClient(create_app(keyed)) as owner_client:
        assert owner_client.get(f"/jobs/{job_id}", headers=ALICE).status_code == 404


def test_key_file_keys_are_accepted(settings: Settings, tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# rotated 2026-11\n\n  file-key-0003  \n# old-key\n")
    keyed = settings.model_copy(update={"api_keys_file": key_file})
    with TestClient(create_app(keyed)) as owner_client:
        job_id = _submit(owner_client, {"Authorization": "Bearer file-key-0003"})
        for key in ("old-key", "# old-key", "# rotated 2026-11", ""):
            headers = {"Authorization": f"Bearer {key}"}
            assert owner_client.get(f"/jobs/{job_id}", headers=headers).status_code == 401
