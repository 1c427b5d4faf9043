"""One attempt of the webhook sender against real receivers on loopback: each API key signs as
itself (another key's secret does not verify it), and what it records of a receiver's answer is
the status and a fixed reason, never the receiver's own words."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from shared.api_keys import owner_fingerprint
from shared.jobs.webhooks import Delivery
from shared.settings import Settings
from testkit.webhook_receiver import WebhookReceiver
from tests.unit.worker.test_webhook_signing import docs_verifier
from worker.webhooks.__main__ import print_secrets
from worker.webhooks.backoff import retry_delay
from worker.webhooks.sender import Verdict, WebhookSender

ROOT = Path(__file__).resolve().parents[3]
SHARED = "the-operators-webhook-secret"
KEYS = "key-b,key-c"


def _sender(**update: object) -> WebhookSender:
    settings = Settings(
        api_keys=KEYS,
        webhook_secret=SHARED,
        callback_allowed_networks="127.0.0.1/32",
        webhook_read_timeout=1,
        webhook_total_timeout=2,
        **update,
    )
    return WebhookSender(settings)


def _delivery(url: str, key: str | None = "key-b") -> Delivery:
    body = '{"delivery_id":"d1","event":"succeeded","job_id":"j1"}'
    return Delivery("d1", "j1", "succeeded", "1-0", url, body, owner_fingerprint(key) or "")


def secret_from_the_cli(key: str) -> subprocess.CompletedProcess:
    """What the operator runs to learn a key's webhook secret (README Webhooks)."""
    env = {**os.environ, "API_KEYS": KEYS, "WEBHOOK_SECRET": SHARED}
    return subprocess.run(
        [sys.executable, "-m", "worker.webhooks", "secret"],
        input=f"{key}\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )


def test_a_keys_delivery_verifies_with_its_own_secret_only() -> None:
    sender = _sender()
    with WebhookReceiver() as hooks:
        assert sender.attempt(_delivery(hooks.url, "key-b")).verdict is Verdict.delivered
        [call] = hooks.wait_for(1)
    verify = docs_verifier()
    secret_b = sender.secret_for(_delivery(hooks.url, "key-b"))
    secret_c = sender.secret_for(_delivery(hooks.url, "key-c"))
    sender.close()

    # key C's receiver refuses what key B's jobs send it, signed with the shared secret or not
    assert not verify(secret_c, call.headers, call.body)
    assert not verify(SHARED, call.headers, call.body)
    assert verify(secret_b, call.headers, call.body)
    # the derivation as README Webhooks writes it
    fingerprint = hashlib.sha256(b"ocrq-owner\nkey-b").hexdigest()
    mac = hmac.new(SHARED.encode(), f"ocrq-webhook\n{fingerprint}".encode(), hashlib.sha256)
    assert secret_b == "whsec_" + mac.hexdigest()
    # the secret the operator's command gives key B is the one that verifies (README recipe)
    cli = secret_from_the_cli("key-b")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == secret_b and verify(cli.stdout.strip(), call.headers, call.body)


def test_the_secret_command_refuses_a_key_the_service_does_not_know(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(api_keys=KEYS, webhook_secret=SHARED)

    assert print_secrets(settings, ["key-c", "not-a-key"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "key 2: not in API_KEYS" in err and "not-a-key" not in err
    assert print_secrets(settings.model_copy(update={"webhook_secret": None}), ["key-c"]) == 2


def test_a_keys_own_secret_signs_and_no_key_means_the_shared_secret(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("key-d secret=whsec-own\n")
    sender = _sender(api_keys_file=keys)

    assert sender.secret_for(_delivery("http://127.0.0.1:9/", "key-d")) == "whsec-own"
    assert sender.secret_for(_delivery("http://127.0.0.1:9/", None)) == SHARED  # auth off
    sender.close()


def test_last_error_is_the_status_and_a_fixed_reason() -> None:
    sender = _sender()
    with WebhookReceiver(["500", "429:0", "404", "redirect", "hang"]) as hooks:
        results = [sender.attempt(_delivery(hooks.url)) for _ in range(5)]
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        refused = sender.attempt(_delivery(f"http://127.0.0.1:{closed.getsockname()[1]}/h"))
    sender.close()

    assert [(r.verdict, r.status_code, r.error) for r in results] == [
        (Verdict.retry, 500, "receiver answered 500"),
        (Verdict.retry, 429, "receiver answered 429"),
        (Verdict.give_up, 404, "receiver answered 404"),
        (Verdict.give_up, 302, "redirect not followed (302)"),  # not its Location
        (Verdict.retry, None, "timed out"),
    ]
    assert results[1].retry_after == 0
    assert (refused.verdict, refused.error) == (Verdict.retry, "connection refused")


@pytest.mark.parametrize(("retry_after", "expected"), [(0, 10), (5, 10), (60, 60), (7200, 3600)])
def test_retry_after_is_kept_between_the_base_delay_and_the_cap(
    retry_after: float, expected: float
) -> None:
    assert retry_delay(3, retry_after, base=10, cap=3600) == expected
    assert 32 <= retry_delay(3, None, base=10, cap=3600) <= 48  # no Retry-After: the backoff
