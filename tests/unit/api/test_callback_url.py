"""callback_url at submit: refused (422 invalid_callback_url naming the field) where it may not
point, accepted where it may, shown with its delivery state by GET /jobs/{id}."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from shared.jobs import JobStore, connect_redis
from shared.settings import Settings
from testkit.pages import encode, render_page

PNG = encode(render_page([("Invoice 42", 24)], width=300), "PNG")


def _client(settings: Settings, **update: object) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=update)))


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://10.0.0.7/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://100.64.3.4/", "carrier-grade NAT"),
        ("ftp://example.com/hook", "scheme"),
        ("http://user:pw@example.com/hook", "credentials"),
    ],
)
def test_refused_callback_urls_are_422_naming_the_field(
    settings: Settings, url: str, says: str
) -> None:
    with _client(settings, webhook_secret="s") as client:
        response = client.post("/jobs", files={"file": ("a.png", PNG)}, data={"callback_url": url})

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_callback_url"
    assert error["message"].startswith("callback_url:") and says in error["message"]
    assert not any(p.is_file() for p in settings.temp_dir.rglob("*"))  # nothing left behind


def test_a_callback_without_any_signing_secret_is_refused(settings: Settings) -> None:
    with _client(settings, callback_allowed_networks="127.0.0.1/32") as client:
        response = client.post(
            "/jobs", files={"file": ("a.png", PNG)}, data={"callback_url": "http://127.0.0.1:9/h"}
        )

    assert response.status_code == 422
    assert "WEBHOOK_SECRET" in response.json()["error"]["message"]


def test_an_allowed_callback_is_kept_and_shown_without_its_query(settings: Settings) -> None:
    allowed = {"webhook_secret": "s", "callback_allowed_networks": "127.0.0.1/32"}
    with _client(settings, **allowed) as client:
        response = client.post(
            "/jobs",
            files={"file": ("a.png", PNG)},
            data={"callback_url": "http://127.0.0.1:9/h?token=abc", "callback_events": "all"},
        )
        assert response.status_code == 202, response.text
        job = client.get(f"/jobs/{response.json()['job_id']}").json()

    assert job["callback"]["url"] == "http://127.0.0.1:9/h?..."
    assert job["callback"]["attempts"] == 0 and job["callback"]["last_outcome"] is None
    record = JobStore(connect_redis(settings.redis_url), 60).require(job["job_id"])
    assert record.options.callback_url == "http://127.0.0.1:9/h?token=abc"


def test_a_job_without_callback_shows_none(settings: Settings) -> None:
    with _client(settings) as client:
        job_id = client.post("/jobs", files={"file": ("a.png", PNG)}).json()["job_id"]
        assert client.get(f"/jobs/{job_id}").json()["callback"] is None


def test_the_api_keys_default_callback_applies_and_is_checked(
    settings: Settings, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(
        "hooked-key callback=http://127.0.0.1:9/key-hook secret=key-secret\n"
        "bad-hook-key callback=http://10.0.0.1/h secret=x\nplain-key\n"
    )
    update = {"api_keys_file": keys, "callback_allowed_networks": "127.0.0.1/32"}
    with _client(settings, **update) as client:
        hooked = client.post(
            "/jobs", files={"file": ("a.png", PNG)}, headers={"Authorization": "Bearer hooked-key"}
        )
        refused = client.post(
            "/jobs",
            files={"file": ("a.png", PNG)},
            headers={"Authorization": "Bearer bad-hook-key"},
        )
        plain = client.post(
            "/jobs", files={"file": ("a.png", PNG)}, headers={"Authorization": "Bearer plain-key"}
        )
        job = client.get(
            f"/jobs/{hooked.json()['job_id']}", headers={"Authorization": "Bearer hooked-key"}
        ).json()

    assert hooked.status_code == 202 and job["callback"]["url"] == "http://127.0.0.1:9/key-hook"
    assert refused.status_code == 422
    assert refused.json()["error"]["message"].startswith("callback_url (the API key's default):")
    assert plain.status_code == 202
