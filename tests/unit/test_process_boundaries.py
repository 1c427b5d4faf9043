"""What each process imports at run time and how it refuses to start (the rules on what the
source may import: tests/unit/test_layout_rules.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import UNIT_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["paddle", "paddleocr", "onnxruntime", "rapidocr", "cv2", "numpy", "PIL"]


@pytest.mark.integration  # the upload goes through to the test Redis
def test_api_process_never_imports_an_ocr_engine(tmp_path: Path) -> None:
    code = f"""
import sys
from fastapi.testclient import TestClient
from api.app import create_app
from shared.settings import Settings
app = create_app(Settings(temp_dir={str(tmp_path)!r}, output_dir={str(tmp_path)!r},
                          redis_url={UNIT_REDIS_URL!r}))
with TestClient(app) as client:
    assert client.get("/health").status_code == 200
    client.post("/jobs", files={{"file": ("a.png", b"\\x89PNG\\r\\n\\x1a\\n" + bytes(64))}})
print(",".join(m for m in {HEAVY!r} if m in sys.modules))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_worker_exits_with_clear_message_when_dirs_are_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    env = {**os.environ, "TEMP_DIR": str(blocker / "temp"), "OUTPUT_DIR": str(tmp_path / "o")}
    result = subprocess.run(
        [sys.executable, "-m", "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "cannot start" in result.stderr and "TEMP_DIR=" in result.stderr


def test_celery_tools_find_the_module_level_app_without_redis_or_an_engine() -> None:
    """`celery -A worker flower` finds worker.app; building it reads the environment once, opens
    no connection (REDIS_URL points at a closed port) and loads no OCR library; importing
    `worker` alone builds nothing, and the service's own modules never import it."""
    code = f"""
import sys
import worker
assert "worker.celery_app" not in sys.modules
from celery.app.utils import find_app
app = find_app("worker")
assert app is worker.app and app.main == "ocrq", app
assert app.conf.broker_url == "redis://127.0.0.1:9/0" and app.conf.task_acks_late
assert app.conf.task_acks_on_failure_or_timeout and app.conf.task_reject_on_worker_lost
print(",".join(m for m in {HEAVY!r} if m in sys.modules))
"""
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:9/0"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    service = [p for top in ("api", "worker", "shared") for p in (ROOT / top).rglob("*.py")]
    importers = [p for p in service if "celery_app" in p.read_text() and p.stem != "celery_app"]
    assert [str(p.relative_to(ROOT)) for p in importers] == ["worker/__init__.py"]
