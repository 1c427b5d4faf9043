"""Signing a delivery: `Ocrq-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.

The timestamp (unix seconds, `Ocrq-Timestamp`) is inside the signature, so a receiver that
refuses old timestamps refuses replays; `v1=` leaves room for another scheme (or two
signatures during a secret rotation, comma separated).
"""

from __future__ import annotations

import hashlib
import hmac

SCHEME = "v1"


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
