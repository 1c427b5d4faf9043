"""The tesseract engine and `auto` script detection, on the real Tesseract and rendered pages."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from PIL import Image

from shared.settings import Settings
from testkit.pages import render_page
from worker.engines import EngineError, build_engine
from worker.engines.tesseract_engine import TesseractEngine, find_tessdata, looks_misread

# Real Tesseract (tesserocr), warmed once for the module.
pytestmark = pytest.mark.integration

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


# A page of running Russian text, as a scanned letter or manual page would have.
RUSSIAN_PAGE: list[tuple[str, int]] = [
    ("Настоящий документ описывает порядок установки пакетов", 30),
    ("и настройки системы после первой загрузки компьютера.", 30),
    ("Перед началом работы проверьте подключение к сети", 30),
    ("и наличие свободного места на диске (не менее 2 ГБ).", 30),
    ("Команды выполняются от имени администратора.", 30),
]


def test_upright_page_is_read_once_with_rotation_0(engine: TesseractEngine, count_reads) -> None:
    reads = count_reads(engine)

    recognition = engine.recognize(render_page(RUSSIAN_PAGE))

    assert recognition.rotation == 0
    assert len(reads) == 1
    assert [b.text for b in recognition.blocks] == [text for text, _ in RUSSIAN_PAGE]


# PIL turns counter-clockwise; the page is made upright by turning it the rest of the way.
@pytest.mark.parametrize(("turned", "rotation"), [(90, 270), (180, 180), (270, 90)])
def test_turned_page_is_turned_upright_and_read_right(
    engine: TesseractEngine, count_reads, turned: int, rotation: int
) -> None:
    upright = render_page(RUSSIAN_PAGE)
    reads = count_reads(engine)

    recognition = engine.recognize(upright.rotate(turned, expand=True))

    assert recognition.rotation == rotation
    assert len(reads) == 2  # as it lies, then turned
    assert [b.text for b in recognition.blocks] == [text for text, _ in RUSSIAN_PAGE]
    for block in recognition.blocks:  # boxes on the upright page
        x0, y0, x1, y1 = block.bbox
        assert 0 <= x0 < x1 <= upright.width and 0 <= y0 < y1 <= upright.height
        assert x1 - x0 > y1 - y0


def test_without_osd_data_a_turned_page_is_read_as_it_lies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("rus", "eng"):  # a tessdata folder without osd.traineddata
        (tmp_path / f"{name}.traineddata").symlink_to(
            Path(find_tessdata(None)) / f"{name}.traineddata"
        )
    with caplog.at_level("WARNING"):
        engine = TesseractEngine(Settings(tesseract_data_dir=tmp_path))
    assert "no osd.traineddata" in caplog.text
    assert engine.info().versions["orientation"] == "off"

    recognition = engine.recognize(render_page(RUSSIAN_PAGE).rotate(180))

    assert recognition.rotation == 0
    assert recognition.blocks  # read, as badly as it lies


def test_a_confident_sideways_read_is_still_turned(engine: TesseractEngine) -> None:
    # Tesseract reads a page turned clockwise as vertical lines with high confidence: the tall
    # line boxes give it away.
    first = engine.read_as_given(render_page(RUSSIAN_PAGE).rotate(270, expand=True))
    assert looks_misread(first)
    assert not looks_misread(engine.read_as_given(render_page(RUSSIAN_PAGE)))
