"""The service's counters and histograms in Redis, so they add up across processes.

The job counters (submitted, succeeded, failed, canceled) are counted by the state-change
scripts themselves; this module reads them, and records and reads the histograms.
"""

from __future__ import annotations

import bisect

import redis

from shared.jobs import keys
from shared.jobs.connection import text_fields

JOB_COUNTERS = ("submitted", "succeeded", "failed", "canceled")
# pages recorded as failed (on_page_error=continue), counted by the PAGE script
PAGE_COUNTERS = ("pages_failed",)
HISTOGRAMS = {
    "job_duration_seconds": (
        "Time from a worker taking a job to its end",
        (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    ),
    "page_engine_seconds": (
        "Engine time to recognize one page",
        (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60),
    ),
}


class JobMetrics:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def observe(self, name: str, seconds: float) -> None:
        """Add one observation: its bucket, the sum and the count, in one round trip."""
        _, buckets = HISTOGRAMS[name]
        index = bisect.bisect_left(buckets, seconds)
        bucket = str(buckets[index]) if index < len(buckets) else "+Inf"
        pipe = self._redis.pipeline(transaction=False)
        key = keys.histogram(name)
        pipe.hincrby(key, bucket, 1)
        pipe.hincrbyfloat(key, "sum", seconds)
        pipe.hincrby(key, "count", 1)
        pipe.execute()

    def counters(self) -> dict[str, int]:
        """Jobs by outcome, each counted once by the change that made it."""
        raw = self._redis.hgetall(keys.COUNTERS)
        return {name: int(raw.get(name, 0)) for name in JOB_COUNTERS}

    def page_counters(self) -> dict[str, int]:
        """Pages by outcome counted by the PAGE script (`pages_failed`), for /metrics."""
        raw = self._redis.hgetall(keys.COUNTERS)
        return {name: int(raw.get(name, 0)) for name in PAGE_COUNTERS}

    def histogram(self, name: str) -> dict[str, str]:
        """The raw hash: count per bucket bound ("+Inf" too), "sum" and "count"."""
        return text_fields(self._redis.hgetall(keys.histogram(name)))
