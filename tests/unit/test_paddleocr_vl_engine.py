"""PaddleOcrVlEngine against a stand-in of the paddleocr/paddle boundary only.

paddle and paddleocr cannot run here (no GPU, no model hub), so `sys.modules` gets a fake
`paddleocr` (a `PaddleOCRVL` class) and a fake `paddle` (CUDA detection). Everything on our side
of that boundary is the real code.

The fake results copy the real shape, from paddleocr 3.7.0 / paddlex 3.7.2:
- `PaddleOCRVL.__init__` checks `pipeline_version in ["v1", "v1.5", "v1.6"]` and the backend
  list with ValueError (paddleocr/_pipelines/paddleocr_vl.py);
- `predict(input)` returns a list with one `PaddleOCRVLResult` per image, a dict subclass;
  `.json` is `{"res": {...}}` whose `parsing_res_list` holds dicts with block_label,
  block_content, block_bbox (ints), block_id, block_order, group_id; `.markdown` is a dict with
  markdown_texts, markdown_images, page_index, input_path
  (paddlex/inference/pipelines/paddleocr_vl/result.py, `_to_json` and `_to_markdown`).
`PARSING_RES_LIST` and `MARKDOWN_TEXTS` below were captured by building paddlex 3.7.2's own
PaddleOCRVLResult from PaddleOCRVLBlock objects and reading its `.json` and `.markdown`.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image

from shared.settings import Settings
from worker.engines import build_engine
from worker.engines.base import EngineError
from worker.engines.paddleocr_vl import PaddleOcrVlEngine, block_type

SERVER_URL = "http://127.0.0.1:8118/v1"

PARSING_RES_LIST: list[dict[str, Any]] = [
    {
        "block_label": "doc_title",
        "block_content": "Quarterly Report",
        "block_bbox": [131, 36, 1384, 127],
        "block_id": 0,
        "block_order": 1,
        "group_id": 0,
    },
    {
        "block_label": "text",
        "block_content": "Revenue grew by 12%\nin the third quarter.",
        "block_bbox": [9, 200, 361, 343],
        "block_id": 1,
        "block_order": 2,
        "group_id": 1,
    },
    {
        "block_label": "table",
        "block_content": "<table><tr><td>Q3</td><td>12%</td></tr></table>",
        "block_bbox": [10, 400, 700, 600],
        "block_id": 2,
        "block_order": None,
        "group_id": 2,
    },
    {
        "block_label": "display_formula",
        "block_content": "$$E = mc^2$$",
        "block_bbox": [10, 620, 400, 660],
        "block_id": 3,
        "block_order": 3,
        "group_id": 3,
    },
    {
        "block_label": "image",
        "block_content": "",
        "block_bbox": [775, 200, 1503, 684],
        "block_id": 4,
        "block_order": None,
        "group_id": 4,
    },
    {
        "block_label": "footer",
        "block_content": "Page 1",
        "block_bbox": [10, 1900, 300, 1950],
        "block_id": 5,
        "block_order": None,
        "group_id": 5,
    },
]
# The footer is in markdown_ignore_labels of the default config, so it is not in the markdown.
MARKDOWN_TEXTS = (
    "# Quarterly Report\n\nRevenue grew by 12%\n\nin the third quarter.\n\n\n"
    "<table border=1 style='margin: auto; word-wrap: break-word;'><tr><td style='text-align: "
    "center; word-wrap: break-word;'>Q3</td><td style='text-align: center; word-wrap: "
    'break-word;\'>12%</td></tr></table>\n\n$$E = mc^2$$\n\n<div style="text-align: center;">'
    "</div>\n"
)
MODEL_SETTINGS = {
    "use_doc_preprocessor": False,
    "use_layout_detection": True,
    "use_chart_recognition": False,
    "use_seal_recognition": False,
    "use_ocr_for_image_block": False,
    "format_block_content": False,
    "merge_layout_blocks": True,
    "markdown_ignore_labels": ["number", "footnote", "header", "header_image", "footer"],
    "return_layout_polygon_points": True,
}


class FakeResult(dict):
    """Shaped like paddlex's PaddleOCRVLResult: the page dict plus `.json` and `.markdown`."""

    def __init__(self, width: int, height: int, blocks: list[dict[str, Any]], markdown: str):
        super().__init__(
            input_path=None,
            page_index=None,
            page_count=None,
            width=width,
            height=height,
            model_settings=MODEL_SETTINGS,
            parsing_res_list=blocks,
            layout_det_res={"input_path": None, "page_index": None, "boxes": []},
        )
        self._markdown = markdown

    @property
    def json(self) -> dict[str, Any]:
        return {"res": {key: self[key] for key in self}}

    @property
    def markdown(self) -> dict[str, Any]:
        return {
            "markdown_texts": self._markdown,
            "markdown_images": {},
            "page_index": None,
            "input_path": None,
        }


class FakePaddleOCRVL:
    """Records what the engine asks of paddleocr; answers with `FakePaddleOCRVL.reply`."""

    instances: ClassVar[list[FakePaddleOCRVL]] = []
    reply: ClassVar[tuple[list[dict[str, Any]], str]] = (PARSING_RES_LIST, MARKDOWN_TEXTS)
    init_error: ClassVar[Exception | None] = None
    predict_error: ClassVar[Exception | None] = None

    def __init__(self, pipeline_version: str = "v1.6", vl_rec_backend: str | None = None, **kw):
        # Same checks, same exception type, as paddleocr 3.7.0's PaddleOCRVL.__init__.
        if pipeline_version not in ["v1", "v1.5", "v1.6"]:
            raise ValueError(f"Invalid pipeline version: {pipeline_version}.")
        backends = ["native", "vllm-server", "sglang-server", "fastdeploy-server"]
        if vl_rec_backend is not None and vl_rec_backend not in backends:
            raise ValueError(f"Invalid backend for the VL recognition module: {vl_rec_backend}.")
        if self.init_error is not None:
            raise self.init_error
        self.kwargs = {"pipeline_version": pipeline_version, "vl_rec_backend": vl_rec_backend, **kw}
        self.inputs: list[Any] = []
        FakePaddleOCRVL.instances.append(self)

    def predict(self, input: Any, **kwargs: Any) -> list[FakeResult]:  # noqa: A002 (real name)
        self.inputs.append(input)
        if self.predict_error is not None:
            raise self.predict_error
        blocks, markdown = self.reply
        return [FakeResult(input.shape[1], input.shape[0], blocks, markdown)]


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
    monkeypatch.setattr(FakePaddleOCRVL, "init_error", None)
    monkeypatch.setattr(FakePaddleOCRVL, "predict_error", None)
    monkeypatch.setattr(FakePaddleOCRVL, "reply", (PARSING_RES_LIST, MARKDOWN_TEXTS))
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


def test_pipeline_version_setting_is_passed_through(fakes):
    build(paddleocr_vl_pipeline_version="v1.5")

    assert fakes.instances[0].kwargs["pipeline_version"] == "v1.5"


def test_vllm_server_backend_needs_no_local_gpu_when_layout_runs_on_cpu(fakes, monkeypatch):
    monkeypatch.setitem(sys.modules, "paddle", fake_paddle(cuda_build=False, gpus=0))

    engine = build(
        paddleocr_vl_backend="vllm-server",
        paddleocr_vl_server_url=SERVER_URL,
        paddleocr_vl_device="cpu",
    )

    [pipeline] = fakes.instances
    assert pipeline.kwargs["vl_rec_backend"] == "vllm-server"
    assert pipeline.kwargs["vl_rec_server_url"] == SERVER_URL
    assert pipeline.kwargs["device"] == "cpu"
    assert pipeline.kwargs["pipeline_version"] == "v1.6"
    assert engine.info().device == f"server:{SERVER_URL}"


def test_native_backend_does_not_send_a_server_url(fakes):
    build(paddleocr_vl_server_url=SERVER_URL)

    assert "vl_rec_server_url" not in fakes.instances[0].kwargs


# --- what is missing, said clearly ------------------------------------------------------------


def test_cpu_only_paddle_build_is_gpu_unavailable(fakes, monkeypatch):
    monkeypatch.setitem(sys.modules, "paddle", fake_paddle(cuda_build=False, gpus=0))

    error = error_of()

    assert error.code == "gpu_unavailable"
    assert "CPU-only build" in error.message
    assert "paddlepaddle-gpu" in error.message
    assert fakes.instances == []


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


def test_pipeline_version_refused_by_paddleocr_is_config_error(fakes):
    error = error_of(paddleocr_vl_pipeline_version="v9")

    assert error.code == "config_error"
    assert "Invalid pipeline version: v9" in error.message


def test_pipeline_build_failure_is_engine_init_failed(fakes, monkeypatch):
    monkeypatch.setattr(
        FakePaddleOCRVL,
        "init_error",
        RuntimeError("Failed to get the model list from the OpenAI-compatible server"),
    )

    error = error_of(paddleocr_vl_backend="vllm-server", paddleocr_vl_server_url=SERVER_URL)

    assert error.code == "engine_init_failed"
    assert "model list" in error.message


# --- recognition ------------------------------------------------------------------------------


def test_recognize_maps_blocks_labels_bboxes_and_markdown(fakes):
    engine = build()

    recognition = engine.recognize(Image.new("RGB", (1600, 2000), "white"))

    assert [(b.type, b.text, b.bbox, b.score) for b in recognition.blocks] == [
        ("title", "Quarterly Report", [131.0, 36.0, 1384.0, 127.0], None),
        ("text", "Revenue grew by 12%\nin the third quarter.", [9.0, 200.0, 361.0, 343.0], None),
        (
            "table",
            "<table><tr><td>Q3</td><td>12%</td></tr></table>",
            [10.0, 400.0, 700.0, 600.0],
            None,
        ),
        ("formula", "$$E = mc^2$$", [10.0, 620.0, 400.0, 660.0], None),
        ("figure", "", [775.0, 200.0, 1503.0, 684.0], None),
        ("footer", "Page 1", [10.0, 1900.0, 300.0, 1950.0], None),
    ]
    assert all(isinstance(v, float) for b in recognition.blocks for v in b.bbox)
    assert recognition.markdown == MARKDOWN_TEXTS


def test_recognize_sends_a_bgr_array_of_the_page(fakes):
    engine = build()
    image = Image.new("RGB", (40, 30), (255, 0, 0))  # pure red
    image.putpixel((5, 7), (0, 0, 255))  # one blue pixel at x=5, y=7

    engine.recognize(image)

    [sent] = fakes.instances[0].inputs
    assert sent.shape == (30, 40, 3)
    assert str(sent.dtype) == "uint8"
    assert sent.flags["C_CONTIGUOUS"]
    assert sent[0, 0].tolist() == [0, 0, 255]  # red, in BGR order
    assert sent[7, 5].tolist() == [255, 0, 0]  # blue, in BGR order


def test_recognize_converts_non_rgb_images(fakes):
    engine = build()

    engine.recognize(Image.new("L", (20, 10), 255))

    assert fakes.instances[0].inputs[0].shape == (10, 20, 3)


def test_unknown_labels_pass_through_and_known_ones_fold():
    assert block_type("paragraph_title") == "title"
    assert block_type("inline_formula") == "formula"
    assert block_type("chart") == "figure"
    assert block_type("number") == "page_number"
    assert block_type("Table") == "table"
    assert block_type("some_future_label") == "some_future_label"


def test_prediction_failure_is_recognition_failed(fakes, monkeypatch):
    engine = build()
    monkeypatch.setattr(FakePaddleOCRVL, "predict_error", RuntimeError("Connection error."))

    with pytest.raises(EngineError) as caught:
        engine.recognize(Image.new("RGB", (10, 10), "white"))

    assert caught.value.code == "recognition_failed"
    assert "Connection error." in caught.value.message


# --- warm-up ----------------------------------------------------------------------------------


def test_warm_runs_one_real_prediction_on_a_rendered_page(fakes):
    engine = build()

    engine.warm()

    [sent] = fakes.instances[0].inputs
    assert sent.shape == (320, 800, 3)
    # Text was drawn: the page is not blank white.
    assert sent.min() < 128


def test_warm_fails_when_nothing_is_read(fakes, monkeypatch):
    engine = build()
    monkeypatch.setattr(FakePaddleOCRVL, "reply", ([], ""))

    with pytest.raises(EngineError) as caught:
        engine.warm()

    assert caught.value.code == "warmup_failed"


def test_warm_fails_when_the_prediction_fails(fakes, monkeypatch):
    engine = build(paddleocr_vl_backend="vllm-server", paddleocr_vl_server_url=SERVER_URL)
    monkeypatch.setattr(FakePaddleOCRVL, "predict_error", RuntimeError("Connection error."))

    with pytest.raises(EngineError) as caught:
        engine.warm()

    assert caught.value.code == "warmup_failed"
    assert "Connection error." in caught.value.message


# --- import cost ------------------------------------------------------------------------------


def test_module_import_loads_neither_paddle_nor_paddleocr():
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys, worker.engines.paddleocr_vl\n"
        "heavy = {'paddle', 'paddleocr', 'paddlex', 'numpy', 'PIL'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
