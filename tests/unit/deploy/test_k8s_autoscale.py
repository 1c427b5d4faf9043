"""deploy/k8s-autoscale, read without a cluster: KEDA's ScaledObject checked against KEDA's own
CRD schema (tests/unit/deploy/keda), the API's HPA against Kubernetes', and both against the
manifests and queues they scale."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from shared.jobs.queues import worker_queues
from tests.unit.deploy.kustomize import kustomize
from tests.unit.deploy.test_k8s import RESOURCES, config, container, env_of, find, pod

ROOT = Path(__file__).resolve().parents[3]
AUTOSCALE = ROOT / "deploy" / "k8s-autoscale"
KEDA_CRD = Path(__file__).parent / "keda" / "keda.sh_scaledobjects.yaml"
SCALING = [
    doc
    for path in sorted(AUTOSCALE.glob("*.yaml"))
    if path.name != "kustomization.yaml"
    for doc in yaml.safe_load_all(path.read_text())
    if doc
]
SCALED_OBJECTS = [d for d in SCALING if d["kind"] == "ScaledObject"]
WORKERS = [
    r["metadata"]["name"]
    for r in RESOURCES
    if r["kind"] == "Deployment" and r["metadata"]["name"].startswith("ocrq-worker")
]
# The trigger metadata KEDA's scalers read (pkg/scalers/redis_scaler.go and
# metrics_api_scaler.go, the `keda:"name=..."` tags, same commit as the CRD): a misspelt key
# is silently ignored by KEDA, so it is caught here.
KNOWN_METADATA = {
    "redis": {
        "address", "addresses", "host", "hosts", "port", "ports", "username", "password",
        "sentinelUsername", "sentinelPassword", "sentinelMaster", "unsafeSsl", "listLength",
        "activationListLength", "listName", "databaseIndex", "enableTLS",
    },
    "metrics-api": {
        "targetValue", "activationTargetValue", "url", "format", "valueLocation", "unsafeSsl",
        "aggregateFromKubeServiceEndpoints", "aggregationType", "timeout",
    },
}  # fmt: skip


def _strict(schema: Any) -> Any:
    """The CRD's schema with unknown fields refused, as `kubectl apply --validate=strict` does
    (the API server would otherwise prune a misspelt field without a word)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def scaled_object(deployment: str) -> dict[str, Any]:
    (found,) = [s for s in SCALED_OBJECTS if s["spec"]["scaleTargetRef"]["name"] == deployment]
    return found


def triggers(deployment: str, kind: str) -> list[dict[str, Any]]:
    return [t for t in scaled_object(deployment)["spec"]["triggers"] if t["type"] == kind]


def test_scaled_objects_match_kedas_crd_schema() -> None:
    crd = yaml.safe_load(KEDA_CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    assert SCALED_OBJECTS
    for scaled in SCALED_OBJECTS:
        assert scaled["apiVersion"] == f"{crd['spec']['group']}/v1alpha1"
        jsonschema.validate(scaled, schema)
        for trigger in scaled["spec"]["triggers"]:
            assert set(trigger["metadata"]) <= KNOWN_METADATA[trigger["type"]], trigger
            # KEDA reads trigger metadata as strings only
            assert all(isinstance(v, str) for v in trigger["metadata"].values()), trigger


def test_the_kedas_schema_check_bites() -> None:
    crd = yaml.safe_load(KEDA_CRD.read_text())
    schema = _strict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    broken = {**SCALED_OBJECTS[0], "spec": {**SCALED_OBJECTS[0]["spec"], "cooldownPeriods": 1}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_the_apis_hpa_matches_the_kubernetes_schema_and_has_a_cpu_request_to_aim_at() -> None:
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.skip("kubernetes-validate not installed (dev extra)")
    import kubernetes_validate

    (hpa,) = [d for d in SCALING if d["kind"] == "HorizontalPodAutoscaler"]
    kubernetes_validate.validate(hpa, "1.29.0", strict=True)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "ocrq-api"
    assert hpa["metadata"]["namespace"] == find("Deployment", "ocrq-api")["metadata"]["namespace"]
    assert container("ocrq-api")["resources"]["requests"]["cpu"]
    assert hpa["spec"]["minReplicas"] >= 2  # a rolling update never leaves the API alone


def test_every_worker_deployment_scales_on_every_priority_of_its_engine() -> None:
    assert WORKERS
    for name in WORKERS:
        engine = env_of(name)["OCR_ENGINE"]
        lists = [t["metadata"]["listName"] for t in triggers(name, "redis")]
        assert sorted(lists) == sorted(worker_queues(engine))
        (backlog,) = triggers(name, "metrics-api")
        meta = backlog["metadata"]
        assert meta["format"] == "prometheus"
        # the gauge api/metrics.py renders, for this engine alone
        assert meta["valueLocation"] == f'ocrq_engine_backlog{{engine="{engine}"}}'
        assert scaled_object(name)["metadata"]["namespace"] == "ocrq"


def test_triggers_point_at_the_services_of_deploy_k8s() -> None:
    api_service = find("Service", "ocrq-api")
    redis_service = find("Service", "redis")
    redis_url = urlparse(config()["REDIS_URL"])
    for name in WORKERS:
        (backlog,) = triggers(name, "metrics-api")
        url = urlparse(backlog["metadata"]["url"])
        # KEDA runs in its own namespace: the Service's name within the namespace's DNS
        assert url.hostname == f"ocrq-api.{api_service['metadata']['namespace']}.svc"
        assert url.port in (None, api_service["spec"]["ports"][0]["port"])
        assert url.path == "/metrics"
        for trigger in triggers(name, "redis"):
            host, port = trigger["metadata"]["address"].rsplit(":", 1)
            assert host == f"{redis_url.hostname}.{redis_service['metadata']['namespace']}.svc"
            assert int(port) == redis_url.port == redis_service["spec"]["ports"][0]["port"]
            assert trigger["metadata"]["databaseIndex"] == redis_url.path.strip("/")


def test_gpu_workers_scale_to_zero_and_cool_down_longer_than_a_warm_up() -> None:
    for name in WORKERS:
        spec = scaled_object(name)["spec"]
        startup = container(name)["startupProbe"]
        warm_up = startup["periodSeconds"] * startup["failureThreshold"]
        assert spec["cooldownPeriod"] > warm_up
        if "nvidia.com/gpu" in container(name)["resources"]["limits"]:
            assert spec["minReplicaCount"] == 0
        for trigger in spec["triggers"]:
            meta = trigger["metadata"]
            assert meta.get("activationTargetValue", meta.get("activationListLength")) == "0"
        # a scaled-in pod finishes the task in hand (SIGTERM, Celery's warm shutdown)
        assert pod(name)["terminationGracePeriodSeconds"] >= 300


def test_the_overlay_adds_the_autoscalers_and_drops_the_fixed_replica_counts() -> None:
    kustomization = yaml.safe_load((AUTOSCALE / "kustomization.yaml").read_text())
    listed = sorted(kustomization["resources"])
    assert listed == sorted(
        ["../k8s", *(p.name for p in AUTOSCALE.glob("*.yaml") if p.name != "kustomization.yaml")]
    )
    scaled = {"ocrq-api", *WORKERS}
    removed = {
        p["target"]["name"]
        for p in kustomization["patches"]
        if yaml.safe_load(p["patch"]) == [{"op": "remove", "path": "/spec/replicas"}]
    }
    assert removed == scaled
    for name in scaled:
        assert "replicas" in find("Deployment", name)["spec"]  # so the removal applies


def _built_checks(docs: list[dict[str, Any]]) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("ScaledObject", w) for w in WORKERS} <= kinds
    assert ("HorizontalPodAutoscaler", "ocrq-api") in kinds
    for doc in docs:
        if doc["kind"] == "Deployment":
            assert "replicas" not in doc["spec"], doc["metadata"]["name"]


def test_the_overlay_builds_withkustomize() -> None:
    _built_checks(kustomize(AUTOSCALE))


def test_the_bucket_overlay_on_top_builds_as_the_docs_say(tmp_path: Path) -> None:
    """docs/scaling.md: in deploy/k8s-s3/kustomization.yaml, ../k8s-autoscale for ../k8s."""
    for folder in ("k8s", "k8s-s3", "k8s-autoscale"):
        shutil.copytree(ROOT / "deploy" / folder, tmp_path / folder)
    kustomization = tmp_path / "k8s-s3" / "kustomization.yaml"
    text = kustomization.read_text()
    assert "  - ../k8s\n" in text
    kustomization.write_text(text.replace("  - ../k8s\n", "  - ../k8s-autoscale\n"))
    docs = kustomize(tmp_path / "k8s-s3")
    _built_checks(docs)
    assert ("Secret", "ocrq-s3") in {(d["kind"], d["metadata"]["name"]) for d in docs}
