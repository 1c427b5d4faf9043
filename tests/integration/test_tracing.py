"""Traces: one job's spans, from the API process and a real worker process (rapidocr), arrive at
an OTLP receiver on loopback as one trace, decoded from what came over the wire (OTLP/HTTP
protobuf, and gRPC), and the job's log lines carry that trace's id."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from testkit.otlp_receiver import OtlpReceiver, ReceivedSpan
from testkit.pages import encode, render_page
from testkit.stack import Stack, wait_terminal
from testkit.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.integration

# the caller's own trace: the request continues it
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SERVER, CONSUMER = 2, 5  # SpanKind in OTLP
READ = "GET /jobs/{job_id}"


def _pdf(pages: int) -> bytes:
    images = [render_page([(f"Traced page {n} of the ledger", 40)]) for n in range(1, pages + 1)]
    return encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=100)


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, found)
    return found[0]


def _job_lines(stack: Stack, job_id: str) -> dict[str, list[str]]:
    """Each process's log lines naming the job."""
    return {
        path.name: [line for line in path.read_text().splitlines() if f"job={job_id}" in line]
        for path in stack.base.glob("*.log")
    }


def test_a_job_of_two_page_ranges_is_one_trace_across_api_and_worker(
    side_stack: Callable[..., Stack],
) -> None:
    """The API exports over OTLP/HTTP protobuf, the worker over gRPC (with headers): each
    process with its own service.name, both in the caller's trace."""
    with (
        OtlpReceiver("http/protobuf") as http_otlp,
        OtlpReceiver("grpc") as grpc_otlp,
        WebhookReceiver() as hooks,
    ):
        stack = side_stack(
            **http_otlp.env(),
            CALLBACK_ALLOWED_NETWORKS="127.0.0.1/32",  # the job's webhook: its lines are traced
            WEBHOOK_SECRET="test-webhook-secret",
            OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
            PAGE_RANGE_SIZE="1",  # one range a page
            OCR_FALLBACK_ENGINES="",  # rapidocr alone: one engine to warm
            RAPIDOCR_THREADS="1",
        )
        try:
            stack.start_api()
            stack.start_worker(
                env={**grpc_otlp.env(), "OTEL_EXPORTER_OTLP_HEADERS": "x-scope=ocrq-tests"}
            )
        except BaseException:
            print(stack.logs())
            raise
        with httpx.Client(base_url=stack.url, timeout=30) as api:
            traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
            answer = api.post(
                "/jobs",
                files={"file": ("ledger.pdf", _pdf(2), "application/pdf")},
                data={"callback_url": hooks.url},
                headers={"traceparent": traceparent},
            )
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["job_id"]
            # a job whose trace the API begins
            own = api.post("/jobs", files={"file": ("page.pdf", _pdf(1), "application/pdf")})
            own_id = own.json()["job_id"]
            assert wait_terminal(api, job_id)["status"] == "succeeded"
            assert wait_terminal(api, own_id)["status"] == "succeeded"
            hooks.wait_for(1)

        def worker_done(spans: list[ReceivedSpan]) -> bool:  # the range spans end last
            return [s.name for s in spans].count("ocrq.page_range") == 3

        def api_done(spans: list[ReceivedSpan]) -> bool:  # both jobs' submissions and reads
            named = {(s.name, s.attributes.get("ocrq.job.id")) for s in spans}
            wanted = {(name, job) for name in ("POST /jobs", READ) for job in (job_id, own_id)}
            return wanted <= named

        spans = http_otlp.wait_for(api_done) + grpc_otlp.wait_for(worker_done)
        headers = list(grpc_otlp.headers)
    assert {s.resource["service.name"] for s in spans} == {"ocrq-api", "ocrq-worker"}
    assert all(s.resource["deployment.environment"] == "test" for s in spans)
    assert all(h.get("x-scope") == "ocrq-tests" for h in headers)

    # the job the API began: its request is the trace's root, the worker's spans under it
    own_request = next(
        s for s in spans if s.attributes.get("ocrq.job.id") == own_id and s.name == "POST /jobs"
    )
    assert own_request.parent_id == ""
    # its reads are traces of their own, named by the job
    reads = [s for s in spans if s.name == READ]
    assert reads and all(s.trace_id != own_request.trace_id for s in reads)
    assert {s.attributes["ocrq.job.id"] for s in reads} == {job_id, own_id}
    own_trace = {s.name for s in spans if s.trace_id == own_request.trace_id}
    assert own_trace == {
        "POST /jobs",
        "ocrq.queue_wait",
        "ocrq.page_range",
        "ocrq.engine_call",
        "ocrq.result_write",
    }
    spans = [s for s in spans if s.trace_id == CALLER_TRACE]

    # the request: the API's server span, a child of the caller's span
    request = _one(spans, "POST /jobs")
    assert request.service == "ocrq-api" and request.kind == SERVER
    assert request.parent_id == CALLER_SPAN
    assert request.attributes["ocrq.job.id"] == job_id
    assert request.attributes["http.route"] == "/jobs"
    assert request.attributes["http.response.status_code"] == 202
    assert {s.service for s in spans if s is not request} == {"ocrq-worker"}

    # each range waited in the queue (the job from its submission, range 1 from the plan) and
    # was read under its wait; each page's engine call under its range
    waits = [s for s in spans if s.name == "ocrq.queue_wait"]
    ranges = [s for s in spans if s.name == "ocrq.page_range"]
    calls = [s for s in spans if s.name == "ocrq.engine_call"]
    assert len(waits) == 2 and len(ranges) == 2 and len(calls) == 2, sorted(s.name for s in spans)
    assert all(w.parent_id == request.span_id for w in waits)
    assert all(w.attributes["ocrq.job.id"] == job_id for w in waits)
    assert all(w.start_ns <= w.end_ns for w in waits)
    by_id = {s.span_id: s for s in spans}
    assert sorted(r.attributes["ocrq.range.index"] for r in ranges) == [0, 1]
    for page_range in ranges:
        wait = by_id[page_range.parent_id]
        assert wait.name == "ocrq.queue_wait" and page_range.kind == CONSUMER
        assert wait.attributes["ocrq.range.index"] == page_range.attributes["ocrq.range.index"]
        assert page_range.start_ns >= wait.end_ns
    planner = next(r for r in ranges if r.attributes["ocrq.range.index"] == 0)
    assert planner.attributes["ocrq.range.count"] == 2
    for call in calls:
        assert by_id[call.parent_id].name == "ocrq.page_range"
        assert call.attributes["ocrq.engine"] == "rapidocr"
    assert sorted(c.attributes["ocrq.page.number"] for c in calls) == [1, 2]
    write = _one(spans, "ocrq.result_write")
    assert by_id[write.parent_id].name == "ocrq.page_range"
    assert write.attributes["ocrq.pages"] == 2

    # every line of the job's life, in both processes, names the trace: its webhook's dispatch
    # and send (the worker's webhook threads) included
    lines = _job_lines(stack, job_id)
    assert lines["api.log"] and any(lines[name] for name in lines if name != "api.log")
    webhook_lines = [line for found in lines.values() for line in found if " webhook " in line]
    assert any("scheduled" in line for line in webhook_lines), lines
    assert any("attempt 1: delivered" in line for line in webhook_lines), lines
    for name, found in lines.items():
        for line in found:
            assert f"trace={CALLER_TRACE}" in line, (name, line)


def test_without_an_endpoint_there_are_no_traces(stack: Stack, api: httpx.Client) -> None:
    """The session's stack sets no OTLP endpoint: no trace id in a job's lines, and none
    stored with it."""
    answer = api.post("/jobs", files={"file": ("page.pdf", _pdf(1), "application/pdf")})
    job_id = answer.json()["job_id"]
    assert wait_terminal(api, job_id)["status"] == "succeeded"
    lines = _job_lines(stack, job_id)
    assert any(lines.values())
    assert not any("trace=" in line for found in lines.values() for line in found)
