"""deploy/k8s-s3, the overlay for STORAGE_URL=s3://...: built with `kubectl kustomize` (offline)
when kubectl is installed; its patches checked against the base either way."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.kustomize import kustomize
from tests.unit.deploy.test_k8s import RESOURCES as BASE

ROOT = Path(__file__).resolve().parents[3]
OVERLAY = ROOT / "deploy" / "k8s-s3"
KUSTOMIZATION = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())


def _key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    return kustomize(OVERLAY)


def _deployment(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if _key(d) == ("Deployment", name)]
    return found


def test_patches_target_resources_of_the_base() -> None:
    base = {_key(d) for d in BASE}
    for patch in KUSTOMIZATION["patches"]:
        doc = yaml.safe_load((OVERLAY / patch["path"]).read_text())
        assert _key(doc) in base, patch["path"]
        assert doc["metadata"]["namespace"] == "ocrq"
    assert KUSTOMIZATION["resources"][0] == "../k8s", "the base, not a copy of it"


def test_no_claim_and_no_shared_volume_left(built: list[dict[str, Any]]) -> None:
    assert not [d for d in built if d["kind"] == "PersistentVolumeClaim"]
    assert "persistentVolumeClaim" not in str([d for d in built if d["kind"] == "Deployment"]), (
        "API and workers share only Redis and the bucket"
    )
    # everything else of the base is there, plus the bucket's keys
    assert {_key(d) for d in built} == (
        {_key(d) for d in BASE} - {("PersistentVolumeClaim", "ocrq-data")}
    ) | {("Secret", "ocrq-s3")}


@pytest.mark.parametrize(
    ("deployment", "container"), [("ocrq-api", "api"), ("ocrq-worker", "worker")]
)
def test_each_pod_keeps_its_dirs_on_its_own_scratch_and_reads_the_bucket_settings(
    built: list[dict[str, Any]], deployment: str, container: str
) -> None:
    spec = _deployment(built, deployment)["spec"]["template"]["spec"]
    (c,) = [x for x in spec["containers"] if x["name"] == container]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (config,) = [d for d in built if _key(d) == ("ConfigMap", "ocrq-config")]
    env = config["data"]
    for setting in ("TEMP_DIR", "OUTPUT_DIR"):
        (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == env[setting]]
        assert set(volumes[mount["name"]]) == {"name", "emptyDir"}
    assert env["STORAGE_URL"].startswith("s3://")
    assert {"AWS_REGION", "AWS_ENDPOINT_URL"} <= set(env)
    assert {"configMapRef": {"name": "ocrq-config"}} in c["envFrom"]
    assert {"secretRef": {"name": "ocrq-s3"}} in c["envFrom"]
    assert {"secretRef": {"name": "ocrq-redis", "optional": True}} in c["envFrom"]
    assert ("ocrq-api-keys" in str(c["envFrom"])) == (deployment == "ocrq-api")


def test_the_bucket_keys_are_a_secret_not_config(built: list[dict[str, Any]]) -> None:
    (secret,) = [d for d in built if _key(d) == ("Secret", "ocrq-s3")]
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    (config,) = [d for d in built if _key(d) == ("ConfigMap", "ocrq-config")]
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(config["data"])


def test_built_manifests_match_the_kubernetes_schemas(built: list[dict[str, Any]]) -> None:
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.skip("kubernetes-validate not installed (dev extra)")
    import kubernetes_validate

    for doc in built:
        kubernetes_validate.validate(doc, "1.29.0", strict=True)
