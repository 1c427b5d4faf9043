"""/metrics in Prometheus' text format, read through the job package.

Counters (jobs submitted, succeeded, failed, canceled; `ocrq_pages_failed_total`, pages
recorded as failed while their job went on) and histograms (job duration, engine
time per page) are kept in Redis by shared/jobs (metrics.py), so they add up across API
processes and workers; the live gauges (queue depth, jobs running, workers and their warm
state) are read at scrape time. `ocrq_queue_depth` is the total waiting;
`ocrq_queue_depth_by_queue{queue,engine,priority}` splits it per queue, and
`ocrq_engine_backlog{engine}` adds each engine's running work to its waiting work (what the
autoscaler scales workers on).
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

from shared.api_keys import KeyRing
from shared.jobs import HISTOGRAMS, JobStore, WorkerRegistry
from shared.jobs.keys import ANONYMOUS_TENANT
from shared.jobs.queues import engine_of, priority_of
from shared.options import Engine

# the counter of failed pages in the job package's counters (beside the jobs' outcomes)
PAGES_FAILED = "pages_failed"


class Metrics:
    """The collector /metrics renders."""

    def __init__(self, store: JobStore, workers: WorkerRegistry, ring: KeyRing) -> None:
        self.store = store
        self.workers = workers
        self.ring = ring

    def collect(self) -> Iterator[Metric]:
        counts = self.store.metrics.counters()
        pages_failed = self.store.metrics.page_counters()[PAGES_FAILED]
        jobs = CounterMetricFamily("ocrq_jobs", "Jobs by outcome", labels=["event"])
        for event, count in counts.items():
            jobs.add_metric([event], float(count))
        yield jobs
        yield CounterMetricFamily(
            "ocrq_pages_failed",
            "Pages recorded as failed (on_page_error=continue) while their job went on",
            value=float(pages_failed),
        )
        yield from self._tenants()
        for name, (doc, buckets) in HISTOGRAMS.items():
            yield _histogram(name, doc, buckets, self.store.metrics.histogram(name))
        depths = self.store.queue_depths()
        yield GaugeMetricFamily(
            "ocrq_queue_depth", "Jobs waiting, all queues", value=sum(depths.values())
        )
        per_queue = GaugeMetricFamily(
            "ocrq_queue_depth_by_queue",
            "Jobs waiting per queue (engine kind, priority)",
            labels=["queue", "engine", "priority"],
        )
        for queue, depth in depths.items():
            engine, priority = engine_of(queue), priority_of(queue)
            per_queue.add_metric(
                [queue, engine.value if engine else "", priority.value if priority else ""],
                depth,
            )
        yield per_queue
        yield _backlog(depths, self.store.running_by_engine())
        yield GaugeMetricFamily(
            "ocrq_jobs_running", "Jobs a worker holds now", value=self.store.running_count()
        )
        beats = self.workers.live()
        workers = GaugeMetricFamily("ocrq_workers", "Live workers by warm state", labels=["warm"])
        workers.add_metric(["true"], sum(1 for b in beats if b.warm))
        workers.add_metric(["false"], sum(1 for b in beats if not b.warm))
        yield workers

    def _tenants(self) -> Iterator[Metric]:
        """Pages and jobs by tenant: the API key's name (never the key), `anonymous` without
        one; from the usage totals in Redis, so they add up over every process."""
        pages = CounterMetricFamily(
            "ocrq_tenant_pages",
            "Pages read (outcome done) or failed, by API key name",
            labels=["tenant", "outcome"],
        )
        jobs = CounterMetricFamily(
            "ocrq_tenant_jobs_submitted", "Jobs accepted, by API key name", labels=["tenant"]
        )
        for (tenant, what), count in sorted(self.store.usage.totals().items()):
            label = self.ring.label(None if tenant == ANONYMOUS_TENANT else tenant)
            if what == "submitted":
                jobs.add_metric([label], float(count))
            else:
                pages.add_metric([label, what.removeprefix("pages_")], float(count))
        yield pages
        yield jobs

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)  # a collector by its collect() and describe()
        return registry


def _backlog(depths: dict[str, int], running: dict[str, int]) -> GaugeMetricFamily:
    """What the autoscaler reads (deploy/k8s-autoscale: KEDA's metrics-api scaler): per engine
    kind, work waiting in its queues (every priority, the fair share's held work included) plus
    work its workers hold now, so a busy engine is not scaled to zero under its running jobs."""
    backlog = GaugeMetricFamily(
        "ocrq_engine_backlog",
        "Work for an engine's workers: waiting (every priority, fair share included) + running",
        labels=["engine"],
    )
    totals = dict.fromkeys((e.value for e in Engine), 0)
    for queue, depth in depths.items():
        if (engine := engine_of(queue)) is not None:
            totals[engine.value] += depth
    for engine_name, count in running.items():
        totals[engine_name] = totals.get(engine_name, 0) + count
    for engine_name, total in totals.items():
        backlog.add_metric([engine_name], total)
    return backlog


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
