"""Page preparation with the real CPU engines, on rendered pages degraded like phone photos
(testkit/eval_pages.py): the prepared read is much better than the raw one, and its boxes lie on
the page as it came."""

from __future__ import annotations

import pytest

from shared.settings import Settings
from testkit.degrade import degrade
from testkit.eval_pages import clean_page
from testkit.scoring import score_page
from worker.engines import OcrEngine, build_engine

pytestmark = pytest.mark.integration

OFF = {"photo_normalise": "off", "ocr_min_text_height_px": 0, "ocr_word_fixes": "off"}
ON = {"photo_normalise": "auto", "ocr_min_text_height_px": 12, "ocr_word_fixes": "on"}


def engine(name: str, prep: dict[str, object]) -> OcrEngine:
    built = build_engine(Settings(ocr_engine=name, **prep))  # type: ignore[arg-type]
    built.warm()
    return built


@pytest.mark.parametrize(
    ("name", "kind", "lang"), [("tesseract", "form", "ru"), ("rapidocr", "small", "en")]
)
def test_a_phone_photo_reads_far_better_prepared(name: str, kind: str, lang: str) -> None:
    page = clean_page(kind, lang, 0)
    truth = "\n".join(" ".join(cells) for cells in page.lines)
    photo, _, _ = degrade(page.image, page.dpi, "phone", f"{kind}-{lang}-0-phone")

    raw = engine(name, OFF).recognize(photo)
    prepared = engine(name, ON).recognize(photo)

    raw_cer = score_page(truth, "\n".join(b.text for b in raw.blocks)).cer
    prepared_cer = score_page(truth, "\n".join(b.text for b in prepared.blocks)).cer
    assert prepared_cer < 0.15
    assert prepared_cer < raw_cer / 2
    for block in prepared.blocks:
        x0, y0, x1, y1 = block.bbox
        assert 0 <= x0 < x1 <= photo.width + 1
        assert 0 <= y0 < y1 <= photo.height + 1
    if kind == "form":  # the company form read as letters, with the word fixes
        assert "ООО «" in "\n".join(b.text for b in prepared.blocks)  # noqa: RUF001
