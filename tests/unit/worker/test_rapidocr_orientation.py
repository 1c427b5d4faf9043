"""rapidocr's page orientation on rendered pages: upright pages stay, turned pages come back."""

from __future__ import annotations

import pytest

from shared.settings import Settings
from testkit.pages import render_page
from tests.conftest import service_fixture
from worker.engines import build_engine
from worker.engines.rapidocr_engine import RapidOcrEngine

# Long lines of an A4 page at 200 dpi: the line classifier, fed whole lines squashed into its
# 192x48 input, took pages of such lines for upside down or turned them back the wrong way.
ENGLISH = [
    "works are designed to take away your freedom to share and change the",
    "you have the freedom to distribute copies of free software (and",
    "denying you these rights or asking you to surrender the rights.",
    "For example, if you distribute copies of such a program, whether",
    "gratis or for a fee, you must pass on to the recipients the same",
]
RUSSIAN = [
    "Пакет содержит документацию для разработчиков и сопровождающих",
    "Описание того, как собрать пакет из исходного кода программы",
    "Установите необходимые пакеты перед началом работы над пакетом",
    "Если вы хотите изменить программу, сначала прочитайте правила",
]


@service_fixture(scope="module")
def engine() -> RapidOcrEngine:
    built = build_engine(Settings())
    assert isinstance(built, RapidOcrEngine)
    built.warm()
    return built


def _a4_lines(lines: list[str], size: int = 30):
    return render_page([(line, size) for line in lines], width=1654, margin=140)


def test_upright_page_of_long_lines_is_not_turned(engine: RapidOcrEngine) -> None:
    recognition = engine.recognize(_a4_lines(ENGLISH))

    assert recognition.rotation == 0
    assert [b.text for b in recognition.blocks] == ENGLISH


def test_upright_cyrillic_page_is_not_taken_for_upside_down(engine: RapidOcrEngine) -> None:
    # at 22 px the classifier, given whole lines, said 180 for every line of this page
    page = _a4_lines(RUSSIAN, size=22)

    assert engine.page_rotation(page, engine.read_as_given(page)) == 0


@pytest.mark.parametrize("angle", [90, 180, 270])
def test_turned_cyrillic_page_orientation_is_found(engine: RapidOcrEngine, angle: int) -> None:
    # rapidocr's Latin model reads Cyrillic badly, yet better the right way up than upside
    # down: the router turns such a page before tesseract reads it
    page = _a4_lines(RUSSIAN).rotate(angle, expand=True)

    assert engine.page_rotation(page, engine.read_as_given(page)) == (360 - angle) % 360


@pytest.mark.parametrize("angle", [90, 180, 270])
def test_turned_english_page_comes_back_upright(engine: RapidOcrEngine, angle: int) -> None:
    page = _a4_lines(ENGLISH)

    recognition = engine.recognize(page.rotate(angle, expand=True))

    assert recognition.rotation == (360 - angle) % 360
    assert [b.text for b in recognition.blocks] == ENGLISH
