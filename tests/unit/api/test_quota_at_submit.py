"""Quotas in the submit flow: a job admitted and then not queued (the broker refused its
message) gives its count back, so the key's day and its max_queued are as before. With the
fair share on, a job admitted to its key's waiting list is queued: a refused message is the
sweep's to send again, so the job stays and counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kombu.exceptions import OperationalError

from api.app import create_app
from shared.api_keys import owner_fingerprint
from shared.jobs import JobStore, connect_redis
from shared.jobs.usage import utc_today
from shared.settings import Settings
from testkit.pages import encode, render_page

KEY = "quota-unit-key-7d1c"


def test_a_job_not_queued_gives_its_quota_back(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY} name=unit pages_per_day=1 max_queued=1\n")
    # FAIR_SHARE=off: the message is sent in the request, so a refused one fails the submit
    limited = settings.model_copy(update={"api_keys_file": keys, "fair_share": False})
    png = encode(render_page([("Quota 1", 30)], width=300))
    auth = {"Authorization": f"Bearer {KEY}"}
    with TestClient(create_app(limited)) as client:
        celery = client.app.state.submissions.celery  # type: ignore[attr-defined]

        def broker_down(*args: object, **kwargs: object) -> None:
            raise OperationalError("broker gone")

        with monkeypatch.context() as patched:
            patched.setattr(celery, "send_task", broker_down)
            lost = client.post("/jobs", files={"file": ("a.png", png)}, headers=auth)
        assert lost.status_code == 503, lost.text
        assert lost.json()["error"]["code"] == "queue_unavailable"
        # the day's one page and the one queued slot are free again: the next job passes
        assert client.post("/jobs", files={"file": ("a.png", png)}, headers=auth).status_code == 202
        again = client.post("/jobs", files={"file": ("a.png", png)}, headers=auth)
        assert again.status_code == 429 and again.json()["error"]["code"] == "quota_exceeded"

    store = JobStore(connect_redis(settings.redis_url), settings.job_ttl_seconds)
    owner = owner_fingerprint(KEY)
    [today] = store.usage.days(owner, utc_today(), 1)
    assert (today.jobs_submitted, today.pages_submitted) == (1, 1)
    assert store.usage.active(owner) == 1


def test_with_the_fair_share_a_refused_message_is_kept_for_the_sweep(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY} name=unit pages_per_day=2 max_queued=2\n")
    limited = settings.model_copy(update={"api_keys_file": keys, "fair_share": True})
    png = encode(render_page([("Quota 1", 30)], width=300))
    auth = {"Authorization": f"Bearer {KEY}"}
    with TestClient(create_app(limited)) as client:
        celery = client.app.state.submissions.celery  # type: ignore[attr-defined]

        def broker_down(*args: object, **kwargs: object) -> None:
            raise OperationalError("broker gone")

        with monkeypatch.context() as patched:
            patched.setattr(celery, "send_task", broker_down)
            kept = client.post("/jobs", files={"file": ("a.png", png)}, headers=auth)
        assert kept.status_code == 202, kept.text
        job_id = kept.json()["job_id"]
        assert client.get(f"/jobs/{job_id}", headers=auth).json()["status"] == "queued"

    store = JobStore(connect_redis(settings.redis_url), settings.job_ttl_seconds)
    assert job_id in store.fair.unsent(older_than=0)  # the sweep sends it
    owner = owner_fingerprint(KEY)
    [today] = store.usage.days(owner, utc_today(), 1)
    assert (today.jobs_submitted, today.pages_submitted) == (1, 1)
    assert store.usage.active(owner) == 1
