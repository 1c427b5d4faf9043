from __future__ import annotations

import pytest

from shared.settings import Settings
from tests.textimages import render_page
from worker.engines import EngineError, build_engine


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
