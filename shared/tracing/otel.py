"""The OpenTelemetry side of shared/tracing/: imported only when traces are on.

The SDK reads its own variables: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (the resource),
OTEL_TRACES_SAMPLER(_ARG) (the sampler, parent-based: the API's decision holds in the worker),
OTEL_EXPORTER_OTLP(_TRACES)_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE... (the exporter),
OTEL_BSP_* (the batch span processor), OTEL_PROPAGATORS (incoming request headers) and
OTEL_SDK_DISABLED. The endpoint and protocol come from the settings (the same variables).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared import __version__

if TYPE_CHECKING:
    from shared.jobs import JobRecord
    from shared.settings import Settings

QUEUE_WAIT = "ocrq.queue_wait"
PAGE_RANGE = "ocrq.page_range"
ENGINE_CALL = "ocrq.engine_call"
RESULT_WRITE = "ocrq.result_write"
_W3C = TraceContextTextMapPropagator()  # the record's traceparent is W3C whatever OTEL_PROPAGATORS


def _protocol(settings: Settings) -> str:
    return (
        settings.otel_exporter_otlp_traces_protocol
        or settings.otel_exporter_otlp_protocol
        or "http/protobuf"
    )


def _endpoint(settings: Settings, protocol: str) -> str:
    """The traces' URL: the traces endpoint as it is, else the base one (+ /v1/traces over
    HTTP), as the OTLP exporter specification says."""
    if settings.otel_exporter_otlp_traces_endpoint:
        return settings.otel_exporter_otlp_traces_endpoint
    base = settings.otel_exporter_otlp_endpoint
    return base if protocol == "grpc" else base.rstrip("/") + "/v1/traces"


def build_exporter(settings: Settings) -> SpanExporter:
    """The OTLP span exporter of the protocol the settings name (grpc imported only for it)."""
    protocol = _protocol(settings)
    endpoint = _endpoint(settings, protocol)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(endpoint=endpoint)


def build_resource(service: str) -> Resource:
    """The SDK's resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME), named `service` unless
    those name it."""
    detected = Resource.create({})
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: service}))
    return detected


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


class EngineSpan:
    def __init__(self, span: Span) -> None:
        self.span = span

    def failed(self, code: str) -> None:
        self.span.set_attribute("ocrq.error.code", str(code))
        self.span.set_status(Status(StatusCode.ERROR, str(code)))

    def read_by(self, engine: str) -> None:
        self.span.set_attribute("ocrq.engine", engine)


class RangeSpan:
    """A run's page range span, current in this thread until `end`."""

    def __init__(self, span: Span) -> None:
        self.span = span
        context = span.get_span_context()  # invalid with OTEL_SDK_DISABLED=true
        self.trace_id = format_trace_id(context.trace_id) if context.is_valid else None
        self._token = otel_context.attach(trace.set_span_in_context(span))

    def planned(self, count: int, pages: int) -> None:
        self.span.set_attributes(
            {"ocrq.range.index": 0, "ocrq.range.count": count, "ocrq.range.pages": pages}
        )

    def end(self, outcome: str | None) -> None:
        if outcome:
            self.span.set_attribute("ocrq.outcome", outcome)
        otel_context.detach(self._token)
        self.span.end()


class OtelTracing:
    """A process's tracer provider, its exporter and the spans ocrq makes."""

    def __init__(
        self, settings: Settings, service: str, exporter: SpanExporter | None = None
    ) -> None:
        """`exporter`: spans go to it as each ends (tests), instead of OTLP in batches."""
        self.protocol = _protocol(settings)
        self.endpoint = _endpoint(settings, self.protocol)
        # no sampler given: the SDK's from OTEL_TRACES_SAMPLER (parentbased_always_on)
        self.provider = TracerProvider(resource=build_resource(service))
        processor = (
            SimpleSpanProcessor(exporter)
            if exporter is not None
            else BatchSpanProcessor(build_exporter(settings))
        )
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("ocrq", __version__)
        self.service = str(self.provider.resource.attributes.get(SERVICE_NAME))

    def describe(self) -> str:
        return f"service.name {self.service}, OTLP {self.protocol} to {self.endpoint}"

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes what the batch processor holds

    # -- the API --
    def current_traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        return carrier.get("traceparent")

    @staticmethod
    def tag_current(name: str, value: str) -> None:
        trace.get_current_span().set_attribute(name, value)

    # -- the worker --
    def start_range(
        self, record: JobRecord, part: int | None, queued: datetime, claimed_ns: int
    ) -> RangeSpan:
        """The queue wait (queued -> claimed) under the job's request, and the page range
        span under it, from the claim on."""
        parent = _W3C.extract({"traceparent": record.traceparent} if record.traceparent else {})
        common: dict[str, str | int] = {"ocrq.job.id": record.job_id, "ocrq.range.index": part or 0}
        if part is None:  # the job's own run (ocr.run): one range unless it plans more
            common["ocrq.attempt"] = record.attempts
        if record.queue:
            common["messaging.destination.name"] = record.queue
        start = min(_ns(queued), claimed_ns)
        wait = self.tracer.start_span(
            QUEUE_WAIT, context=parent, kind=SpanKind.INTERNAL, attributes=common, start_time=start
        )
        wait.end(end_time=claimed_ns)
        attributes = {**common, "ocrq.engine.requested": record.options.engine or "auto"}
        span = self.tracer.start_span(
            PAGE_RANGE,
            context=trace.set_span_in_context(wait, parent),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            start_time=claimed_ns,
        )
        return RangeSpan(span)

    @contextmanager
    def engine_call(self, page: int, attempt: int) -> Iterator[EngineSpan]:
        attributes = {"ocrq.page.number": page, "ocrq.attempt": attempt}
        with self.tracer.start_as_current_span(ENGINE_CALL, attributes=attributes) as span:
            yield EngineSpan(span)

    def engine_call_done(self, page: int, engine: str, seconds: float, code: str | None) -> None:
        end = time.time_ns()
        attributes: dict[str, str | int | bool] = {
            "ocrq.page.number": page,
            "ocrq.engine": engine,
            "ocrq.batched": True,
        }
        span = self.tracer.start_span(
            ENGINE_CALL, attributes=attributes, start_time=end - int(seconds * 1_000_000_000)
        )
        if code is not None:
            EngineSpan(span).failed(code)
        span.end(end_time=end)

    @contextmanager
    def result_write(self, pages: int, failed: int) -> Iterator[None]:
        attributes = {"ocrq.pages": pages, "ocrq.pages.failed": failed}
        with self.tracer.start_as_current_span(RESULT_WRITE, attributes=attributes):
            yield
