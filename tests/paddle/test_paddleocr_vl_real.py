"""PaddleOcrVlEngine on the real paddleocr 3.7.0 / paddlex 3.7.2 (CPU paddlepaddle 3.3.1).

The VL server is testkit's stand-in (it is the GPU); layout-on tests give the real pipeline a
stand-in layout predictor (testkit.paddle_layout). Everything else is the library's own code:
the requests the server gets, the result objects, the markdown.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from PIL import Image

pytest.importorskip(
    "paddleocr", reason="real-library tests: run in .venv-paddle (make test-paddle)"
)

from shared.settings import Settings
from testkit.paddle_layout import StandInLayout, box, install_layout
from testkit.vl_server import VlServer, page_text
from worker.engines.base import EngineError, EngineUnavailable, Recognition
from worker.engines.paddleocr_vl import PaddleOcrVlEngine
from worker.page_reading import recognized_result
from worker.pages import Page

MODEL = "PaddleOCR-VL-1.6-0.9B"
SERVER_BACKENDS = [
    "vllm-server",
    "sglang-server",
    "fastdeploy-server",
    "mlx-vlm-server",
    "llama-cpp-server",
]


def engine_for(server: VlServer, **overrides: Any) -> PaddleOcrVlEngine:
    values: dict[str, Any] = {
        "ocr_engine": "paddleocr-vl",
        "paddleocr_vl_backend": "vllm-server",
        "paddleocr_vl_server_url": server.url,
        "paddleocr_vl_device": "cpu",
        "paddleocr_vl_layout": "off",
    }
    values.update(overrides)
    return PaddleOcrVlEngine(Settings(**values))


def page(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), "white")


def texts(outcomes: list[Recognition | EngineError]) -> list[object]:
    return [o.code if isinstance(o, EngineError) else [b.text for b in o.blocks] for o in outcomes]


# --- layout off: one whole page, one block --------------------------------------------------


def test_layout_off_sends_the_whole_page_and_gives_one_text_block(vl):
    engine = engine_for(vl)

    recognition = engine.recognize(page(400, 300))

    [block] = recognition.blocks
    assert (block.type, block.text, block.bbox) == ("text", page_text(400, 300), [0, 0, 400, 300])
    assert recognition.markdown == page_text(400, 300)
    [seen] = vl.seen
    assert (seen.model, seen.prompt, seen.width, seen.height) == (MODEL, "OCR:", 400, 300)


def test_a_batch_keeps_each_page_in_its_slot_and_sends_them_at_once():
    sizes = [(400, 300), (500, 200), (300, 300), (640, 480)]
    with VlServer(model=MODEL, latency=0.3) as server:
        engine = engine_for(server)

        outcomes = engine.recognize_batch([page(w, h) for w, h in sizes])

        assert texts(outcomes) == [[page_text(w, h)] for w, h in sizes]
        assert server.stats.requests == 4
        assert server.stats.max_in_flight == 4  # one predict(list), not a loop


def test_batches_read_at_once_each_use_a_pipeline_of_their_own():
    first, second = [(400, 300), (500, 200)], [(300, 300), (640, 480), (320, 200)]
    with VlServer(model=MODEL, latency=0.5) as server:
        engine = engine_for(server, batch_in_flight=2)
        assert engine.max_in_flight == 2 and len(set(map(id, engine.pipelines))) == 2

        with ThreadPoolExecutor(2) as pool:
            calls = [
                pool.submit(engine.recognize_batch, [page(*s) for s in b]) for b in (first, second)
            ]
            outcomes = [call.result(timeout=30) for call in calls]

        assert texts(outcomes[0]) == [[page_text(w, h)] for w, h in first]
        assert texts(outcomes[1]) == [[page_text(w, h)] for w, h in second]
        # both calls' requests were at the server together: neither waited for the other
        assert server.stats.max_in_flight == 5


def test_the_requests_in_flight_stay_within_the_workers_total_over_its_pipelines():
    # PADDLEOCR_VL_MAX_CONCURRENCY=3 over 2 pipelines: paddlex's own semaphores cap them at 2
    # and 1 (its default would be 200 each)
    batches = [[(400 + n, 300) for n in range(4)], [(500 + n, 300) for n in range(4)]]
    with VlServer(model=MODEL, latency=0.3) as server:
        engine = engine_for(server, batch_in_flight=2, paddleocr_vl_max_concurrency=3)
        caps = [
            p.paddlex_pipeline.vl_rec_model.genai_client._max_concurrency for p in engine.pipelines
        ]
        assert sorted(caps) == [1, 2]

        with ThreadPoolExecutor(2) as pool:
            calls = [pool.submit(engine.recognize_batch, [page(*s) for s in b]) for b in batches]
            outcomes = [call.result(timeout=60) for call in calls]

        for batch, outcome in zip(batches, outcomes, strict=True):
            assert texts(outcome) == [[page_text(w, h)] for w, h in batch]
        assert server.stats.requests == 8
        assert server.stats.max_in_flight == 3  # both calls at once, never more than the total


def test_an_empty_batch_reads_nothing(vl):
    assert engine_for(vl).recognize_batch([]) == []
    assert vl.stats.requests == 0


# --- model name, key, backends ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "model"),
    [("v1", "PaddleOCR-VL-0.9B"), ("v1.5", "PaddleOCR-VL-1.5-0.9B"), ("v1.6", MODEL)],
)
def test_the_model_asked_for_follows_the_pipeline_version(version, model):
    with VlServer(model=model) as server:
        engine = engine_for(server, paddleocr_vl_pipeline_version=version)
        engine.check_available()

        engine.recognize(page(100, 50))

        assert [s.model for s in server.seen] == [model]


def test_the_model_setting_names_what_the_server_serves():
    with VlServer(model="my-paddleocr-vl") as server:
        engine = engine_for(server, paddleocr_vl_model="my-paddleocr-vl")
        engine.check_available()

        assert engine.recognize(page(100, 50)).blocks[0].text == page_text(100, 50)


def test_the_api_key_reaches_the_server_and_not_the_log(caplog):
    caplog.set_level(logging.INFO, logger="worker.engines.paddleocr_vl")
    with VlServer(model=MODEL, api_key="s3cret") as server:
        engine = engine_for(server, paddleocr_vl_api_key="s3cret")
        engine.check_available()
        assert "vl_rec_api_key=***" in caplog.text
        assert "s3cret" not in caplog.text

        assert engine.recognize(page(100, 50)).blocks[0].text == page_text(100, 50)

        keyless = engine_for(server)
        with pytest.raises(EngineUnavailable) as caught:
            keyless.check_available()
        assert "PADDLEOCR_VL_API_KEY" in caught.value.message


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_every_server_backend_the_library_accepts_reads_a_page(vl, backend):
    engine = engine_for(vl, paddleocr_vl_backend=backend)

    assert engine.recognize(page(120, 80)).blocks[0].text == page_text(120, 80)
    assert engine.info().device == f"server:{vl.url}"


def test_native_backend_on_the_cpu_build_of_paddle_is_gpu_unavailable(vl):
    with pytest.raises(EngineError) as caught:
        engine_for(vl, paddleocr_vl_backend="native", paddleocr_vl_device="gpu:0")

    assert caught.value.code == "gpu_unavailable"
    assert "CPU-only build" in caught.value.message


def test_a_backend_the_library_refuses_is_config_error(vl):
    with pytest.raises(EngineError) as caught:
        engine_for(vl, paddleocr_vl_backend="tgi-server")

    assert caught.value.code == "config_error"
    assert "tgi-server" in caught.value.message


def test_layout_on_without_the_layout_weights_fails_clearly_and_downloads_nothing(vl):
    with pytest.raises(EngineError) as caught:
        engine_for(vl, paddleocr_vl_layout="on")

    assert caught.value.code == "engine_init_failed"
    assert "PaddleOCRVL could not be built" in caught.value.message


# --- boot: the server and its model checked before any page -----------------------------------


def test_boot_check_names_the_url_and_model_when_the_server_is_down(vl):
    engine = engine_for(vl)  # builds without contacting the server
    vl.stop()

    with pytest.raises(EngineUnavailable) as down:
        engine.check_available()
    with pytest.raises(EngineError) as warm:
        engine.warm()

    assert vl.url in down.value.message
    assert MODEL in down.value.message
    assert (warm.value.code, warm.value.message) == ("engine_init_failed", down.value.message)


def test_boot_check_names_both_models_when_the_server_serves_another():
    with VlServer(model="PaddleOCR-VL-0.9B") as server:
        engine = engine_for(server)

        with pytest.raises(EngineError) as caught:
            engine.warm()

        assert caught.value.code == "engine_init_failed"
        assert "serves ['PaddleOCR-VL-0.9B'], not PaddleOCR-VL-1.6-0.9B" in caught.value.message
        assert server.stats.requests == 0  # failed before any page


def test_warm_reads_a_page_through_the_server(vl):
    engine_for(vl).warm()

    assert vl.stats.model_lists == 1
    assert [(s.width, s.height) for s in vl.seen] == [(800, 320)]


# --- errors: an outage, a failing page ------------------------------------------------------


def test_server_down_mid_run_is_engine_unavailable_not_page_errors(vl):
    engine = engine_for(vl)
    vl.stop()

    with pytest.raises(EngineUnavailable) as caught:
        engine.recognize_batch([page(100, 50), page(120, 50)])

    assert vl.url in caught.value.message
    with pytest.raises(EngineUnavailable):
        engine.recognize(page(100, 50))
    vl.start()
    assert engine.recognize(page(100, 50)).blocks[0].text == page_text(100, 50)


def test_a_page_the_server_keeps_failing_fails_only_its_slot():
    def reply(image: Image.Image, prompt: str) -> str:
        if image.size == (333, 100):
            raise RuntimeError("the model cannot read this page")
        return page_text(*image.size)

    sizes = [(100, 100), (200, 100), (333, 100), (400, 100), (500, 100)]
    with VlServer(model=MODEL, reply=reply) as server:
        engine = engine_for(server)

        outcomes = engine.recognize_batch([page(w, h) for w, h in sizes])

    assert texts(outcomes) == [
        [page_text(100, 100)],
        [page_text(200, 100)],
        "vl_server_error",
        [page_text(400, 100)],
        [page_text(500, 100)],
    ]
    assert "the model cannot read this page" in outcomes[2].message


def test_a_500_that_passes_is_retried_and_no_page_fails(vl):
    engine = engine_for(vl)
    # 3 failures in a row: the first request fails even after the OpenAI client's retry (the
    # engine sets 1), so the whole predict(list) fails and the engine reads each half again.
    vl.fail_next(3)

    outcomes = engine.recognize_batch([page(100, 50), page(120, 50)])

    assert texts(outcomes) == [[page_text(100, 50)], [page_text(120, 50)]]
    assert vl.stats.failures == 3


def test_one_page_failing_alone_raises_its_error_from_recognize(vl):
    engine = engine_for(vl)
    vl.fail_next(3)

    with pytest.raises(EngineError) as caught:
        engine.recognize(page(100, 50))

    assert caught.value.code == "vl_server_error"
    assert "500" in caught.value.message


# --- layout on (stand-in layout predictor): blocks, formulas, images, tables ------------------


def layout_reply(image: Image.Image, prompt: str) -> str:
    if prompt.startswith("Formula"):
        return r"\[E = mc^2\]"
    if prompt.startswith("Table"):
        return "<fcel>Q3<fcel>12%<nl>"
    return f"{prompt} {image.width}x{image.height}"


LAYOUT = StandInLayout(
    lambda w, h: [
        box("doc_title", 10, 10, 390, 50),
        box("text", 10, 60, 390, 120),
        box("display_formula", 10, 130, 200, 170),
        box("image", 210, 130, 390, 290),
        box("table", 10, 180, 200, 290),
    ]
)


@pytest.fixture
def layout_engine() -> Iterator[tuple[PaddleOcrVlEngine, VlServer]]:
    with VlServer(model=MODEL, reply=layout_reply) as server:
        engine = engine_for(server)
        for pipeline in engine.pipelines:
            install_layout(pipeline, LAYOUT)
        yield engine, server


def test_layout_blocks_come_back_typed_with_their_bboxes(layout_engine):
    engine, server = layout_engine

    recognition = engine.recognize(page(400, 300))

    assert [(b.type, b.bbox) for b in recognition.blocks] == [
        ("title", [10, 10, 390, 50]),
        ("text", [10, 60, 390, 120]),
        ("formula", [10, 130, 200, 170]),
        ("figure", [210, 130, 390, 290]),
        ("table", [10, 180, 200, 290]),
    ]
    assert recognition.blocks[0].text == "OCR: 380x40"
    assert recognition.blocks[4].text == "<table><tr><td>Q3</td><td>12%</td></tr></table>"
    # The image block is not sent to the VL model.
    assert sorted(s.prompt for s in server.seen) == [
        "Formula Recognition:",
        "OCR:",
        "OCR:",
        "Table Recognition:",
    ]


def test_formula_text_has_no_stray_spaces(layout_engine):
    engine, _ = layout_engine

    recognition = engine.recognize(page(400, 300))

    assert recognition.blocks[2].text == "$$E = mc^2$$"
    assert "\n$$E = mc^2$$\n" in recognition.markdown
    assert " $$" not in recognition.markdown
    assert "$$ " not in recognition.markdown


def test_the_image_block_s_crop_comes_with_the_recognition_and_the_markdown_links_it(
    layout_engine,
):
    engine, _ = layout_engine
    image = page(400, 300)
    image.paste((200, 30, 30), (210, 130, 390, 290))  # the image box: red

    recognition = engine.recognize(image)

    # paddlex's own crop of the image box (imgs/img_in_image_box_210_130_390_290.jpg)
    [(name, data)] = recognition.images.items()
    assert name == "img_in_image_box_210_130_390_290.jpg"
    crop = Image.open(io.BytesIO(data))
    assert (crop.format, crop.size) == ("JPEG", (180, 160))
    red, green, blue = crop.convert("RGB").getpixel((90, 80))
    assert red > 150 and green < 80 and blue < 80
    markdown = recognition.markdown
    assert f'<img src="{name}"' in markdown
    assert "imgs/" not in markdown
    assert markdown.startswith("# OCR: 380x40\n\nOCR: 380x60\n\n$$E = mc^2$$\n\n")
    assert "\n\n\n" not in markdown


def test_the_worker_links_the_crop_through_the_api(layout_engine):
    engine, _ = layout_engine
    recognition = engine.recognize(page(400, 300))
    job_id = "ab" * 16

    result = recognized_result(job_id, Page(3, None, 400, 300, None), engine.name, recognition)

    assert list(result.images) == ["p3-img_in_image_box_210_130_390_290.jpg"]
    # each layout block its own block, paragraph and line, in the model's order
    assert [b.block for b in result.blocks] == list(range(len(result.blocks)))
    assert [b.line for b in result.blocks] == [b.paragraph for b in result.blocks]
    link = f"/jobs/{job_id}/images/p3-img_in_image_box_210_130_390_290.jpg"
    assert f'<img src="{link}"' in result.markdown
    assert result.markdown.count("<img") == 1


def test_a_layout_batch_reads_every_block_of_every_page_at_once(layout_engine):
    engine, server = layout_engine
    server.latency = 0.2

    outcomes = engine.recognize_batch([page(400, 300), page(400, 300), page(400, 300)])

    assert [len(o.blocks) for o in outcomes] == [5, 5, 5]
    assert server.stats.requests == 12  # 4 VL blocks a page
    assert server.stats.max_in_flight == 12


def test_the_guard_refuses_connections_off_loopback(no_downloads):
    import socket

    with socket.socket() as sock, pytest.raises(OSError, match="loopback only"):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed

    assert no_downloads == [("192.0.2.1", 443)]
    no_downloads.clear()
