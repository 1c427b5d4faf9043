"""worker/engines/paddleocr_vl_weights.py: does this start have to download weights, and does it
say so in one line? Against a model cache made in a temp folder (no network, no paddle)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

from worker.engines import paddleocr_vl
from worker.engines.paddleocr_vl_weights import (
    LAYOUT_MODELS,
    VL_MODELS,
    announce_download,
    cache_home,
    missing_models,
    required_models,
)

ROOT = Path(__file__).resolve().parents[2]
LOGGER = "worker.engines.paddleocr_vl_weights"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "paddlex"
    monkeypatch.setenv("PADDLE_PDX_CACHE_HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "data" / "tmp"))
    return home / "official_models"


def _bake(models_dir: Path, *names: str) -> None:
    for name in names:
        (models_dir / name).mkdir(parents=True)
        (models_dir / name / "inference.yml").write_text("x")


def test_cache_home_is_paddlexs() -> None:
    assert cache_home({"PADDLE_PDX_CACHE_HOME": "/opt/paddlex"}) == Path("/opt/paddlex")
    assert cache_home({}) == Path.home() / ".paddlex"


def test_a_native_pipeline_needs_both_models_a_server_one_the_layout_model_only() -> None:
    assert required_models("v1.6", layout=True, native=True) == [
        "PP-DocLayoutV3",
        "PaddleOCR-VL-1.6",
    ]
    assert required_models("v1", layout=True, native=True) == ["PP-DocLayoutV2", "PaddleOCR-VL"]
    assert required_models("v1.5", layout=True, native=False) == ["PP-DocLayoutV3"]
    assert required_models("v1.6", layout=False, native=False) == []
    # an unknown version is PaddleOCRVL's to refuse (config_error), not a download to announce
    assert required_models("v9", layout=True, native=True) == []


def test_a_model_counts_only_under_its_own_folder_name(tmp_path: Path) -> None:
    names = ["PP-DocLayoutV3", "PaddleOCR-VL-1.6"]
    assert missing_models(tmp_path / "absent", names) == names
    _bake(tmp_path, "PaddleOCR-VL-1.5", "PP-DocLayoutV2")  # other versions' models
    (tmp_path / "PaddleOCR-VL-1.6").write_text("a file, not a model folder")
    assert missing_models(tmp_path, names) == names
    _bake(tmp_path, "PP-DocLayoutV3_safetensors")  # a format paddlex downloads with a suffix
    assert missing_models(tmp_path, names) == ["PaddleOCR-VL-1.6"]


def test_a_start_that_must_download_says_so_in_one_line(
    cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stage = tmp_path / "data" / "tmp"
    with caplog.at_level(logging.INFO, logger=LOGGER):
        missing = announce_download("v1.6", layout=True, native=True)
    assert missing == ["PP-DocLayoutV3", "PaddleOCR-VL-1.6"]
    (line,) = [r for r in caplog.records if r.name == LOGGER]
    assert line.levelno == logging.WARNING
    message = line.getMessage()
    for part in ("PP-DocLayoutV3, PaddleOCR-VL-1.6", str(cache), str(stage), "BAKE_MODELS=1"):
        assert part in message, part
    assert "about 2 GB" in message
    # staged in the data volume's TMPDIR, made if missing (tempfile would fall back to /tmp)
    assert stage.is_dir()


def test_a_server_backend_with_the_layout_model_missing_names_only_that(
    cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert announce_download("v1.6", layout=True, native=False) == ["PP-DocLayoutV3"]
    (line,) = [r for r in caplog.records if r.name == LOGGER]
    assert "PP-DocLayoutV3" in line.getMessage() and "2 GB" not in line.getMessage()


def test_baked_weights_start_without_a_word(cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    _bake(cache, "PP-DocLayoutV3", "PaddleOCR-VL-1.6")
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert announce_download("v1.6", layout=True, native=True) == []
        assert announce_download("v1.6", layout=False, native=False) == []
    assert [r for r in caplog.records if r.name == LOGGER] == []


def test_the_tables_follow_the_engine_and_the_bake_script() -> None:
    # the VL model a server is asked for, minus the "-0.9B" paddlex drops from its folder name
    assert {
        version: name.removesuffix("-0.9B") for version, name in paddleocr_vl.VL_MODELS.items()
    } == VL_MODELS
    spec = importlib.util.spec_from_file_location("bake", ROOT / "deploy" / "bake_paddleocr_vl.py")
    assert spec is not None and spec.loader is not None
    bake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bake)
    assert (bake.LAYOUT_MODELS, bake.VL_MODELS) == (LAYOUT_MODELS, VL_MODELS)


@pytest.mark.integration  # looks paddlex up: the fast tier refuses OCR libraries
def test_the_tables_follow_paddlexs_pipeline_configs() -> None:
    """Where paddlex is installed (the paddle venv), its own pipeline files name the models."""
    spec = importlib.util.find_spec("paddlex")  # located, not imported
    if spec is None or spec.origin is None:
        pytest.skip("paddlex not installed here (scripts/ensure-paddle-venv.sh has it)")
    configs = Path(spec.origin).parent / "configs" / "pipelines"
    files = {"v1": "PaddleOCR-VL.yaml", "v1.5": "PaddleOCR-VL-1.5.yaml"}
    files["v1.6"] = "PaddleOCR-VL-1.6.yaml"
    for version, name in files.items():
        text = (configs / name).read_text()
        assert f"model_name: {LAYOUT_MODELS[version]}\n" in text
        assert f"model_name: {VL_MODELS[version]}-0.9B\n" in text
