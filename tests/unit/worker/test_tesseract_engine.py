"""The tesseract engine and `auto` script detection, on the real Tesseract and rendered pages."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from PIL import Image

from shared.settings import Settings
from tests.textimages import render_page
from worker.engines import EngineError, build_engine
from worker.engines.tesseract_engine import TesseractEngine

# Russian with digits, punctuation and a Latin word, in two font sizes.
RUSSIAN_LINES: list[tuple[str, int]] = [
    ("Счёт № 20461 от 14 марта 2026 года", 44),
    ("Доставка: Москва, ул. Ленина 7, кв. 12", 30),
    ("Пакет Debian 12 собран за 35 секунд", 30),
    ("мелкий шрифт 0,75 мм", 22),
    ("Итого к оплате: 1284,50 рубля", 44),
]
ENGLISH_LINES: list[tuple[str, int]] = [
    ("The quick brown fox jumps over the lazy dog", 36),
    ("Shipping address: 221B Baker Street, London", 28),
    ("Please pay the invoice within 30 days", 28),
]


@pytest.fixture(scope="module")
def engine() -> TesseractEngine:
    built = build_engine(Settings(ocr_engine="tesseract"))
    assert isinstance(built, TesseractEngine)
    built.warm()
    return built


def test_reads_russian_lines_with_digits_and_a_latin_word_exactly(engine: TesseractEngine) -> None:
    image = render_page(RUSSIAN_LINES)

    recognition = engine.recognize(image)

    assert [b.text for b in recognition.blocks] == [text for text, _ in RUSSIAN_LINES]
    assert all(0.5 < b.score <= 1 for b in recognition.blocks)


def test_line_boxes_are_in_page_pixels_and_reading_order(engine: TesseractEngine) -> None:
    image = render_page(RUSSIAN_LINES)

    blocks = engine.recognize(image).blocks

    for block in blocks:
        x0, y0, x1, y1 = block.bbox
        assert 0 <= x0 < x1 <= image.width
        assert 0 <= y0 < y1 <= image.height
        assert 30 <= x0 <= 50  # render_page's left margin is 40 px
    tops = [b.bbox[1] for b in blocks]
    assert tops == sorted(tops)
    for upper, lower in itertools.pairwise(blocks):
        assert upper.bbox[3] < lower.bbox[1]  # lines do not overlap
    heights = [b.bbox[3] - b.bbox[1] for b in blocks]
    assert heights[0] > heights[3] * 1.5  # 44 px vs 22 px type


def test_markdown_keeps_tesseract_paragraphs(engine: TesseractEngine) -> None:
    recognition = engine.recognize(render_page(RUSSIAN_LINES))
    assert recognition.markdown is not None
    assert [line for line in recognition.markdown.splitlines() if line] == [
        b.text for b in recognition.blocks
    ]


def test_blank_page_gives_no_blocks(engine: TesseractEngine) -> None:
    assert engine.recognize(Image.new("RGB", (800, 600), "white")).blocks == []


def test_grayscale_and_palette_pages_are_read_too(engine: TesseractEngine) -> None:
    image = render_page(RUSSIAN_LINES[:2])
    for mode in ("L", "P", "RGBA"):
        texts = [b.text for b in engine.recognize(image.convert(mode)).blocks]
        assert texts == [text for text, _ in RUSSIAN_LINES[:2]], mode


def test_info_names_tesseract_version_and_languages(engine: TesseractEngine) -> None:
    info = engine.info()
    assert (info.name, info.device) == ("tesseract", "cpu")
    assert info.versions["tesseract"].startswith("5.")
    assert {"rus", "eng"} <= set(info.versions["languages"].split(","))
    assert info.versions["lang"] == "rus+eng"
    assert engine.scripts == {"cyrillic", "latin"}


def test_missing_language_is_a_clear_error() -> None:
    with pytest.raises(EngineError) as caught:
        TesseractEngine(Settings(tesseract_lang="rus+xxx"))
    assert caught.value.code == "engine_not_installed"
    assert "xxx.traineddata" in caught.value.message
    assert "TESSERACT_LANG='rus+xxx'" in caught.value.message
    assert "tesseract-ocr-" in caught.value.message  # says what to install


def test_missing_language_data_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="no tesseract language data") as caught:
        TesseractEngine(Settings(tesseract_data_dir=tmp_path))
    assert caught.value.code == "engine_not_installed"
    assert str(tmp_path) in caught.value.message


def test_scripts_follow_the_configured_languages() -> None:
    assert TesseractEngine(Settings(tesseract_lang="eng")).scripts == {"latin"}
    assert TesseractEngine(Settings(tesseract_lang="rus")).scripts == {"cyrillic"}
