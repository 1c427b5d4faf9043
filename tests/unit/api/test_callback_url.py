"""callback_url at submit: refused (422 invalid_callback_url naming the field) where it may not
point, accepted where it may, shown with its delivery state by GET /jobs/{id}."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from shared.callback_urls import LOOKUPS_PER_TENANT
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
        f"hooked-key callback=http://127.0.0.1:9/key-hook secret=whsec_{'A' * 32}\n"
        f"bad-hook-key callback=http://10.0.0.1/h secret=whsec_{'B' * 32}\nplain-key\n"
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


class HangingResolver:
    """Stands in for socket.getaddrinfo: names `hang*.test` never answer (until released),
    `fast.test` is 127.0.0.1 at once, any other name resolves as usual."""

    def __init__(self) -> None:
        self.real = socket.getaddrinfo
        self.release = threading.Event()
        self.asked: list[str] = []
        self._lock = threading.Condition()

    def __call__(self, host: str, *args: object, **kwargs: object) -> list:
        if host == "fast.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]
        if host.startswith("hang") and host.endswith(".test"):
            with self._lock:
                self.asked.append(host)
                self._lock.notify_all()
            self.release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return self.real(host, *args, **kwargs)

    def wait_asked(self, count: int, timeout: float = 10) -> None:
        with self._lock:
            assert self._lock.wait_for(lambda: len(self.asked) >= count, timeout), self.asked


def test_one_keys_hanging_dns_does_not_refuse_another_keys_callbacks(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key A submits callbacks naming hosts whose resolver never answers: A's submits are
    refused after CALLBACK_DNS_TIMEOUT, and key B's, naming a host that answers, pass meanwhile."""
    resolver = HangingResolver()
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    keys = tmp_path / "keys"
    keys.write_text("tenant-a\ntenant-b\n")
    update = {
        "api_keys_file": keys,
        "webhook_secret": "s",
        "callback_allowed_networks": "127.0.0.1/32",
    }
    hosts = ["hang.test"] * 8 + [f"hang{n}.test" for n in range(24)]  # one name, then many

    def submit(key: str, host: str) -> httpx.Response:
        return client.post(
            "/jobs",
            files={"file": ("a.png", PNG)},
            data={"callback_url": f"http://{host}/h"},
            headers={"Authorization": f"Bearer {key}"},
        )

    try:
        with _client(settings, **update) as client, ThreadPoolExecutor(len(hosts)) as pool:
            hanging = [pool.submit(submit, "tenant-a", host) for host in hosts]
            resolver.wait_asked(4)  # a's lookups hang in the resolver now
            others = [submit("tenant-b", "fast.test") for _ in range(3)]
            answers = [future.result() for future in hanging]
    finally:
        resolver.release.set()

    assert [r.status_code for r in others] == [202] * 3, others[0].text
    assert {r.status_code for r in answers} == {422}
    messages = {r.json()["error"]["message"] for r in answers}
    assert "callback_url: hang.test did not resolve within 2 s" in messages
    # one lookup per name in flight, and a bounded number of names per key
    assert len(resolver.asked) == len(set(resolver.asked)) <= LOOKUPS_PER_TENANT
    assert any("lookups of this API key are still unanswered" in m for m in messages)
