"""Traces off cost nothing (OpenTelemetry never imported), a missing package turns them off
with one warning, and the SDK's own variables name the service and the endpoint."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from shared import tracing
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
