"""What each process imports at run time and how it refuses to start (the rules on what the
source may import: tests/unit/test_layout_rules.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import UNIT_REDIS_URL

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
