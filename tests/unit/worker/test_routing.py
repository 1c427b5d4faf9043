"""Language routing with the real engines: Cyrillic never stays with the Latin-only rapidocr."""

from __future__ import annotations

import pytest

from shared.options import Language
from shared.settings import Settings
from tests.textimages import normalize_lines, render_page
from worker.boot import build_engines
from worker.engines import EngineError
from worker.routing import EngineRouter, read_density

RUSSIAN = [("Договор поставки номер 15", 40), ("Сумма к оплате 1284 рубля", 28)]
ENGLISH = [("Report 1 page 2", 40), ("Signed on 2026-01-05", 28)]


@pytest.fixture(scope="module")
def router() -> EngineRouter:
    engines = build_engines(Settings(ocr_fallback_engines="tesseract"))
    for engine in engines:
        engine.warm()
    assert [e.name for e in engines] == ["rapidocr", "tesseract"]
    return EngineRouter(engines)


def _text(recognition) -> list[str]:
    return normalize_lines("\n".join(b.text for b in recognition.blocks))


def test_auto_sends_a_russian_page_to_tesseract(router: EngineRouter) -> None:
    engine, recognition = router.read(render_page(RUSSIAN), Language.auto)

    assert engine.name == "tesseract"
    assert _text(recognition) == [t for t, _ in RUSSIAN]


def test_auto_keeps_an_english_page_on_rapidocr(router: EngineRouter) -> None:
    engine, recognition = router.read(render_page(ENGLISH), Language.auto)

    assert engine.name == "rapidocr"
    assert _text(recognition) == [t for t, _ in ENGLISH]


def test_explicit_hints_choose_the_engine_without_a_first_pass(router: EngineRouter) -> None:
    assert router.read(render_page(ENGLISH), Language.ru)[0].name == "tesseract"
    assert router.read(render_page(RUSSIAN), Language.en)[0].name == "rapidocr"


def test_read_density_separates_read_and_dropped_letters(router: EngineRouter) -> None:
    rapidocr = router.primary
    latin = read_density(rapidocr.recognize(render_page(ENGLISH)))
    dropped = read_density(rapidocr.recognize(render_page(RUSSIAN)))

    assert latin is not None and dropped is not None
    assert dropped < 0.9 < latin


def test_without_a_cyrillic_engine_ru_is_language_unsupported() -> None:
    engines = build_engines(Settings(ocr_fallback_engines=""))
    with pytest.raises(EngineError) as info:
        EngineRouter(engines).read(render_page(RUSSIAN), Language.ru)
    assert info.value.code == "language_unsupported"
