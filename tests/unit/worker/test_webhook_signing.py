"""Webhook signatures, verified by the docs' own snippet (docs/webhooks.md); the retry schedule."""

from __future__ import annotations

import json
import random
import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from worker.webhooks.backoff import backoff_delay, retry_after_seconds, schedule
from worker.webhooks.signing import delivery_headers, signature

WEBHOOKS_DOC = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"
BODY = json.dumps({"delivery_id": "d1", "event": "succeeded", "job_id": "j1"}).encode()


def docs_verifier():
    """The verification function the docs give receivers, as they would paste it."""
    text = WEBHOOKS_DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- webhook-verify:.*?-->\n```python\n(.*?)```", text, re.S)
    assert match, "docs/webhooks.md lost its webhook verification snippet"
    namespace: dict = {}
    exec(compile(match.group(1), "docs/webhooks.md", "exec"), namespace)
    return namespace["verify_ocrq_webhook"]


def test_the_docs_snippet_accepts_what_the_sender_signs() -> None:
    verify = docs_verifier()
    headers = delivery_headers("s3cret", "d1", "succeeded", str(int(time.time())), BODY)

    assert headers["Ocrq-Signature"].startswith("v1=")
    assert verify("s3cret", headers, BODY)


def test_the_docs_snippet_refuses_a_changed_body_a_wrong_secret_and_a_replay() -> None:
    verify = docs_verifier()
    now = str(int(time.time()))
    headers = delivery_headers("s3cret", "d1", "succeeded", now, BODY)

    assert not verify("s3cret", headers, BODY.replace(b"succeeded", b"failed"))
    assert not verify("other", headers, BODY)
    old = str(int(time.time()) - 3600)
    replayed = delivery_headers("s3cret", "d1", "succeeded", old, BODY)
    assert not verify("s3cret", replayed, BODY)  # validly signed, but an hour old
    forged = {**headers, "Ocrq-Timestamp": old}  # an old capture with a fresh timestamp
    assert not verify("s3cret", {**forged, "Ocrq-Timestamp": now, "Ocrq-Signature": "v1=00"}, BODY)


def test_the_signature_covers_the_timestamp() -> None:
    assert signature("k", "1000", BODY) != signature("k", "1001", BODY)
    # the documented construction, byte for byte
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1000." + BODY, hashlib.sha256).hexdigest()
    assert signature("k", "1000", BODY) == f"v1={expected}"


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
