# ruff: noqa: RUF001 - Russian test strings
"""Page preparation (worker/image_prep.py) and word fixes (worker/text_fixes.py), on rendered
pages with numpy and Pillow only (fast tier: no OCR library)."""

from __future__ import annotations

import pytest
from PIL import Image

from shared.results import Block
from testkit.degrade import degrade
from testkit.eval_pages import clean_page
from testkit.pages import render_page
from worker.image_prep import (
    MAX_UPSCALE,
    PagePrep,
    despeckle,
    flatten,
    is_binarized,
    looks_like_photo,
    prepare,
    soften,
    text_height,
    upscale_factor,
)
from worker.text_fixes import fix_line

PROSE = "The river rose slowly through the night and the fields were under water"


def page_of(size: int, lines: int = 12) -> Image.Image:
    return render_page([(f"{PROSE} {n}", size) for n in range(lines)], width=1400)


def test_text_height_grows_with_the_font_size() -> None:
    heights = [text_height(page_of(size)) for size in (10, 20, 40)]

    assert all(h is not None for h in heights)
    assert heights[0] < heights[1] < heights[2]  # type: ignore[operator]
    assert 0.3 * 20 <= heights[1] <= 1.1 * 20  # type: ignore[operator]


def test_text_height_is_unknown_without_enough_lines() -> None:
    assert text_height(Image.new("RGB", (800, 600), "white")) is None
    assert text_height(render_page([("one short line", 30)])) is None


def test_small_text_is_enlarged_to_the_minimum_height_and_no_more_than_the_cap() -> None:
    small, large = page_of(10), page_of(40)

    factor = upscale_factor(small, 12)

    assert 1.3 <= factor <= MAX_UPSCALE
    assert upscale_factor(small, 200) == MAX_UPSCALE
    assert upscale_factor(large, 12) == 1.0
    assert upscale_factor(small, 0) == 1.0


def test_a_phone_photo_is_told_from_clean_and_faxed_pages() -> None:
    page = clean_page("form", "en", 0)

    phone, _, _ = degrade(page.image, page.dpi, "phone", "t")
    fax, _, _ = degrade(page.image, page.dpi, "fax", "t")

    assert looks_like_photo(phone)
    assert not looks_like_photo(page.image)
    assert not looks_like_photo(fax)


def test_flatten_turns_tinted_unevenly_lit_paper_white_and_keeps_the_ink_dark() -> None:
    page = clean_page("twocol", "ru", 0)
    phone, _, _ = degrade(page.image, page.dpi, "phone", "t")

    flat = flatten(phone)

    assert flat.mode == "L" and flat.size == phone.size
    pixels = sorted(flat.get_flattened_data())
    paper = pixels[len(pixels) // 2 :]  # the brighter half is paper
    assert sum(paper) / len(paper) > 240
    assert pixels[len(pixels) // 200] < 60  # the darkest 0.5 %: ink, black again
    before = sorted(phone.convert("L").get_flattened_data())
    assert before[len(before) * 3 // 4] < 230  # the photo's paper was not white


def test_prepare_off_leaves_the_page_alone() -> None:
    page = page_of(10)

    image, factor = prepare(page, 0, "off")

    assert image is page and factor == 1.0


def test_prepare_enlarges_and_normalises_a_small_phone_photo() -> None:
    page = clean_page("small", "en", 0)
    phone, _, _ = degrade(page.image, page.dpi, "phone", "t")

    image, factor = prepare(phone, 12, "auto")

    assert factor > 1.3
    assert image.size == (round(phone.width * factor), round(phone.height * factor))
    assert image.mode == "L"


def test_restore_gives_boxes_on_the_original_page_and_fixes_words() -> None:
    prep = PagePrep(min_text_height=12, normalise="auto", word_fixes=True)
    blocks = [Block(text="Организация: 000 «Лес»", bbox=[20, 40, 200, 60], score=0.9)]

    restored = prep.restore(blocks, 2.0)

    assert restored[0].bbox == [10, 20, 100, 30]
    assert restored[0].text == "Организация: ООО «Лес»"
    assert prep.box_back((20, 40, 200, 60), 2.0) == (10, 20, 100, 30)
    assert PagePrep().restore(blocks, 1.0)[0].text == blocks[0].text


@pytest.mark.parametrize(
    ("read", "fixed"),
    [
        ("Покупатель: 000 «Дубрава Строй»", "Покупатель: ООО «Дубрава Строй»"),
        ('Поставщик 000 "Лес"', 'Поставщик ООО "Лес"'),
        ("Д0М и М0СТ", "ДОМ и МОСТ"),
        ("B0OK and F1LE, d0g", "BOOK and FILE, dog"),
        # numbers, dates, codes and digits at a word's end stay as read
        ("Invoice INV-20461-B of 2026", "Invoice INV-20461-B of 2026"),
        ("Счёт СЧ-20461-Б, 3 из 3, 100 000 руб.", "Счёт СЧ-20461-Б, 3 из 3, 100 000 руб."),
        ("Windows Win10 R2D2 x10", "Windows Win10 R2D2 x10"),
        ('Sold 000 "units"', 'Sold 000 "units"'),  # no Cyrillic: not the company form
    ],
)
def test_word_fixes(read: str, fixed: str) -> None:
    assert fix_line(read) == fixed


def test_a_fax_is_binarized_and_clean_or_photographed_pages_are_not() -> None:
    page = clean_page("form", "ru", 0)

    fax, dpi, fmt = degrade(page.image, page.dpi, "fax", "t")
    phone, _, _ = degrade(page.image, page.dpi, "phone", "t")

    assert (dpi, fmt) == ((204, 98), "TIFF")
    assert is_binarized(fax)
    assert not is_binarized(page.image)  # anti-aliased edges are grey
    assert not is_binarized(phone)


def test_despeckle_whitens_lone_dots_and_keeps_the_letters() -> None:
    page = render_page([(f"{PROSE} {n}.", 28) for n in range(4)], width=1400).convert("L")
    letters = page.point(lambda v: 0 if v < 128 else 255)
    specked = letters.copy()
    dots = [(40 + 97 * i, 7 + 5 * (i % 3)) for i in range(12)]  # in the top margin
    dots += [(60 + 131 * i, letters.height - 6) for i in range(10)]  # and the bottom one
    for x, y in dots:
        specked.putpixel((x, y), 0)
        specked.putpixel((x, y + 1), 0)  # a fax's speck: its row doubled

    cleaned = despeckle(specked)

    assert cleaned.mode == "L" and cleaned.size == specked.size
    assert all(cleaned.getpixel(xy) == 255 for xy in dots)
    before = sum(v == 0 for v in letters.get_flattened_data())
    after = sum(v == 0 for v in cleaned.get_flattened_data())
    assert after >= 0.995 * before  # the letters, full stops included, stay


def test_prepare_despeckles_binarized_pages_only_when_asked() -> None:
    fax = page_of(28).convert("L").point(lambda v: 0 if v < 128 else 255)
    fax.putpixel((5, 5), 0)
    grey = page_of(28)

    cleaned, factor = prepare(fax, 0, "off", clean_specks=True)
    kept, _ = prepare(fax, 0, "off", clean_specks=False)
    untouched, _ = prepare(grey, 0, "off", clean_specks=True)

    assert factor == 1.0 and cleaned.getpixel((5, 5)) == 255
    assert kept is fax
    assert untouched is grey


def test_a_photo_is_enlarged_to_its_own_minimum_text_height_and_a_clean_page_is_not() -> None:
    page = clean_page("twocol", "ru", 0)
    phone, _, _ = degrade(page.image, page.dpi, "phone", "t")

    _, as_others = prepare(phone, 12, "auto")
    _, as_photo = prepare(phone, 12, "auto", photo_min_text_height=16)
    _, clean = prepare(page.image, 12, "auto", photo_min_text_height=16)

    assert as_photo > as_others
    assert as_photo == pytest.approx(as_others * 16 / 12, rel=0.02) or as_photo == MAX_UPSCALE
    assert clean == 1.0  # 10 pt at 150 dpi: tall enough, and no photo


def test_soften_turns_a_fax_grey_and_fills_its_drop_outs() -> None:
    fax = Image.new("L", (60, 30), 255)
    fax.paste(0, (10, 13, 50, 16))  # a stroke 3 px thick
    fax.putpixel((30, 14), 255)  # with a drop-out in its middle

    soft = soften(fax, 1.0)

    assert soft.mode == "L" and soft.size == fax.size
    assert not is_binarized(soft)  # grey edges, as a scanner's
    assert soft.getpixel((30, 14)) < 128  # the stroke reads as ink again
    assert soft.getpixel((5, 5)) == 255  # and the paper stays white


def test_prepare_blurs_binarized_pages_only() -> None:
    fax = page_of(28).convert("L").point(lambda v: 0 if v < 128 else 255)
    fax.info["dpi"] = (204, 204)
    grey = page_of(28)

    soft, factor = prepare(fax, 0, "off", clean_specks=True, bilevel_blur=1.0)
    sharp, _ = prepare(fax, 0, "off", clean_specks=True, bilevel_blur=0.0)
    untouched, _ = prepare(grey, 0, "off", clean_specks=True, bilevel_blur=1.0)

    assert factor == 1.0 and not is_binarized(soft)
    assert soft.info["dpi"] == (204, 204)  # Tesseract's dpi hint survives
    assert is_binarized(sharp)
    assert untouched is grey
    assert PagePrep(bilevel_blur=1.0).prepare(fax)[0].tobytes() == soft.tobytes()


def test_soften_blurs_by_the_same_size_on_paper_at_any_dpi() -> None:
    def page_at(dpi: int) -> Image.Image:
        fax = Image.new("L", (60, 30), 255)
        fax.paste(0, (10, 13, 50, 16))
        fax.info["dpi"] = (dpi, dpi)
        return fax

    beside = (30, 18)  # two pixels below the stroke

    at_100, at_200 = soften(page_at(100), 1.0), soften(page_at(200), 1.0)

    assert at_100.getpixel(beside) > at_200.getpixel(beside)  # half the radius in pixels
    assert soften(Image.new("L", (60, 30), 255), 1.0).getpixel(beside) == 255
