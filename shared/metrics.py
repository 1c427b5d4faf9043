"""Service metrics kept in Redis, so they add up across API processes and workers.

Counters (jobs submitted, succeeded, failed, canceled) and histograms (job duration, engine
time per page) live in Redis hashes; `/metrics` renders them with the live gauges (queue depth,
jobs running, workers and their warm state) in Prometheus' text format.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from shared.job_leases import RUNNING_SET
from shared.jobs import KEY_PREFIX
from shared.queue import waiting_jobs
from shared.workers import WorkerRegistry

COUNTERS_KEY = f"{KEY_PREFIX}metrics:counters"
JOB_EVENTS = ("submitted", "succeeded", "failed", "canceled")
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


def _histogram_key(name: str) -> str:
    return f"{KEY_PREFIX}metrics:hist:{name}"


class Metrics:
    """Record events (any process) and collect them for /metrics (the API)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def count_job(self, event: str, amount: int = 1) -> None:
        if event not in JOB_EVENTS:
            raise ValueError(f"unknown job event {event!r}")
        self.redis.hincrby(COUNTERS_KEY, event, amount)

    def observe(self, name: str, seconds: float) -> None:
        """Add one observation: its bucket, the sum and the count, in one round trip."""
        _, buckets = HISTOGRAMS[name]
        index = bisect.bisect_left(buckets, seconds)
        bucket = str(buckets[index]) if index < len(buckets) else "+Inf"
        pipe = self.redis.pipeline(transaction=False)
        key = _histogram_key(name)
        pipe.hincrby(key, bucket, 1)
        pipe.hincrbyfloat(key, "sum", seconds)
        pipe.hincrby(key, "count", 1)
        pipe.execute()

    def collect(self) -> Iterator[Metric]:
        counts = self.redis.hgetall(COUNTERS_KEY)
        jobs = CounterMetricFamily("ocrq_jobs", "Jobs by outcome", labels=["event"])
        for event in JOB_EVENTS:
            jobs.add_metric([event], float(counts.get(event, 0)))
        yield jobs
        for name, (doc, buckets) in HISTOGRAMS.items():
            yield _histogram(name, doc, buckets, self.redis.hgetall(_histogram_key(name)))
        yield GaugeMetricFamily(
            "ocrq_queue_depth", "Jobs waiting in the queue", value=waiting_jobs(self.redis)
        )
        yield GaugeMetricFamily(
            "ocrq_jobs_running", "Jobs a worker holds now", value=self.redis.scard(RUNNING_SET)
        )
        beats = WorkerRegistry(self.redis).live()
        workers = GaugeMetricFamily("ocrq_workers", "Live workers by warm state", labels=["warm"])
        workers.add_metric(["true"], sum(1 for b in beats if b.warm))
        workers.add_metric(["false"], sum(1 for b in beats if not b.warm))
        yield workers

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)  # type: ignore[arg-type]  # duck-typed collector
        return registry


def _histogram(
    name: str, doc: str, buckets: Iterable[float], raw: dict[str, str]
) -> HistogramMetricFamily:
    cumulative, rows = 0, []
    for bound in [*map(str, buckets), "+Inf"]:
        cumulative += int(raw.get(bound, 0))
        rows.append((bound, cumulative))
    return HistogramMetricFamily(
        f"ocrq_{name}", doc, buckets=rows, sum_value=float(raw.get("sum", 0))
    )
