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
from worker.boot import build_batcher
from worker.engines import build_engine
from worker.engines.base import EngineError
from worker.engines.paddleocr_vl import PaddleOcrVlEngine
from worker.engines.paddleocr_vl_results import block_type, tidy_formula

SERVER_URL = "http://127.0.0.1:8118/v1"


class FakeGenAIClient:
    """Where paddlex 3.7.2 keeps a server backend's VL client (the engine bounds its requests)."""

    def __init__(self) -> None:
        self.openai_client = types.SimpleNamespace(max_retries=2)

    def create_chat_completion(self, messages: Any, **kwargs: Any) -> Any:
        raise AssertionError("no VL request is sent here")


class FakePaddleOCRVL:
    """Counts constructions: the checks below must refuse before PaddleOCRVL is built."""

    instances: ClassVar[list[FakePaddleOCRVL]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        client = FakeGenAIClient()
        model = types.SimpleNamespace(genai_client=client)
        self.paddlex_pipeline = types.SimpleNamespace(
            _pipeline=types.SimpleNamespace(vl_rec_model=model)
        )
        FakePaddleOCRVL.instances.append(self)


def fake_paddle(*, cuda_build: bool = True, gpus: int = 1) -> types.ModuleType:
    paddle = types.ModuleType("paddle")
    paddle.__version__ = "3.3.1"
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


# --- batches that fit the backend -------------------------------------------------------------


def server(**overrides: Any) -> PaddleOcrVlEngine:
    values: dict[str, Any] = {
        "paddleocr_vl_backend": "vllm-server",
        "paddleocr_vl_server_url": SERVER_URL,
        "paddleocr_vl_device": "cpu",
    }
    return build(**(values | overrides))


def test_native_reads_small_batches_one_page_after_another(fakes):
    engine = build()

    assert (engine.max_batch, engine.pages_at_once, engine.max_in_flight) == (4, 1, 1)
    batcher = build_batcher(vl_settings(), engine)
    assert batcher is not None
    assert (batcher.max_batch, batcher.in_flight) == (4, 1)
    # PAGE_TIMEOUT_SECONDS (600) per page of a full batch: one after another
    assert batcher.budget(4) == 4 * 600
    assert "vl_rec_max_concurrency" not in fakes.instances[0].kwargs  # no requests to cap


def test_a_server_backend_reads_batches_of_64_pages(fakes):
    engine = server()

    assert (engine.max_batch, engine.max_in_flight) == (64, 4)
    batcher = build_batcher(vl_settings(), engine)
    assert batcher is not None
    assert (batcher.max_batch, batcher.in_flight) == (64, 4)


@pytest.mark.parametrize(
    ("backend", "batch_size", "pages"),
    [("native", 2, 2), ("native", 64, 4), ("vllm-server", 8, 8), ("vllm-server", 100, 64)],
)
def test_batch_size_lowers_the_backends_batch_never_raises_it(fakes, backend, batch_size, pages):
    engine = build() if backend == "native" else server()

    batcher = build_batcher(vl_settings(batch_size=batch_size), engine)

    assert batcher is not None and batcher.max_batch == pages


@pytest.mark.parametrize(
    ("total", "in_flight", "shares"),
    [
        (200, 4, [50, 50, 50, 50]),  # the defaults: 200 in flight in all, not 4 x 200
        (10, 4, [3, 3, 2, 2]),
        (2, 4, [1, 1]),  # fewer requests than pipelines: no pipeline that could send none
        (64, 1, [64]),
    ],
)
def test_the_requests_in_flight_are_split_over_the_pipelines(fakes, total, in_flight, shares):
    engine = server(paddleocr_vl_max_concurrency=total, batch_in_flight=in_flight)

    given = [p.kwargs["vl_rec_max_concurrency"] for p in fakes.instances]
    assert given == shares and sum(given) == total
    assert engine.max_in_flight == len(shares)  # one batch in flight per pipeline


def test_with_layout_off_a_server_call_is_budgeted_by_the_pages_it_sends_at_once(fakes):
    # one request per page: a pipeline has as many pages at once as it may send requests
    engine = server(paddleocr_vl_layout="off", paddleocr_vl_max_concurrency=100)
    batcher = build_batcher(vl_settings(), engine)

    assert engine.pages_at_once == 25
    assert batcher is not None and batcher.budget(64) == 3 * 600  # ceil(64 / 25) pages in turn
    # layout on: a page is as many requests as it has blocks, known only once the layout model
    # ran, so the call is budgeted page by page, as native
    assert server(paddleocr_vl_layout="on").pages_at_once == 1


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
    assert "paddlepaddle-gpu==3.3.1" in error.message
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
