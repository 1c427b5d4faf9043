"""Signing a delivery: `Ocrq-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.

The timestamp (unix seconds, `Ocrq-Timestamp`) is inside the signature, so a receiver that
refuses old timestamps refuses replays; `v1=` leaves room for another scheme (or two
signatures during a secret rotation, comma separated).

Which secret: the job's API key's own `secret=`, else one derived for that key from
WEBHOOK_SECRET (so a key signs as itself only: a receiver verifying with its key's secret
refuses what another key's jobs send it), else, with auth off (no keys), WEBHOOK_SECRET.
"""

from __future__ import annotations

import hashlib
import hmac

from shared.api_keys import KeyRing

SCHEME = "v1"
DERIVED_PREFIX = "whsec_"


def derived_secret(webhook_secret: str, owner: str) -> str:
    """The secret of a key without `secret=`: HMAC-SHA256(WEBHOOK_SECRET, "ocrq-webhook\n" +
    owner) in hex, `owner` being the key's fingerprint (shared.api_keys.owner_fingerprint)."""
    mac = hmac.new(webhook_secret.encode(), f"ocrq-webhook\n{owner}".encode(), hashlib.sha256)
    return DERIVED_PREFIX + mac.hexdigest()


def secret_for(keys: KeyRing, webhook_secret: str | None, owner: str | None) -> str | None:
    """The secret signing the deliveries of jobs of `owner` (None: no key, auth is off)."""
    entry = keys.for_owner(owner)
    if entry is not None and entry.secret:
        return entry.secret
    if not webhook_secret:
        return None
    return derived_secret(webhook_secret, owner) if owner else webhook_secret


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `Ocrq-Signature` header's value for this body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def delivery_headers(
    secret: str, delivery_id: str, event: str, timestamp: str, body: bytes
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Ocrq-Delivery": delivery_id,
        "Ocrq-Event": event,
        "Ocrq-Timestamp": timestamp,
        "Ocrq-Signature": signature(secret, timestamp, body),
    }
