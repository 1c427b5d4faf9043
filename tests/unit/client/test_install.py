"""`pip install '.[client]'` in a fresh venv: the `ocrq` command and the Python client work, and
none of the server's libraries (celery, fastapi, Redis, ...) came with them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # a venv and a pip install: tens of seconds

ROOT = Path(__file__).resolve().parents[3]
SERVER_LIBRARIES = ["celery", "kombu", "fastapi", "starlette", "uvicorn", "redis", "pypdfium2",
                    "prometheus_client", "multipart", "rapidocr", "onnxruntime", "PIL"]  # fmt: skip
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# Run by the new venv's Python: which of argv it finds, and what importing the client loads.
FIND_MODULES = (
    "import importlib.util, json, sys; "
    "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m)]))"
)
IMPORT_CLIENT = (
    "import sys; from ocrq_client import AsyncOcrqClient, OcrqClient; import ocrq_client.cli; "
    "ours = sorted(m for m in ('api', 'worker', 'shared') if m in sys.modules); "
    "print(OcrqClient.__module__, ours)"
)


def _checkout_copy(target: Path) -> Path:
    """What a build reads, copied: pip builds in the source tree and would leave build/ there."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / package, target / package, ignore=skip)
    return target


def test_the_client_extra_installs_the_command_without_the_server(tmp_path: Path) -> None:
    source = _checkout_copy(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, ocrq = str(venv / "bin" / "python"), str(venv / "bin" / "ocrq")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        # Outside the checkout, so nothing is importable from it but what was installed.
        return subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )

    install = run(python, "-m", "pip", "install", "-q", f"{source}[client]")
    assert install.returncode == 0, install.stdout + install.stderr

    found = run(python, "-c", FIND_MODULES, *SERVER_LIBRARIES)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == []

    help_ = run(ocrq, "--help")
    assert help_.returncode == 0, help_.stderr
    assert "submit" in help_.stdout and "Exit codes" in help_.stdout

    version = PYPROJECT["project"]["version"]
    as_module = run(python, "-m", "ocrq_client", "--version")
    assert (as_module.returncode, as_module.stdout.strip()) == (0, f"ocrq {version}")

    imported = run(python, "-c", IMPORT_CLIENT)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.split() == ["ocrq_client.client", "[]"]
