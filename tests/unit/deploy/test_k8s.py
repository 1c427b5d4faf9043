"""deploy/k8s, read without a cluster: schemas, probes, shared volume, GPU, secrets, users."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.unit.deploy.dockerfile import Dockerfile

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
RESOURCES: list[dict[str, Any]] = [
    doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc
]


def find(kind: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in RESOURCES if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def container(deployment: str) -> dict[str, Any]:
    (only,) = find("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return only


def pod(deployment: str) -> dict[str, Any]:
    return find("Deployment", deployment)["spec"]["template"]["spec"]


def port_number(c: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in c["ports"] if p["name"] == port]
    return number


def config() -> dict[str, str]:
    return find("ConfigMap", "ocrq-config")["data"]


def env_of(deployment: str) -> dict[str, str]:
    """What the container sees from the ConfigMap and its own env list."""
    c = container(deployment)
    assert {"configMapRef": {"name": "ocrq-config"}} in c["envFrom"]
    return {**config(), **{e["name"]: e["value"] for e in c.get("env", []) if "value" in e}}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_match_the_kubernetes_schemas(path: Path) -> None:
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.skip("kubernetes-validate not installed (dev extra)")
    import kubernetes_validate

    errors = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        try:
            # 1.29: the oldest release these manifests promise to work on
            kubernetes_validate.validate(doc, "1.29.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            errors.append(f"{doc['kind']}/{doc['metadata']['name']} {where}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_kustomization_lists_every_manifest_in_one_namespace() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)
    namespaced = [r for r in RESOURCES if r["kind"] != "Namespace"]
    assert {r["metadata"]["namespace"] for r in namespaced} == {kustomization["namespace"]}
    images = {i["name"] for i in kustomization["images"]}
    assert {container("ocrq-api")["image"].split(":")[0], "ocrq-worker-gpu"} <= images


def test_api_probes_health_and_ready_on_its_port_with_short_delays() -> None:
    c = container("ocrq-api")
    live, ready = c["livenessProbe"], c["readinessProbe"]
    assert live["httpGet"]["path"] == "/health"
    assert ready["httpGet"]["path"] == "/ready"
    for probe in (live, ready):
        assert port_number(c, probe["httpGet"]["port"]) == 8081 == int(env_of("ocrq-api")["PORT"])
        assert probe.get("initialDelaySeconds", 0) <= 5, "the API is ready in seconds"
    assert "startupProbe" not in c


def test_api_service_reaches_the_container_port() -> None:
    (port,) = find("Service", "ocrq-api")["spec"]["ports"]
    assert port_number(container("ocrq-api"), port["targetPort"]) == 8081


def test_worker_startup_probe_allows_a_long_warm_up_then_liveness_reads_the_heartbeat() -> None:
    c = container("ocrq-worker")
    startup, live = c["startupProbe"], c["livenessProbe"]
    assert startup["exec"]["command"] == ["python", "-m", "worker.probe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert live["exec"]["command"][:3] == ["python", "-m", "worker.probe"]
    # Redis down is not the worker's fault: a restart would only throw away the warm engine.
    assert "--allow-redis-down" in live["exec"]["command"]
    for probe in (startup, live):
        assert probe["timeoutSeconds"] >= 5, "python start-up is slower than the 1 s default"


def test_worker_asks_for_a_gpu_and_runs_paddleocr_vl() -> None:
    c = container("ocrq-worker")
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert env_of("ocrq-worker")["OCR_ENGINE"] == "paddleocr-vl"


def test_api_and_worker_mount_one_shared_claim_where_the_settings_point() -> None:
    claim = find("PersistentVolumeClaim", "ocrq-data")
    assert "ReadWriteMany" in claim["spec"]["accessModes"], "pods on several nodes share it"
    seen = []
    for deployment in ("ocrq-api", "ocrq-worker"):
        volumes = {v["name"]: v for v in pod(deployment)["volumes"]}
        by_path = {m["mountPath"]: m for m in container(deployment)["volumeMounts"]}
        env = env_of(deployment)
        for setting in ("TEMP_DIR", "OUTPUT_DIR"):
            mount = by_path[env[setting]]
            source = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
            seen.append((deployment, setting, source, mount.get("subPath")))
    assert {(s, c, sub) for _, s, c, sub in seen} == {
        ("TEMP_DIR", "ocrq-data", "temp"),
        ("OUTPUT_DIR", "ocrq-data", "output"),
    }


def test_api_keys_come_from_a_secret_given_to_the_api_only() -> None:
    secret = find("Secret", "ocrq-api-keys")
    assert "API_KEYS" in secret["stringData"]
    assert {"secretRef": {"name": "ocrq-api-keys"}} in container("ocrq-api")["envFrom"]
    assert "ocrq-api-keys" not in str(container("ocrq-worker"))
    assert "API_KEYS" not in config()


@pytest.mark.parametrize("deployment", ["ocrq-api", "ocrq-worker"])
def test_pods_run_as_the_images_non_root_user(deployment: str) -> None:
    uid = int(Dockerfile.read(ROOT / "Dockerfile.api").variables("api")["APP_UID"])
    context = pod(deployment)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == context["fsGroup"] == uid
    assert container(deployment)["securityContext"]["allowPrivilegeEscalation"] is False


def test_redis_persists_with_aof_and_answers_at_the_configured_url() -> None:
    url = urlparse(config()["REDIS_URL"])
    service = find("Service", url.hostname or "")
    assert service["spec"]["ports"][0]["port"] == url.port
    redis = find("StatefulSet", "redis")
    (c,) = redis["spec"]["template"]["spec"]["containers"]
    args = c["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    assert "--dir" not in args, "the AOF goes to the image's workdir, /data"
    (mount,) = c["volumeMounts"]
    assert mount["mountPath"] == "/data"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == mount["name"], "/data is a persistent volume claim"
    assert "emptyDir" not in str(redis["spec"]["template"]["spec"].get("volumes", []))


def test_worker_temp_files_go_to_the_data_volume_not_the_small_tmp() -> None:
    """paddlex stages a weights download with tempfile: TMPDIR, on the claim (or, with
    deploy/k8s-s3, the pod's own scratch volume), not the 2 Gi /tmp emptyDir."""
    env = env_of("ocrq-worker")
    by_path = {m["mountPath"]: m for m in container("ocrq-worker")["volumeMounts"]}
    volumes = {v["name"]: v for v in pod("ocrq-worker")["volumes"]}
    mount = by_path[env["TMPDIR"]]
    assert mount["name"] == "data" and mount["subPath"] == "tmp"
    assert "persistentVolumeClaim" in volumes["data"]
    assert env["TMPDIR"] not in (env["TEMP_DIR"], env["OUTPUT_DIR"])
    assert volumes[by_path["/tmp"]["name"]]["emptyDir"]["sizeLimit"] == "2Gi"
