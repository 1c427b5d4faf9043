"""Reading order with the real CPU engines on rendered pages: two columns under a heading, a
form's key-value rows, a document number printed up the margin (READING_ORDER=geometry), and
the engines' own order kept with READING_ORDER=engine."""

from __future__ import annotations

import pytest
from PIL import Image

from shared.settings import Settings
from testkit.pages import render_columns, render_key_values, render_margin_number
from tests.conftest import service_fixture
from worker.engines import OcrEngine, build_engine
from worker.results import page_text

HEADING = "Minutes of the Library Committee"
LEFT = [
    "The committee met on Monday to review",
    "the annual budget and the plans for",
    "the new library building downtown.",
    "Members asked for more details about",
    "the costs of heating and lighting.",
]
RIGHT = [
    "After a long discussion the members",
    "agreed to publish the full report in",
    "the spring, together with a summary",
    "for readers who have little time and",
    "a list of questions for the public.",
]
FORM = [
    ("Invoice number", "20461"),
    ("Delivery date", "2026-03-14"),
    ("Total amount", "1284.50 EUR"),
    ("Customer", "Northwind Traders"),
]
BODY = [
    ("Invoice number 20461", 30),
    ("Delivery date 2026-03-14", 30),
    ("Total amount 1284.50 EUR", 30),
    ("Thank you for your order", 30),
    ("Please pay within thirty days", 30),
    ("of the date of this invoice", 30),
]
NUMBER = "DOC 2026-004517"

# Real engines read real rendered pages.
pytestmark = pytest.mark.integration


@service_fixture(scope="module", params=["rapidocr", "tesseract"])
def engine(request: pytest.FixtureRequest) -> OcrEngine:
    built = build_engine(Settings(ocr_engine=request.param))
    built.warm()
    return built


def lines_of(engine: OcrEngine, image: Image.Image) -> list[str]:
    return page_text(engine.recognize(image).blocks).splitlines()


def test_two_columns_are_read_column_by_column(engine: OcrEngine) -> None:
    recognition = engine.recognize(render_columns(HEADING, LEFT, RIGHT))

    assert page_text(recognition.blocks).splitlines() == [HEADING, *LEFT, *RIGHT]
    assert [b.block for b in recognition.blocks] == [0] + [1] * 5 + [2] * 5
    assert recognition.markdown is not None
    assert recognition.markdown.split("\n\n") == [HEADING, "\n".join(LEFT), "\n".join(RIGHT)]


def test_key_value_rows_are_read_row_by_row(engine: OcrEngine) -> None:
    assert lines_of(engine, render_key_values(FORM)) == [f"{key} {value}" for key, value in FORM]


@pytest.mark.parametrize("degrees", [1.5, -1.5])
def test_key_value_rows_of_a_page_scanned_askew_stay_rows(
    engine: OcrEngine, degrees: float
) -> None:
    # 1.5 degrees puts a value 20 px above or below its key: apart, were rows not read along
    # the slope of the lines the engine found
    page = render_key_values(FORM).rotate(degrees, expand=True, fillcolor="white")

    lines = lines_of(engine, page)

    # each row whole and in place (a key's first letter may come out accented askew)
    assert len(lines) == len(FORM)
    for line, (key, value) in zip(lines, FORM, strict=True):
        assert line.endswith(f"{key.split()[-1]} {value}"), (line, key, value)


@pytest.mark.parametrize("angle", [90, 270], ids=["bottom-up", "top-down"])
def test_a_vertical_margin_number_is_read_as_one_line_before_the_body(
    engine: OcrEngine, angle: int
) -> None:
    page = render_margin_number(BODY, NUMBER, angle=angle)

    recognition = engine.recognize(page)

    assert recognition.rotation == 0
    assert page_text(recognition.blocks).splitlines() == [NUMBER, *(text for text, _ in BODY)]
    number = recognition.blocks[0]
    assert number.bbox[3] - number.bbox[1] > 4 * (number.bbox[2] - number.bbox[0])  # upright box
    assert number.block == 0 and recognition.blocks[1].block == 1


def test_a_turned_two_column_page_is_turned_then_ordered() -> None:
    engine = build_engine(Settings(ocr_engine="rapidocr"))
    page = render_columns(HEADING, LEFT, RIGHT, width=1654, size=30).rotate(90, expand=True)

    recognition = engine.recognize(page)

    assert recognition.rotation == 270
    assert page_text(recognition.blocks).splitlines() == [HEADING, *LEFT, *RIGHT]


def test_engine_order_keeps_rapidocrs_rows_and_gives_no_ids() -> None:
    engine = build_engine(Settings(ocr_engine="rapidocr", reading_order="engine"))

    recognition = engine.recognize(render_key_values(FORM))

    assert recognition.markdown is None  # page markdown: a paragraph per box, as before
    assert all(b.block is b.paragraph is b.line is None for b in recognition.blocks)
    # rapidocr's own order: each key then its value, one box per line of the text
    assert page_text(recognition.blocks).splitlines() == [t for row in FORM for t in row]
