"""Quotas in the submit flow: a job admitted and then not queued (the broker refused its
message) gives its count back, so the key's day and its max_queued are as before. With the
fair share on as off: its message is built (by Celery, then pushed by the script that records
the job) before anything is recorded, so a refused one fails the submit whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from kombu.exceptions import OperationalError

from api.app import create_app
from shared.api_keys import owner_fingerprint
from shared.jobs import JobStore, connect_redis
from shared.jobs.usage import utc_today
from shared.settings import Settings
from testkit.pages import encode, render_page

KEY = "quota-unit-key-7d1c"


PNG = encode(render_page([("Quota 1", 30)], width=300))
AUTH = {"Authorization": f"Bearer {KEY}"}


def _limited(settings: Settings, tmp_path: Path, limit: int, fair_share: bool) -> Settings:
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY} name=unit pages_per_day={limit} max_queued={limit}\n")
    return settings.model_copy(update={"api_keys_file": keys, "fair_share": fair_share})


def _submit_with_the_broker_down(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Response:
    def broker_down(*args: object, **kwargs: object) -> None:
        raise OperationalError("broker gone")

    celery = client.app.state.submissions.celery  # type: ignore[attr-defined]
    with monkeypatch.context() as patched:
        patched.setattr(celery, "send_task", broker_down)
        return client.post("/jobs", files={"file": ("a.png", PNG)}, headers=AUTH)


def _assert_counted_once(settings: Settings) -> JobStore:
    store = JobStore(connect_redis(settings.redis_url), settings.job_ttl_seconds)
    owner = owner_fingerprint(KEY)
    [today] = store.usage.days(owner, utc_today(), 1)
    assert (today.jobs_submitted, today.pages_submitted) == (1, 1)
    assert store.usage.active(owner) == 1
    return store


@pytest.mark.parametrize("fair_share", [False, True])
def test_a_job_not_queued_gives_its_quota_back(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fair_share: bool
) -> None:
    limited = _limited(settings, tmp_path, 1, fair_share=fair_share)
    with TestClient(create_app(limited)) as client:
        lost = _submit_with_the_broker_down(client, monkeypatch)
        assert lost.status_code == 503, lost.text
        assert lost.json()["error"]["code"] == "queue_unavailable"
        # the day's one page and the one queued slot are free again: the next job passes
        assert client.post("/jobs", files={"file": ("a.png", PNG)}, headers=AUTH).status_code == 202
        again = client.post("/jobs", files={"file": ("a.png", PNG)}, headers=AUTH)
        assert again.status_code == 429 and again.json()["error"]["code"] == "quota_exceeded"
    store = _assert_counted_once(settings)
    # nothing of the refused job was left behind: no record, nothing waiting or to send
    assert store.queue_depth() == 1
    assert store.fair.unsent(older_than=0) == []
