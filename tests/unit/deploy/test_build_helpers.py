"""deploy/requirements.py (the images' dependency layer) and deploy/bake_paddleocr_vl.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


requirements = load("requirements")
bake = load("bake_paddleocr_vl")


def names(extras: list[str]) -> set[str]:
    found = requirements.requirements_for(ROOT / "pyproject.toml", extras)
    return {r.split("[")[0].split(">")[0].split("=")[0].split(";")[0].strip() for r in found}


SERVER = {"fastapi", "uvicorn", "celery", "redis", "pypdfium2", "prometheus-client"}


def test_api_image_gets_the_api_extra_without_engines_or_the_client() -> None:
    api = names(["api"])
    assert api >= SERVER
    assert not api & {"rapidocr", "onnxruntime", "paddleocr", "pillow", "numpy", "torch"}
    assert not api & {"httpx", "rich"}


def test_the_client_extra_brings_none_of_the_server() -> None:
    """`pip install 'ocrq[client]'`: the `ocrq` command without celery, fastapi or Redis."""
    assert {"httpx", "rich"} <= names(["client"])
    assert not names(["client"]) & SERVER
    assert not names([]) & SERVER  # base dependencies install with every extra


def test_cpu_worker_gets_rapidocr_and_gpu_worker_gets_paddleocr_without_torch() -> None:
    assert {"rapidocr", "onnxruntime", "fastapi"} <= names(["worker"])
    gpu = names(["gpu"])
    assert "paddleocr" in gpu and not gpu & {"onnxruntime", "torch", "paddlepaddle-gpu"}


def test_self_references_expand_once() -> None:
    dev = requirements.requirements_for(ROOT / "pyproject.toml", ["dev"])
    assert not any(r.startswith("ocrq") for r in dev)
    assert len(dev) == len(set(dev)) and "rapidocr>=3.4" in dev


def test_cli_prints_one_requirement_a_line_and_refuses_unknown_extras() -> None:
    script = str(ROOT / "deploy" / "requirements.py")
    out = subprocess.run(
        [sys.executable, script, "worker"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "fastapi>=0.115" in out and "rapidocr>=3.4" in out
    bad = subprocess.run([sys.executable, script, "nope"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown extra 'nope'" in bad.stderr


@pytest.mark.parametrize(
    ("version", "layout_only", "folders", "missing"),
    [
        ("v1.6", False, ["PP-DocLayoutV3", "PaddleOCR-VL-1.6"], []),
        ("v1", False, ["PP-DocLayoutV2", "PaddleOCR-VL"], []),
        # the pinned version's models, not another version's
        (
            "v1.6",
            False,
            ["PP-DocLayoutV2", "PaddleOCR-VL-1.5"],
            ["PP-DocLayoutV3", "PaddleOCR-VL-1.6"],
        ),
        ("v1.6", False, ["PP-DocLayoutV3"], ["PaddleOCR-VL-1.6"]),
        ("v1.6", True, ["PP-DocLayoutV3_safetensors"], []),
        ("v1.5", True, [], ["PP-DocLayoutV3"]),
    ],
)
def test_bake_checks_the_pinned_versions_models_landed(
    tmp_path: Path, version: str, layout_only: bool, folders: list[str], missing: list[str]
) -> None:
    for folder in folders:
        (tmp_path / folder).mkdir()
    wanted = bake.required_models(version, layout_only=layout_only)
    assert bake.missing_models(tmp_path, wanted) == missing
    assert bake.missing_models(tmp_path / "absent", wanted) == wanted


def test_bake_refuses_an_unknown_pipeline_version() -> None:
    with pytest.raises(SystemExit, match="v9"):
        bake.required_models("v9")
