"""Signing a delivery the Standard Webhooks way (https://www.standardwebhooks.com/):
`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
"<id>.<timestamp>.<body>">`, so any of its libraries verifies what we send.

The id is the delivery id: the same on every retry of one event (receivers dedupe on it). The
timestamp (unix seconds of this attempt) is inside the signature, so a receiver refusing old
timestamps refuses replays. `v1,` leaves room for another scheme, and the header may carry
several signatures (space separated) during a secret rotation.

Which secret: the job's API key's own `secret=` (whsec_<base64>, checked at start), else one
derived for that key from WEBHOOK_SECRET (so a key signs as itself only: a receiver verifying
with its key's secret refuses what another key's jobs send it), else, with auth off (no keys),
WEBHOOK_SECRET itself (signing_key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from shared.api_keys import WHSEC_PREFIX, KeyRing, parse_whsec

SCHEME = "v1"


def signing_key(webhook_secret: str) -> bytes:
    """The key bytes of WEBHOOK_SECRET: a `whsec_...` value is decoded as Standard Webhooks
    does, any other value is its UTF-8 bytes as given."""
    if webhook_secret.startswith(WHSEC_PREFIX):
        return parse_whsec(webhook_secret)
    return webhook_secret.encode()


def derived_key(webhook_secret: str, owner: str) -> bytes:
    """The key of an API key without `secret=`: HMAC-SHA256(key=WEBHOOK_SECRET's key bytes,
    "ocrq-webhook\n" + owner), `owner` being the key's fingerprint
    (shared.api_keys.owner_fingerprint); handed out as whsec_ + its base64."""
    mac = hmac.new(signing_key(webhook_secret), f"ocrq-webhook\n{owner}".encode(), hashlib.sha256)
    return mac.digest()


def key_for(keys: KeyRing, webhook_secret: str | None, owner: str | None) -> bytes | None:
    """The key bytes signing the deliveries of jobs of `owner` (None: no key, auth is off);
    `whsec(key)` is the secret its receiver verifies with."""
    entry = keys.for_owner(owner)
    if entry is not None and entry.secret:
        return parse_whsec(entry.secret)
    if not webhook_secret:
        return None
    return derived_key(webhook_secret, owner) if owner else signing_key(webhook_secret)


def signature(key: bytes, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The `webhook-signature` value for this body sent as `delivery_id` at `timestamp`."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    mac = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{SCHEME},{base64.b64encode(mac).decode()}"


def delivery_headers(
    key: bytes, delivery_id: str, event: str, timestamp: str, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers, and two of ours that only inform (unsigned)."""
    return {
        "Content-Type": "application/json",
        "webhook-id": delivery_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signature(key, delivery_id, timestamp, body),
        "Ocrq-Event": event,
        "Ocrq-Delivery": delivery_id,
    }
