"""One attempt of the webhook sender against real receivers on loopback: each API key signs as
itself (another key's secret does not verify it), and what it records of a receiver's answer is
the status and a fixed reason, never the receiver's own words."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from shared.api_keys import owner_fingerprint, whsec
from shared.jobs.webhooks import Delivery
from shared.settings import Settings
from testkit.webhook_receiver import WebhookReceiver
from tests.unit.worker.test_webhook_signing import docs_verifier
from worker.webhooks.__main__ import print_secrets
from worker.webhooks.backoff import retry_delay
from worker.webhooks.sender import Verdict, WebhookSender

ROOT = Path(__file__).resolve().parents[3]
SHARED = "the-operators-webhook-secret"
OWN = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
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
    secret_b = whsec(sender.key_for(_delivery(hooks.url, "key-b")) or b"")
    secret_c = whsec(sender.key_for(_delivery(hooks.url, "key-c")) or b"")
    sender.close()

    # key C's receiver refuses what key B's jobs send it, signed with the shared secret or not
    assert not verify(secret_c, call.headers, call.body)
    assert not verify(whsec(SHARED.encode()), call.headers, call.body)
    assert verify(secret_b, call.headers, call.body)
    Webhook(secret_b).verify(call.body, call.headers)  # the library itself, not only the docs
    # the derivation as docs/webhooks.md writes it
    fingerprint = hashlib.sha256(b"ocrq-owner\nkey-b").hexdigest()
    mac = hmac.new(SHARED.encode(), f"ocrq-webhook\n{fingerprint}".encode(), hashlib.sha256)
    assert secret_b == "whsec_" + base64.b64encode(mac.digest()).decode()
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
    keys.write_text(f"key-d secret={OWN}\n")
    sender = _sender(api_keys_file=keys)

    assert whsec(sender.key_for(_delivery("http://127.0.0.1:9/", "key-d")) or b"") == OWN
    assert sender.key_for(_delivery("http://127.0.0.1:9/", None)) == SHARED.encode()  # auth off
    sender.close()
    auth_off = Settings(webhook_secret=OWN)
    assert print_secrets(auth_off, []) == 0  # the one secret, whatever stdin held


def test_a_key_file_secret_that_is_not_whsec_base64_stops_the_start(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"key-d secret={OWN}\n# old form\nkey-e secret=whsec-1\n")
    env = {**os.environ, "API_KEYS_FILE": str(keys), "WEBHOOK_SECRET": SHARED}
    start = subprocess.run(
        [sys.executable, "-m", "worker.webhooks", "secret"],
        input="key-d\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )

    assert start.returncode != 0 and start.stdout == ""
    assert (
        "API_KEYS_FILE" in start.stderr
        and "line 3: secret=: a webhook secret must be whsec_" in start.stderr
    )
    assert "key-e" not in start.stderr and "whsec-1" not in start.stderr


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
