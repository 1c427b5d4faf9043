"""When a failed delivery is tried again: exponential backoff with jitter, or Retry-After.

Attempt n (1-based) that failed is retried after base * 2**(n-1) seconds, capped at
WEBHOOK_BACKOFF_MAX_SECONDS, each delay drawn in [0.8, 1.2] of that (jitter: receivers that
came back are not hit by every sender at once). A 429 or 5xx with Retry-After waits that long
instead, capped the same and never shorter than the base delay (`Retry-After: 0` gets no
back-to-back retries). At the defaults (10 s, 1 h cap, 15 attempts) the last attempt comes
about 6.4 h after the first.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

JITTER = 0.2


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before the attempt after `attempt` (which failed)."""
    nominal = min(base * 2 ** (attempt - 1), cap)
    return nominal * (rng or random).uniform(1 - JITTER, 1 + JITTER)


def retry_delay(
    attempt: int,
    retry_after: float | None,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds before the attempt after `attempt`: the receiver's Retry-After when it gave one,
    at least `base` (WEBHOOK_BACKOFF_BASE_SECONDS) and at most `cap`; else the backoff."""
    if retry_after is None:
        return backoff_delay(attempt, base, cap, rng)
    return min(max(retry_after, base), cap)


def schedule(attempts: int, base: float, cap: float) -> list[float]:
    """The nominal delays (no jitter) after each failed attempt but the last."""
    return [min(base * 2 ** (n - 1), cap) for n in range(1, attempts)]


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
