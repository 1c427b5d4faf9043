"""A server span per HTTP request (traces on: shared/tracing/); imported only then.

A pure ASGI middleware, like SecurityHeaders: streams pass through untouched, and the span is
current while the route runs, so a new job's record stores its traceparent. An incoming
`traceparent` (OTEL_PROPAGATORS: W3C by default) makes the request a child of the caller's
trace. The probes (/health, /ready, /metrics) get no span: they would drown the jobs' traces.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, format_trace_id
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logs import current_trace_id
from shared.tracing.otel import OtelTracing

UNTRACED = frozenset({"/health", "/ready", "/metrics"})
_ROOT = Context()  # no caller's trace: the request's span is a root


class RequestSpans:
    def __init__(self, app: ASGIApp, tracing: OtelTracing) -> None:
        self.app = app
        self.tracer = tracing.tracer
        # the header names OTEL_PROPAGATORS' propagators read (traceparent, tracestate, baggage)
        self.fields = frozenset(
            f.lower().encode("latin-1") for f in propagate.get_global_textmap().fields
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        span = self.tracer.start_span(
            method,  # named "<method> <route>" once the route is known
            context=self._caller(scope),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        context = span.get_span_context()  # invalid with OTEL_SDK_DISABLED=true
        log_token = current_trace_id.set(
            format_trace_id(context.trace_id) if context.is_valid else None
        )
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            attributes: dict[str, str | int] = {"http.response.status_code": status}
            route = getattr(scope.get("route"), "path", None)
            if route:
                span.update_name(f"{method} {route}")
                attributes["http.route"] = route
            job_id = scope.get("path_params", {}).get("job_id")
            if job_id:  # a read of a job (its own trace): found by the job's id
                attributes["ocrq.job.id"] = str(job_id)
            span.set_attributes(attributes)  # one call: the span's attributes lock taken once
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            current_trace_id.reset(log_token)
            otel_context.detach(token)

    def _caller(self, scope: Scope) -> Context:
        """The caller's trace context from the headers the propagators read (none: an empty
        context, so the request's span begins a trace). Only those headers are decoded."""
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in self.fields
        }
        return propagate.extract(carrier) if carrier else _ROOT
