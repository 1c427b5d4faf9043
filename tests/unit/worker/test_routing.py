"""Language routing with the real engines: Cyrillic never stays with the Latin-only rapidocr."""

from __future__ import annotations

import pytest

from shared.options import Language
from shared.settings import Settings
from testkit.pages import normalize_lines, render_page
from worker.boot import build_engines
from worker.engines import EngineError
from worker.routing import EngineRouter, read_density

# Real rapidocr and Tesseract engines, warmed once for the module.
pytestmark = pytest.mark.integration

RUSSIAN = [("Договор поставки номер 15", 40), ("Сумма к оплате 1284 рубля", 28)]
ENGLISH = [("Report 1 page 2", 40), ("Signed on 2026-01-05", 28)]
RUSSIAN_LONG = [
    ("Установите необходимые пакеты перед началом работы", 30),
    ("Описание того, как собрать пакет из исходного кода", 30),
    ("Если вы хотите изменить программу, прочитайте правила", 30),
]
ENGLISH_LONG = [
    ("For example, if you distribute copies of such a program", 30),
    ("gratis or for a fee, you must pass on to the recipients", 30),
    ("the same freedoms that you received. You must make sure", 30),
]


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


def test_auto_decides_cyrillic_before_any_rotation_re_read(
    router: EngineRouter, count_reads
) -> None:
    passes = count_reads(router.primary)

    engine, recognition = router.read(render_page(RUSSIAN_LONG), Language.auto)

    assert (engine.name, recognition.rotation) == ("tesseract", 0)
    assert len(passes) == 1  # one rapidocr pass, then tesseract
    assert _text(recognition) == [t for t, _ in RUSSIAN_LONG]


def test_auto_turns_an_upside_down_russian_page_for_tesseract(router: EngineRouter) -> None:
    page = render_page(RUSSIAN_LONG).rotate(180)

    engine, recognition = router.read(page, Language.auto)

    assert (engine.name, recognition.rotation) == ("tesseract", 180)
    assert _text(recognition) == [t for t, _ in RUSSIAN_LONG]


@pytest.mark.parametrize(("angle", "rotation"), [(180, 180), (270, 90)])
def test_ru_turns_a_turned_page_upright_in_tesseract(
    router: EngineRouter, angle: int, rotation: int
) -> None:
    page = render_page(RUSSIAN_LONG).rotate(angle, expand=True)

    engine, recognition = router.read(page, Language.ru)

    assert (engine.name, recognition.rotation) == ("tesseract", rotation)
    assert _text(recognition) == [t for t, _ in RUSSIAN_LONG]


def test_auto_turns_a_sideways_russian_page_once(router: EngineRouter, count_reads) -> None:
    # rapidocr turns the page; tesseract gets it upright, reads it once and adds no turn of its own
    tesseract_reads = count_reads(router.engine_for("cyrillic"))
    page = render_page(RUSSIAN_LONG).rotate(90, expand=True)

    engine, recognition = router.read(page, Language.auto)

    assert (engine.name, recognition.rotation) == ("tesseract", 270)
    assert len(tesseract_reads) == 1
    assert _text(recognition) == [t for t, _ in RUSSIAN_LONG]


@pytest.mark.parametrize("angle", [90, 180])
def test_auto_keeps_a_turned_english_page_on_rapidocr(router: EngineRouter, angle: int) -> None:
    # read as it lies, an upside-down or sideways Latin page also looks like an unread script
    page = render_page(ENGLISH_LONG).rotate(angle, expand=True)

    engine, recognition = router.read(page, Language.auto)

    assert (engine.name, recognition.rotation) == ("rapidocr", (360 - angle) % 360)
    assert _text(recognition) == [t for t, _ in ENGLISH_LONG]


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
