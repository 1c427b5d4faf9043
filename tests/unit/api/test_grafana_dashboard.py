"""deploy/grafana/ocrq-dashboard.json against what /metrics really serves: every metric a panel
queries exists, every label it groups by is one that metric carries, and the panels cover
what operators asked for (queue depth by engine and priority, outcomes, engine time, workers
warm, failed pages, tenants)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from shared.settings import Settings
from testkit.pages import encode, render_page

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "ocrq-dashboard.json"
PANELS = json.loads(DASHBOARD.read_text())["panels"]
EXPRS = [t["expr"] for p in PANELS for t in p["targets"]]
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


@pytest.fixture
def served(settings: Settings) -> Iterator[dict[str, set[str]]]:
    """Each sample name /metrics serves after one job was submitted, with its label names."""
    png = encode(render_page([("Dashboard", 30)], width=300))
    with TestClient(create_app(settings)) as client:
        assert client.post("/jobs", files={"file": ("a.png", png)}).status_code == 202
        text = client.get("/metrics").text
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        names.setdefault(family.name, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    yield names


def test_every_queried_metric_and_grouping_label_is_served(served: dict[str, set[str]]) -> None:
    for expr in EXPRS:
        metrics = re.findall(r"\bocrq_[a-z_]+", expr)
        assert metrics, expr
        for metric in metrics:
            # a family with no sample yet (no page read here) is served by its name alone
            family = re.sub("(" + "|".join(SUFFIXES) + ")$", "", metric)
            assert metric in served or family in served, f"{metric} (in {expr}) not in /metrics"
        carried = set().union(*(served.get(m, set()) for m in metrics))
        if not carried:
            continue  # no sample to read label names from
        for group in re.findall(r"by \(([^)]*)\)", expr):
            labels = {name.strip() for name in group.split(",")} - {"le"}
            assert labels <= carried, f"{expr}: {labels - carried} not a label of {metrics}"


def test_counters_and_gauges_are_folded_over_api_pods_not_summed() -> None:
    # every API pod serves the same Redis-kept figures: a sum would count them once per pod
    for expr in EXPRS:
        assert "sum" not in expr, expr


def test_the_panels_cover_what_operators_watch() -> None:
    queried = {
        re.sub("|".join(SUFFIXES) + "$", "", m)
        for e in EXPRS
        for m in re.findall(r"\bocrq_[a-z_]+", e)
    }
    assert {
        "ocrq_queue_depth_by_queue",
        "ocrq_jobs",
        "ocrq_page_engine_seconds",
        "ocrq_workers",
        "ocrq_pages_failed",
        "ocrq_tenant_pages",
        "ocrq_engine_backlog",
    } <= queried
    assert any("by (engine, priority)" in e for e in EXPRS)
    for panel in PANELS:  # one data source variable, picked at import
        assert panel["datasource"]["uid"] == "${datasource}"
