"""Traces: one OpenTelemetry trace per job, across the API and the worker (docs/tracing.md).

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: then this
module imports nothing of OpenTelemetry and every call below is one check of a module global.
On, `start_tracing` builds the SDK's exporter and provider (shared/tracing/otel.py) and:
- the API opens a span per request (api/request_spans.py) and stores its W3C `traceparent` in
  the job's record (`current_traceparent`): the record is what every run of the job reads,
  whichever way its message came (sent at submit, released later by the fair share, sent
  again by the orphan sweep after a requeue, or a page range's message sent by a plan);
- the worker's runs continue that trace (`RunTrace`): the queue wait, the page range, each
  page's engine call and the result write.
The job's log lines carry the trace id (shared/logs.py), in both processes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from shared.logs import current_trace_id, job_context

if TYPE_CHECKING:
    from shared.jobs import JobRecord
    from shared.settings import Settings
    from shared.tracing.otel import OtelTracing, RangeSpan

log = logging.getLogger(__name__)

_active: OtelTracing | None = None  # set by start_tracing: None means traces are off
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def wanted(settings: Settings) -> bool:
    """Is an OTLP endpoint set (traces on)?"""
    return bool(settings.otel_exporter_otlp_endpoint or settings.otel_exporter_otlp_traces_endpoint)


def start_tracing(settings: Settings, service: str) -> bool:
    """Export this process's spans (its `service.name` `service` unless OTEL_SERVICE_NAME or
    OTEL_RESOURCE_ATTRIBUTES names one) when an endpoint is set; whether traces are on."""
    global _active
    if not wanted(settings):
        return False
    try:
        from shared.tracing.otel import OtelTracing
    except ImportError as exc:
        log.warning(
            "traces are off: an OTLP endpoint is set but OpenTelemetry is not installed (%s); "
            "pip install 'ocrq[tracing]'",
            exc,
        )
        return False
    _active = OtelTracing(settings, service)
    log.info("traces on: %s", _active.describe())
    return True


def stop_tracing() -> None:
    """Send the spans still buffered and stop (a process's end)."""
    global _active
    if _active is not None:
        _active.shutdown()
        _active = None


def active() -> OtelTracing | None:
    """The running tracing (None: off)."""
    return _active


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) of a W3C traceparent; None if it is none."""
    match = _TRACEPARENT.fullmatch(traceparent or "")
    return match.group(1) if match else None


def log_trace_of(traceparent: str | None) -> None:
    """Tag the log lines of the job's context (shared.logs.job_context) with its trace."""
    trace_id = trace_id_of(traceparent)
    if trace_id is not None:
        current_trace_id.set(trace_id)


@contextmanager
def job_logs(job_id: str, traceparent: str | None) -> Iterator[None]:
    """Tag the block's log lines with the job and its trace: for what handles a job outside
    its run (a dropped delivery, the watchdog, the orphan sweep, webhook dispatch and sends)."""
    with job_context(job_id):
        log_trace_of(traceparent)
        yield


# -- the API --
def current_traceparent() -> str | None:
    """The W3C traceparent of the current span (the request's): stored in a new job's record."""
    return None if _active is None else _active.current_traceparent()


def tag_job(job_id: str) -> None:
    """Name the job on the current span (the request that made it)."""
    if _active is not None:
        _active.tag_current("ocrq.job.id", job_id)


# -- the worker --
class RunTrace:
    """The spans of one run in the worker: a job's (`ocr.run`) or one page range's.

    `begin` (once the record is read) opens the queue wait, closed at once (from the time the
    work was queued to its claim), and the page range span under it, current until `end`.
    Without tracing it only tags the run's log lines with the job's trace id.
    """

    def __init__(self, part: int | None = None) -> None:
        self.part = part
        self.claimed_ns = time.time_ns()
        self._range: RangeSpan | None = None
        self._log_token: object | None = None

    def begin(self, record: JobRecord, queued_at: datetime | None = None) -> None:
        """The run's record is read: its trace continues here. `queued_at`: when this range
        was queued (its plan), else the job's last requeue, else its creation."""
        log_trace_of(record.traceparent)  # reset by the job_context around the run
        if _active is not None and self._range is None:
            queued = queued_at or record.requeued_at or record.created_at
            self._range = _active.start_range(record, self.part, queued, self.claimed_ns)
        if self._range is not None and self._range.trace_id and record.traceparent is None:
            current_trace_id.set(self._range.trace_id)  # the API made none: the worker's own

    def planned(self, count: int, pages: int) -> None:
        """This run planned the job into `count` ranges: it reads range 0."""
        self.part = 0
        if self._range is not None:
            self._range.planned(count, pages)

    def end(self, outcome: str | None) -> None:
        if self._range is not None:
            self._range.end(outcome)
            self._range = None


class EngineCallSpan(Protocol):
    """What `engine_call` yields: the span of one page's engine call."""

    def failed(self, code: str) -> None: ...

    def read_by(self, engine: str) -> None: ...


class _NoSpan:
    """What `engine_call` yields when traces are off."""

    def failed(self, code: str) -> None:
        pass

    def read_by(self, engine: str) -> None:
        pass


NO_SPAN = _NoSpan()


@contextmanager
def engine_call(page: int, attempt: int = 1) -> Iterator[EngineCallSpan]:
    """A span around one page's engine call: `read_by(engine)` once read, `failed(code)`."""
    if _active is None:
        yield NO_SPAN
        return
    with _active.engine_call(page, attempt) as span:
        yield span


def engine_call_done(page: int, engine: str, seconds: float, code: str | None = None) -> None:
    """A page read in a batch by another thread: its span, ending now, of `seconds`."""
    if _active is not None:
        _active.engine_call_done(page, engine, seconds, code)


@contextmanager
def result_write(pages: int, failed: int) -> Iterator[None]:
    """A span around writing the job's result and marking it succeeded."""
    if _active is None:
        yield
        return
    with _active.result_write(pages, failed):
        yield
