"""docker-compose.yml, read without Docker: schema, shared folders, probes, GPU, profiles."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.dockerfile import Dockerfile

ROOT = Path(__file__).resolve().parents[3]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
WORKERS = ["worker", "worker-cpu", "worker-vllm"]


def mounts(service: str) -> dict[str, str]:
    """container path -> named volume"""
    found = {}
    for entry in SERVICES[service].get("volumes", []):
        source, target = entry.split(":")[:2]
        found[target] = source
    return found


def test_matches_the_compose_specification() -> None:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema not installed (dev extra)")
    schema = ["--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema, "docker-compose.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("worker", WORKERS)
def test_api_and_worker_share_the_same_volumes_for_uploads_and_results(worker: str) -> None:
    api, other = mounts("api"), mounts(worker)
    for folder in ("/app/temp", "/app/output"):
        assert api[folder] == other[folder], folder
        assert api[folder] in COMPOSE["volumes"], "a named volume, not a bind mount"
    assert api["/app/temp"] != api["/app/output"]
    for service in ("api", worker):
        env = SERVICES[service]["environment"]
        assert (env["TEMP_DIR"], env["OUTPUT_DIR"]) == ("/app/temp", "/app/output")


def test_redis_persists_with_aof_on_a_volume() -> None:
    redis = SERVICES["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    assert "--dir" not in command, "the AOF goes to the image's workdir, /data"
    assert mounts("redis")["/data"] in COMPOSE["volumes"], "a named volume, not the container"
    assert "redis-cli" in redis["healthcheck"]["test"]
    for service in ("api", *WORKERS):
        assert SERVICES[service]["environment"]["REDIS_URL"].startswith("redis://redis:6379/")


@pytest.mark.parametrize("service", ["api", *WORKERS, "flower"])
def test_starts_after_redis_is_healthy(service: str) -> None:
    assert SERVICES[service]["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["redis", "api", *WORKERS, "flower"])
def test_restarts_by_itself(service: str) -> None:
    assert SERVICES[service]["restart"] in {"always", "unless-stopped", "on-failure"}


def test_api_publishes_8081_and_checks_health() -> None:
    api = SERVICES["api"]
    assert any(str(p).endswith(":8081") for p in api["ports"])
    test = " ".join(api["healthcheck"]["test"])
    assert "http://127.0.0.1:8081/health" in test
    assert api["build"]["dockerfile"] == "Dockerfile.api"


@pytest.mark.parametrize("worker", WORKERS)
def test_worker_health_is_the_heartbeat_probe(worker: str) -> None:
    check = SERVICES[worker]["healthcheck"]
    assert check["test"][-3:] == ["python", "-m", "worker.probe"]
    assert check["start_period"], "warm-up time must not count as failures"


GPU_SERVICES = ["worker", "worker-vllm", "vl-server"]


def gpu_device(service: str) -> dict[str, Any]:
    (device,) = SERVICES[service]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    return device


@pytest.mark.parametrize("service", GPU_SERVICES)
def test_each_gpu_service_names_its_gpu(service: str) -> None:
    """`count: 1` reserves "a" GPU, which is GPU 0 for every service: one worker per GPU."""
    device = gpu_device(service)
    assert "count" not in device
    (device_id,) = device["device_ids"]
    assert device_id.startswith("${") and device_id.endswith(":-0}"), "a variable, 0 by default"


def test_gpu_worker_reserves_a_gpu_and_runs_paddleocr_vl_with_baked_weights() -> None:
    gpu = SERVICES["worker"]
    gpu_device("worker")
    assert gpu["environment"]["OCR_ENGINE"] == "paddleocr-vl"
    assert gpu["build"]["target"] == "gpu"
    assert gpu["build"]["args"]["BAKE_MODELS"] == "${BAKE_MODELS:-1}"
    # no volume over the image's weights: it would keep the first build's weights forever
    for worker in ("worker", "worker-vllm"):
        assert "/opt/paddlex" not in mounts(worker), worker


def test_cpu_profile_runs_rapidocr_without_a_gpu() -> None:
    cpu = SERVICES["worker-cpu"]
    assert cpu["profiles"] == ["cpu"]
    assert "deploy" not in cpu
    assert cpu["build"]["target"] == "cpu"
    assert cpu["environment"]["OCR_ENGINE"].endswith(":-rapidocr}")


def test_vllm_profile_runs_the_official_vl_server_and_a_worker_on_it() -> None:
    server, worker = SERVICES["vl-server"], SERVICES["worker-vllm"]
    image, tag = server["image"].split(":", 1)
    assert image == "ccr-2vdh3abv-pub.cnc.bj.baidubce.com/paddlepaddle/paddleocr-genai-vllm-server"
    # a pinned release with the weights inside, not a `latest-*` tag that moves
    default = tag.removeprefix("${VL_SERVER_TAG:-").removesuffix("}")
    assert re.fullmatch(r"paddleocr\d+\.\d+-nvidia-gpu-offline", default), tag
    # the same image Dockerfile.vl-server-aio is built from
    aio = Dockerfile.read(ROOT / "Dockerfile.vl-server-aio")
    assert aio.global_args["VL_SERVER_IMAGE"] == f"{image}:{default}"
    # the weights volume where the official image keeps them (its HOME is /home/paddleocr)
    assert mounts("vl-server") == {"/home/paddleocr/.paddlex": "vl-models"}
    command = server["command"]
    assert command[:2] == ["paddleocr", "genai_server"]
    port = command[command.index("--port") + 1]
    env = worker["environment"]
    assert env["PADDLEOCR_VL_BACKEND"] == "vllm-server"
    assert env["PADDLEOCR_VL_SERVER_URL"] == f"http://vl-server:{port}/v1"
    # the worker asks for the model the server serves
    assert env["PADDLEOCR_VL_MODEL"] == command[command.index("--model_name") + 1]
    assert f":{port}/health" in " ".join(server["healthcheck"]["test"])
    assert worker["depends_on"]["vl-server"]["condition"] == "service_healthy"
    # the worker's layout model and vLLM share the server's GPU, as in PaddleOCR's compose
    assert gpu_device("worker-vllm")["device_ids"] == gpu_device("vl-server")["device_ids"]


def test_each_worker_flavour_and_flower_start_only_when_asked() -> None:
    """A GPU reservation fails `up` on a machine without the NVIDIA runtime."""
    assert SERVICES["worker"]["profiles"] == ["gpu"]
    assert SERVICES["worker-vllm"]["profiles"] == SERVICES["vl-server"]["profiles"] == ["gpu-vllm"]
    assert SERVICES["flower"]["profiles"] == ["flower"]
    assert "profiles" not in SERVICES["api"] and "profiles" not in SERVICES["redis"]


def test_build_targets_exist_in_the_worker_dockerfile() -> None:
    stages = Dockerfile.read(ROOT / "Dockerfile.worker").stage_names()
    for worker in WORKERS:
        assert SERVICES[worker]["build"]["target"] in stages


def test_every_declared_volume_is_used() -> None:
    used = {source for service in SERVICES for source in mounts(service).values()}
    assert set(COMPOSE["volumes"]) == used
