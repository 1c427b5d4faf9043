"""Traces off cost nothing (OpenTelemetry never imported), a missing package turns them off
with one warning, and the SDK's own variables name the service and the endpoint."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import tracing
from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, recover_orphans, utcnow
from shared.logs import current_job_id, current_trace_id, job_context
from shared.queue import make_celery
from shared.settings import Settings

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_without_an_endpoint_no_tracing_code_is_imported() -> None:
    """No span processor, exporter or request middleware; (FastAPI imports opentelemetry-api
    for its own telemetry, off without a provider, and redis-py the SDK's metrics module when
    it is installed: both at import only.)"""
    code = (
        "import sys\n"
        "from shared.settings import Settings\n"
        "from shared import tracing\n"
        "import api.app, api.submitting, worker.pipeline, worker.page_reading\n"
        "settings = Settings()\n"
        "assert tracing.start_tracing(settings, 'ocrq-api') is False\n"
        "assert tracing.current_traceparent() is None\n"
        "app = api.app.create_app(settings)\n"
        "assert not [m for m in app.user_middleware if m.cls.__name__ == 'RequestSpans']\n"
        "ours = ('shared.tracing.otel', 'api.request_spans', 'opentelemetry.sdk.trace',\n"
        "    'opentelemetry.exporter')\n"
        "loaded = [m for m in sys.modules if m.startswith(ours)]\n"
        "assert not loaded, loaded\n"
    )
    env = {"PATH": "/usr/bin:/bin"}  # no OTEL_* of the machine's
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_a_missing_package_turns_traces_off_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "shared.tracing.otel", None)  # import fails
    settings = Settings(otel_exporter_otlp_endpoint="http://127.0.0.1:4318")
    with caplog.at_level(logging.WARNING, "shared.tracing"):
        assert tracing.start_tracing(settings, "ocrq-worker") is False
    assert tracing.active() is None
    [record] = caplog.records
    assert "OpenTelemetry is not installed" in record.getMessage()


def test_the_trace_id_of_a_traceparent() -> None:
    assert tracing.trace_id_of(TRACEPARENT) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert tracing.trace_id_of(None) is None
    assert tracing.trace_id_of("garbage") is None


def test_the_endpoint_follows_the_otlp_exporter_rules() -> None:
    from shared.tracing.otel import _endpoint, _protocol

    base = Settings(otel_exporter_otlp_endpoint="http://collector:4318/")
    assert _protocol(base) == "http/protobuf"
    assert _endpoint(base, "http/protobuf") == "http://collector:4318/v1/traces"
    grpc = Settings(
        otel_exporter_otlp_endpoint="http://collector:4317", otel_exporter_otlp_protocol="grpc"
    )
    assert _protocol(grpc) == "grpc" and _endpoint(grpc, "grpc") == "http://collector:4317"
    own = Settings(
        otel_exporter_otlp_endpoint="http://collector:4317",
        otel_exporter_otlp_traces_endpoint="http://traces:9999/in",
        otel_exporter_otlp_protocol="grpc",
        otel_exporter_otlp_traces_protocol="http/protobuf",
    )
    assert _protocol(own) == "http/protobuf"
    assert _endpoint(own, "http/protobuf") == "http://traces:9999/in"


def test_the_service_name_is_the_process_default_unless_the_operator_names_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared.tracing.otel import build_resource

    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    resource = build_resource("ocrq-worker").attributes
    assert resource["service.name"] == "ocrq-worker"
    assert resource["deployment.environment"] == "prod"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")
    assert build_resource("ocrq-worker").attributes["service.name"] == "from-attributes"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gpu-pool")
    assert build_resource("ocrq-worker").attributes["service.name"] == "gpu-pool"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Traces on in this process, each span handed to a list as it ends."""
    from shared.tracing.otel import OtelTracing

    exporter = InMemorySpanExporter()
    settings = Settings(otel_exporter_otlp_endpoint="http://127.0.0.1:9")
    monkeypatch.setattr(tracing, "_active", OtelTracing(settings, "ocrq-worker", exporter))
    yield exporter
    tracing.stop_tracing()


def _record(traceparent: str | None) -> JobRecord:
    return JobRecord(
        job_id="feed",
        status=JobStatus.running,
        created_at=utcnow() - timedelta(seconds=2),
        queue="ocr.rapidocr.normal",
        attempts=1,
        traceparent=traceparent,
    )


def test_a_run_continues_the_trace_its_record_names(spans: InMemorySpanExporter) -> None:
    record = _record(TRACEPARENT)
    with job_context("feed"):
        run = tracing.RunTrace()
        run.begin(record)
        assert current_trace_id.get() == "4bf92f3577b34da6a3ce929d0e0e4736"
        with tracing.engine_call(1) as call:
            call.read_by("rapidocr")
        with tracing.engine_call(2) as call:
            call.failed("recognition_failed")
        tracing.engine_call_done(3, "paddleocr-vl", 0.25)  # read in a batch by another thread
        with tracing.result_write(3, 1):
            pass
        run.end("succeeded")
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left current

    finished = spans.get_finished_spans()
    by_name = {s.name: s for s in finished}
    wait, page_range = by_name["ocrq.queue_wait"], by_name["ocrq.page_range"]
    assert {s.context.trace_id for s in finished} == {0x4BF92F3577B34DA6A3CE929D0E0E4736}
    assert wait.parent is not None and wait.parent.span_id == 0x00F067AA0BA902B7
    assert wait.start_time == int(record.created_at.timestamp() * 1e9)
    assert wait.attributes["messaging.destination.name"] == "ocr.rapidocr.normal"
    assert page_range.parent is not None and page_range.parent.span_id == wait.context.span_id
    assert page_range.attributes["ocrq.outcome"] == "succeeded"
    calls = [s for s in finished if s.name == "ocrq.engine_call"]
    assert [c.attributes["ocrq.page.number"] for c in calls] == [1, 2, 3]
    assert all(c.parent.span_id == page_range.context.span_id for c in calls)  # type: ignore[union-attr]
    assert calls[0].attributes["ocrq.engine"] == "rapidocr"
    assert calls[1].attributes["ocrq.error.code"] == "recognition_failed"
    assert not calls[1].status.is_ok
    assert calls[2].attributes["ocrq.batched"] is True
    assert calls[2].end_time - calls[2].start_time == 250_000_000
    write = by_name["ocrq.result_write"]
    assert write.parent.span_id == page_range.context.span_id  # type: ignore[union-attr]
    assert dict(write.resource.attributes)["service.name"] == "ocrq-worker"


def test_a_job_the_api_did_not_trace_gets_a_trace_of_the_worker_s_own(
    spans: InMemorySpanExporter,
) -> None:
    with job_context("feed"):
        run = tracing.RunTrace(part=2)
        run.begin(_record(None))
        logged = current_trace_id.get()
        run.end("running")
    wait, page_range = spans.get_finished_spans()
    assert wait.parent is None  # its own root
    assert logged == f"{page_range.context.trace_id:032x}"
    assert page_range.attributes["ocrq.range.index"] == 2


def test_with_the_sdk_disabled_no_span_and_no_trace_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared.tracing.otel import OtelTracing

    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    exporter = InMemorySpanExporter()
    settings = Settings(otel_exporter_otlp_endpoint="http://127.0.0.1:9")
    monkeypatch.setattr(tracing, "_active", OtelTracing(settings, "ocrq-worker", exporter))
    with job_context("feed"):
        run = tracing.RunTrace()
        run.begin(_record(None))
        assert current_trace_id.get() is None
        run.end(None)
    tracing.stop_tracing()
    assert exporter.get_finished_spans() == ()


def test_the_orphan_sweeps_lines_about_a_job_carry_its_trace(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """The sweep runs outside any run of the job: its requeue line names the job's trace all
    the same (read from the record), and leaves no trace behind for the next line."""
    store = JobStore(connect_redis(settings.redis_url), 600)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    job_id = uuid.uuid4().hex
    store.create(
        JobRecord(
            job_id=job_id,
            status=JobStatus.queued,
            created_at=utcnow(),
            traceparent=f"00-{trace_id}-00f067aa0ba902b7-01",
        )
    )
    store.claim(job_id, "dead:1", 1)
    redis_client.delete(f"ocrq:lease:{job_id}")  # its worker died

    class Tags(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[str, str | None, str | None]] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.seen.append((record.getMessage(), current_job_id.get(), current_trace_id.get()))

    tags = Tags()
    sweep_log = logging.getLogger("shared.jobs.sweep")
    sweep_log.addHandler(tags)
    try:
        report = recover_orphans(store, make_celery(settings), settings)
    finally:
        sweep_log.removeHandler(tags)
    assert report.requeued == [job_id]
    assert tags.seen == [
        (f"job={job_id} lost its worker (lease lapsed); requeued", job_id, trace_id)
    ]
    assert current_trace_id.get() is None


def test_a_requeued_runs_queue_wait_begins_at_its_requeue(spans: InMemorySpanExporter) -> None:
    """Its worker died: the next run's wait is from the sweep's requeue, not the creation."""
    record = _record(TRACEPARENT).model_copy(update={"requeued_at": utcnow()})
    with job_context("feed"):
        run = tracing.RunTrace()
        run.begin(record)
        run.end("succeeded")
    wait = next(s for s in spans.get_finished_spans() if s.name == "ocrq.queue_wait")
    assert record.requeued_at is not None
    assert wait.start_time == int(record.requeued_at.timestamp() * 1e9)
