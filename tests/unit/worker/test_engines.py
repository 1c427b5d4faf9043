from __future__ import annotations

import pytest

from shared.settings import Settings
from testkit.pages import render_page
from worker.engines import EngineError, build_engine

# Real engines (rapidocr models loaded and run).
pytestmark = pytest.mark.integration


def test_unknown_engine_is_a_clear_error() -> None:
    with pytest.raises(EngineError, match="OCR_ENGINE='nope'") as info:
        build_engine(Settings(ocr_engine="nope"))
    assert info.value.code == "unknown_engine"


def test_rapidocr_reads_two_font_sizes_and_digits_offline() -> None:
    engine = build_engine(Settings())
    engine.warm()
    image = render_page([("Order 5521 shipped", 48), ("small print 0.75 mm", 22)], width=900)

    recognition = engine.recognize(image)

    assert [b.text for b in recognition.blocks] == ["Order 5521 shipped", "small print 0.75 mm"]
    top, bottom = recognition.blocks
    assert top.bbox[3] < bottom.bbox[1]  # reading order, boxes in page pixels
    assert engine.info().device == "cpu"


def test_rapidocr_takes_a_configured_recognition_model(tmp_path) -> None:
    import shutil
    from pathlib import Path

    import rapidocr

    wheel_model = Path(rapidocr.__file__).parent / "models" / "PP-OCRv6_rec_small.onnx"
    baked = tmp_path / "baked_rec.onnx"  # as an image would bake e.g. the eslav model
    shutil.copy(wheel_model, baked)
    engine = build_engine(Settings(rapidocr_rec_model=baked, rapidocr_rec_scripts="latin,cyrillic"))

    assert engine.info().versions["rec_model"] == "baked_rec.onnx"
    assert engine.scripts == {"latin", "cyrillic"}  # routing trusts the declared scripts
    assert [b.text for b in engine.recognize(render_page([("Baked 77", 40)], 400)).blocks] == [
        "Baked 77"
    ]


def test_missing_configured_model_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(EngineError, match=r"nowhere\.onnx") as info:
        build_engine(Settings(rapidocr_rec_model=tmp_path / "nowhere.onnx"))
    assert info.value.code == "model_missing"


def test_rapidocr_reads_long_upright_lines_unflipped() -> None:
    # Lines of an A4 page at 200 dpi that rapidocr's per-line 180-degree classifier (squashing
    # each line into 192x48) took for upside down and read as garbage.
    lines = [
        "works are designed to take away your freedom to share and change the",
        "you have the freedom to distribute copies of free software (and",
        "denying you these rights or asking you to surrender the rights.",
    ]
    engine = build_engine(Settings())
    engine.warm()
    image = render_page([(line, 30) for line in lines], width=1654, margin=140)

    assert [b.text for b in engine.recognize(image).blocks] == lines
