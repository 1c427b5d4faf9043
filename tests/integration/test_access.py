"""API keys against the real API process: who may see which job, and keys never in the logs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from testkit.pages import encode, render_page
from testkit.stack import Stack

pytestmark = pytest.mark.integration

FILE_KEYS = ["team-a-2f9c81d7e4b05a63", "team-b-7e1d04c9a8f2b356"]
ENV_KEY = "env-key-5b8e2a7c1d9f4036"
WRONG = "wrong-key-0c4f9e2b7a1d8365"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_from_file_and_env_each_see_only_their_own_jobs(
    side_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    key_file = tmp_path / "api-keys"
    key_file.write_text(f"# issued 2026-11\n{FILE_KEYS[0]}\n\n  {FILE_KEYS[1]}  \n# {WRONG}\n")
    stack = side_stack(API_KEYS_FILE=str(key_file), API_KEYS=ENV_KEY, LOG_LEVEL="DEBUG")
    stack.start_api()
    png = encode(render_page([("Access 7", 30)], width=300))
    bodies: list[str] = []

    with httpx.Client(base_url=stack.url, timeout=10) as api:
        # open: probes and docs
        for path in ("/health", "/ready", "/docs", "/redoc", "/openapi.json"):
            assert api.get(path).status_code == 200, path
        # everything under /jobs needs a valid key
        for headers in ({}, _auth(WRONG), _auth(f"# {WRONG}"), {"Authorization": WRONG}):
            response = api.post("/jobs", files={"file": ("a.png", png)}, headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            bodies.append(response.text)
        jobs = {}
        for key in [*FILE_KEYS, ENV_KEY]:
            response = api.post(
                "/jobs",
                files={"file": ("a.png", png)},
                headers={**_auth(key), "Idempotency-Key": f"same-{key[:6]}"},
            )
            assert response.status_code == 202, response.text
            jobs[key] = response.json()["job_id"]

        for key, job_id in jobs.items():
            assert api.get(f"/jobs/{job_id}", headers=_auth(key)).status_code == 200
            assert api.get(f"/jobs/{job_id}").status_code == 401
            assert api.get(f"/jobs/{job_id}", headers=_auth(WRONG)).status_code == 401
            for other in set(jobs) - {key}:
                for method, path in (
                    ("GET", f"/jobs/{job_id}"),
                    ("GET", f"/jobs/{job_id}/result"),
                    ("DELETE", f"/jobs/{job_id}"),
                ):
                    response = api.request(method, path, headers=_auth(other))
                    assert response.status_code == 404, (method, path)
                    assert response.json()["error"]["code"] == "job_not_found"
                    bodies.append(response.text)
        # the owner's DELETE works (and leaves no queued job behind)
        for key, job_id in jobs.items():
            assert api.delete(f"/jobs/{job_id}", headers=_auth(key)).json()["status"] == "canceled"
    stack.stop()  # flush the log

    log = (stack.base / "api.log").read_text()
    assert "auth on, 3 key(s)" in log
    assert "accepted" in log  # the log does say what happened
    for secret in [*FILE_KEYS, ENV_KEY, WRONG, WRONG[:12], FILE_KEYS[0][-12:]]:
        assert secret not in log
        assert all(secret not in body for body in bodies)
