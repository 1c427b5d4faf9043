"""PaddleOcrVlEngine where the real library cannot show it: a CUDA machine, missing packages.

The real paddleocr/paddlex run in tests/paddle (.venv-paddle, CPU paddlepaddle, a stand-in VL
server). What stays here needs what this machine does not have: a CUDA build of paddle with
zero, one or two GPUs (a fake `paddle`), or paddleocr/paddle missing while the other is there.
The fake `paddleocr.PaddleOCRVL` only records that it was never built: every check here must
fail before the pipeline is built.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

from shared.settings import Settings
from worker.engines import build_engine
from worker.engines.base import EngineError
from worker.engines.paddleocr_vl import PaddleOcrVlEngine
from worker.engines.paddleocr_vl_results import block_type, tidy_formula

SERVER_URL = "http://127.0.0.1:8118/v1"


class FakePaddleOCRVL:
    """Counts constructions: the checks below must refuse before PaddleOCRVL is built."""

    instances: ClassVar[list[FakePaddleOCRVL]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        FakePaddleOCRVL.instances.append(self)


def fake_paddle(*, cuda_build: bool = True, gpus: int = 1) -> types.ModuleType:
    paddle = types.ModuleType("paddle")
    paddle.__version__ = "3.2.1"
    paddle.device = types.SimpleNamespace(
        is_compiled_with_cuda=lambda: cuda_build,
        cuda=types.SimpleNamespace(device_count=lambda: gpus),
    )
    return paddle


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> type[FakePaddleOCRVL]:
    """A GPU machine with paddleocr installed, as far as the engine can tell."""
    monkeypatch.setattr(FakePaddleOCRVL, "instances", [])
    paddleocr = types.ModuleType("paddleocr")
    paddleocr.PaddleOCRVL = FakePaddleOCRVL
    monkeypatch.setitem(sys.modules, "paddleocr", paddleocr)
    monkeypatch.setitem(sys.modules, "paddle", fake_paddle())
    return FakePaddleOCRVL


def vl_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"ocr_engine": "paddleocr-vl"}
    values.update(overrides)
    return Settings(**values)


def build(**overrides: Any) -> PaddleOcrVlEngine:
    return PaddleOcrVlEngine(vl_settings(**overrides))


def error_of(**overrides: Any) -> EngineError:
    with pytest.raises(EngineError) as caught:
        build(**overrides)
    return caught.value


# --- construction -------------------------------------------------------------------------


def test_native_backend_passes_explicit_kwargs_and_reports_the_gpu(fakes):
    engine = build_engine(vl_settings(paddleocr_vl_backend="native", paddleocr_vl_device="gpu:0"))

    assert isinstance(engine, PaddleOcrVlEngine)
    [pipeline] = fakes.instances
    assert pipeline.kwargs == {
        "pipeline_version": "v1.6",
        "vl_rec_backend": "native",
        "device": "gpu:0",
        "use_layout_detection": True,
        "use_doc_orientation_classify": False,
        "use_doc_unwarping": False,
    }
    info = engine.info()
    assert info.name == "paddleocr-vl"
    assert info.device == "gpu:0"
    assert all(isinstance(v, str) for v in info.versions.values())


def test_native_backend_sends_no_server_settings_and_has_no_server_to_check(fakes):
    engine = build(
        paddleocr_vl_server_url=SERVER_URL,
        paddleocr_vl_model="PaddleOCR-VL-1.6-0.9B",
        paddleocr_vl_api_key="s3cret",
    )

    kwargs = fakes.instances[0].kwargs
    assert not {"vl_rec_server_url", "vl_rec_api_model_name", "vl_rec_api_key"} & set(kwargs)
    engine.check_available()  # the VL model is in this process: nothing to ask


# --- what is missing, said clearly ------------------------------------------------------------


def test_no_visible_gpu_is_gpu_unavailable(fakes, monkeypatch):
    monkeypatch.setitem(sys.modules, "paddle", fake_paddle(cuda_build=True, gpus=0))

    error = error_of()

    assert error.code == "gpu_unavailable"
    assert "sees no GPU" in error.message
    assert "CUDA_VISIBLE_DEVICES" in error.message
    assert fakes.instances == []


def test_gpu_index_beyond_the_visible_devices_is_gpu_unavailable(fakes):
    error = error_of(paddleocr_vl_device="gpu:2")

    assert error.code == "gpu_unavailable"
    assert "only 1 GPU(s) visible" in error.message
    assert fakes.instances == []


def test_server_backend_with_layout_on_a_missing_gpu_is_gpu_unavailable(fakes, monkeypatch):
    monkeypatch.setitem(sys.modules, "paddle", fake_paddle(cuda_build=True, gpus=0))

    error = error_of(paddleocr_vl_backend="vllm-server", paddleocr_vl_server_url=SERVER_URL)

    assert error.code == "gpu_unavailable"
    assert fakes.instances == []


def test_paddleocr_not_importable_is_engine_not_installed(fakes, monkeypatch):
    monkeypatch.setitem(sys.modules, "paddleocr", None)  # makes `import paddleocr` fail

    error = error_of()

    assert error.code == "engine_not_installed"
    assert 'pip install "paddleocr[doc-parser]"' in error.message


def test_paddle_not_importable_is_engine_not_installed(fakes, monkeypatch):
    monkeypatch.setitem(sys.modules, "paddle", None)

    error = error_of()

    assert error.code == "engine_not_installed"
    assert "paddlepaddle-gpu==3.2.1" in error.message
    assert "https://www.paddlepaddle.org.cn/packages/stable/cu126/" in error.message


@pytest.mark.parametrize("url", [None, "", "   "])
def test_server_backend_without_url_is_config_error(fakes, url):
    error = error_of(paddleocr_vl_backend="vllm-server", paddleocr_vl_server_url=url)

    assert error.code == "config_error"
    assert "PADDLEOCR_VL_SERVER_URL" in error.message
    assert fakes.instances == []


def test_native_backend_on_cpu_is_config_error(fakes):
    error = error_of(paddleocr_vl_device="cpu")

    assert error.code == "config_error"
    assert "native" in error.message


# --- pure mapping ----------------------------------------------------------------------------


def test_unknown_labels_pass_through_and_known_ones_fold():
    assert block_type("paragraph_title") == "title"
    assert block_type("inline_formula") == "formula"
    assert block_type("chart") == "figure"
    assert block_type("number") == "page_number"
    assert block_type("Table") == "table"
    assert block_type("some_future_label") == "some_future_label"


@pytest.mark.parametrize(
    ("raw", "tidy"),
    [
        (" $$ E = mc^2 $$ ", "$$E = mc^2$$"),
        ("$$\\frac{a}{b}$$", "$$\\frac{a}{b}$$"),
        (" $ x_1 $ ", "$x_1$"),
        ("  $$\n a \\\\ b \n$$  ", "$$a \\\\ b$$"),
        ("no math here", "no math here"),
    ],
)
def test_formula_padding_is_tidied(raw, tidy):
    assert tidy_formula(raw) == tidy


# --- import cost ------------------------------------------------------------------------------


def test_module_import_loads_neither_paddle_nor_paddleocr():
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys, worker.engines.paddleocr_vl\n"
        "heavy = {'paddle', 'paddleocr', 'paddlex', 'numpy', 'PIL'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
