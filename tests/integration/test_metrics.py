"""/metrics adds up what every worker did: counters live in Redis, not in one process."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from testkit.pages import encode, render_page
from testkit.stack import Stack, wait_terminal
from tests.integration.conftest import report_pdf, wait_running

pytestmark = pytest.mark.integration


def _scrape(api: httpx.Client) -> dict[tuple[str, tuple], float]:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _delta(after: dict, before: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


def test_counters_and_histograms_add_up_across_two_workers(stack: Stack, api: httpx.Client) -> None:
    second = stack.start_worker()
    try:
        before = _scrape(api)
        assert before[("ocrq_workers", (("warm", "true"),))] >= 2
        good = encode(render_page([("Metrics count 1", 30)], width=500))
        ok_ids = [
            api.post("/jobs", files={"file": ("a.png", good)}).json()["job_id"] for _ in range(6)
        ]
        png = encode(render_page([("broken", 30)], width=500))
        broken = api.post("/jobs", files={"file": ("b.png", png[:200])}).json()["job_id"]
        for job_id in [*ok_ids, broken]:
            wait_terminal(api, job_id)
        after = _scrape(api)
    finally:
        stack.stop_worker(second)

    assert _delta(after, before, "ocrq_jobs_total", event="submitted") == 7
    assert _delta(after, before, "ocrq_jobs_total", event="succeeded") == 6
    assert _delta(after, before, "ocrq_jobs_total", event="failed") == 1
    assert _delta(after, before, "ocrq_job_duration_seconds_count") == 6
    assert _delta(after, before, "ocrq_page_engine_seconds_count") == 6
    assert _delta(after, before, "ocrq_page_engine_seconds_sum") > 0
    assert after[("ocrq_queue_depth", ())] == 0


def test_the_engine_backlog_counts_a_running_job_with_no_queue_left(
    stack: Stack, api: httpx.Client
) -> None:
    """The autoscaler's figure (deploy/k8s-autoscale) must not fall to 0 under a job a worker
    is still reading, or KEDA would scale its worker away mid-document."""
    for _ in range(3):
        job_id = api.post("/jobs", files={"file": ("r.pdf", report_pdf())}).json()["job_id"]
        wait_running(api, job_id)
        samples = _scrape(api)
        still_running = api.get(f"/jobs/{job_id}").json()["status"] == "running"
        wait_terminal(api, job_id)
        if still_running:  # it ran for the whole scrape: the scrape saw it
            break
    else:
        pytest.fail("the 4-page job ended before a scrape could see it, three times")
    engine = "rapidocr"  # the session stack's worker (testkit/stack.py: OCR_ENGINE's default)
    backlog = samples[("ocrq_engine_backlog", (("engine", engine),))]
    waiting = sum(
        value
        for (name, labels), value in samples.items()
        if name == "ocrq_queue_depth_by_queue" and ("engine", engine) in labels
    )
    assert backlog >= waiting + 1
    assert _scrape(api)[("ocrq_engine_backlog", (("engine", engine),))] == 0
