"""Webhook signatures, verified by the standardwebhooks library and the docs' snippet built on it
(docs/webhooks.md); the secrets' form; the retry schedule."""

from __future__ import annotations

import base64
import json
import random
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from shared.api_keys import parse_whsec, whsec
from worker.webhooks.backoff import backoff_delay, retry_after_seconds, schedule
from worker.webhooks.signing import delivery_headers, signature, signing_key

WEBHOOKS_DOC = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"
BODY = json.dumps({"delivery_id": "d1", "event": "succeeded", "job_id": "j1"}).encode()
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # Standard Webhooks' own test vector
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))


def docs_snippet(language: str) -> str:
    """The docs' verification snippet in `language` (python, js), as receivers would paste it."""
    text = WEBHOOKS_DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- webhook-verify:.*?-->\n```{language}\n(.*?)```", text, re.S)
    assert match, f"docs/webhooks.md lost its {language} webhook verification snippet"
    return match.group(1)


def docs_verifier():
    """The docs' Python verification function (standardwebhooks)."""
    namespace: dict = {}
    exec(compile(docs_snippet("python"), "docs/webhooks.md", "exec"), namespace)
    return namespace["verify_ocrq_webhook"]


def test_standardwebhooks_verifies_what_the_sender_signs() -> None:
    headers = delivery_headers(KEY, "d1", "succeeded", str(int(time.time())), BODY)

    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)
    assert headers["webhook-signature"].startswith("v1,")
    assert docs_verifier()(SECRET, headers, BODY)


def test_standardwebhooks_refuses_a_changed_body_a_wrong_secret_another_id_and_a_replay() -> None:
    now = str(int(time.time()))
    headers = delivery_headers(KEY, "d1", "succeeded", now, BODY)
    verify = docs_verifier()

    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(SECRET).verify(BODY.replace(b"succeeded", b"failed"), headers)
    other = "whsec_" + base64.b64encode(b"another key of 24 bytes.").decode()
    assert not verify(other, headers, BODY)
    assert not verify(SECRET, {**headers, "webhook-id": "d2"}, BODY)  # the id is signed too
    old = str(int(time.time()) - 3600)
    replayed = delivery_headers(KEY, "d1", "succeeded", old, BODY)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(BODY, replayed)  # validly signed, but an hour old
    assert not verify(SECRET, {**replayed, "webhook-timestamp": now}, BODY)


def test_the_signature_is_the_standard_webhooks_test_vector() -> None:
    # the spec's example: msg_p5jXN8AQM9LWM0D4loKWxJek at 1614265330 over {"test": 2432232314}
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    assert signature(KEY, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body) == expected
    when = datetime.fromtimestamp(1614265330, UTC)
    assert Webhook(SECRET).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", when, body) == expected


NODE_HARNESS = """
const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(input.cases.map(
  (c) => verifyOcrqWebhook(c.secret, c.headers, Buffer.from(c.body, "base64")))));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_docs_node_snippet_accepts_what_the_sender_signs_and_nothing_else() -> None:
    now = str(int(time.time()))
    headers = delivery_headers(KEY, "d1", "succeeded", now, BODY)
    old = delivery_headers(KEY, "d1", "succeeded", str(int(time.time()) - 3600), BODY)
    cases = [
        (SECRET, headers, BODY),
        (SECRET, headers, BODY.replace(b"succeeded", b"failed")),
        ("whsec_" + base64.b64encode(b"another key of 24 bytes.").decode(), headers, BODY),
        (SECRET, old, BODY),
        (SECRET, {**headers, "webhook-id": "d2"}, BODY),
    ]
    payload = [
        {"secret": c[0], "headers": c[1], "body": base64.b64encode(c[2]).decode()} for c in cases
    ]
    node = subprocess.run(
        ["node", "-e", docs_snippet("js") + NODE_HARNESS],
        input=json.dumps({"cases": payload}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert json.loads(node.stdout) == [True, False, False, False, False]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("whsec-1", "whsec_ followed by standard base64"),  # the old docs' example
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_ followed by standard base64"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w", "whsec_ followed by standard base64"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=", "standard base64"),
        ("whsec_c2hvcnQ=", "24 to 64 bytes, not 5"),
    ],
)
def test_a_secret_that_is_not_whsec_base64_is_refused(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_whsec(value)


@pytest.mark.parametrize("size", [24, 32, 33, 64])
def test_whsec_decodes_as_the_library_does(size: int) -> None:
    key = bytes(range(200, 200 - size, -1))
    for written in (whsec(key), whsec(key).rstrip("=")):  # padded or not
        assert parse_whsec(written) == key
        mine = signature(key, "d1", "1000", BODY)
        assert Webhook(written).sign("d1", datetime.fromtimestamp(1000, UTC), BODY) == mine


def test_webhook_secret_is_decoded_when_whsec_else_taken_as_its_bytes() -> None:
    assert signing_key(SECRET) == KEY
    assert signing_key("test-webhook-secret") == b"test-webhook-secret"
    with pytest.raises(ValueError, match="24 to 64 bytes"):
        signing_key("whsec_c2hvcnQ=")


def test_the_schedule_doubles_to_the_cap_and_lasts_hours_at_the_defaults() -> None:
    delays = schedule(15, 10, 3600)

    assert delays[:5] == [10, 20, 40, 80, 160]
    assert max(delays) == 3600 and len(delays) == 14
    assert 6 * 3600 < sum(delays) < 7 * 3600


def test_each_delay_is_jittered_within_a_fifth() -> None:
    rng = random.Random(7)
    draws = [backoff_delay(3, 10, 3600, rng) for _ in range(200)]

    assert all(32 <= d <= 48 for d in draws)
    assert len({round(d, 3) for d in draws}) > 100  # not one fixed value


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 5 ", 5.0), (None, None), ("", None), ("soon", None)],
)
def test_retry_after_in_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)

    assert retry_after_seconds(later, now) == 90.0
