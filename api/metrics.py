"""/metrics in Prometheus' text format, read through the job package.

Counters (jobs submitted, succeeded, failed, canceled) and histograms (job duration, engine
time per page) are kept in Redis by shared/jobs (metrics.py), so they add up across API
processes and workers; the live gauges (queue depth, jobs running, workers and their warm
state) are read at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from shared.jobs import HISTOGRAMS, JobStore, WorkerRegistry


class Metrics:
    """The collector /metrics renders."""

    def __init__(self, store: JobStore, workers: WorkerRegistry) -> None:
        self.store = store
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        counts = self.store.metrics.counters()
        jobs = CounterMetricFamily("ocrq_jobs", "Jobs by outcome", labels=["event"])
        for event, count in counts.items():
            jobs.add_metric([event], float(count))
        yield jobs
        for name, (doc, buckets) in HISTOGRAMS.items():
            yield _histogram(name, doc, buckets, self.store.metrics.histogram(name))
        yield GaugeMetricFamily(
            "ocrq_queue_depth", "Jobs waiting in the queue", value=self.store.queue_depth()
        )
        yield GaugeMetricFamily(
            "ocrq_jobs_running", "Jobs a worker holds now", value=self.store.running_count()
        )
        beats = self.workers.live()
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
