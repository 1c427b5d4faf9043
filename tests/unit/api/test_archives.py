"""The archive renderers on rendered pages, read back by tools nobody here wrote: poppler's
pdftotext/pdftoppm/pdfinfo/pdffonts, lxml (hOCR, ALTO and its XSD), pikepdf for the objects."""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pikepdf
import pytest
from hocr_spec import HocrValidator
from lxml import etree
from PIL import Image, ImageChops, ImageDraw

from api.archives.alto import ALTO_NS
from api.archives.glyphless import glyphless_ttf
from api.archives.layout import plain_lines
from api.archives.produce import render_archive
from shared.results import Block, DocumentResult, PageError, PageResult
from testkit.pages import encode, font, text_pdf
from testkit.poppler import page_rotation, page_texts, pdftotext, words_outside
from tests.schemas import alto_schema

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils")

LINES = ["Invoice number 20461", "Delivery date 2026-03-14", "Итого к оплате 1284 рубля"]


def drawn_page(
    lines: list[str], size: int = 40, width: int = 1400
) -> tuple[Image.Image, list[Block]]:
    """A page with `lines` drawn on it, and the boxes Pillow says each line covers."""
    image = Image.new("RGB", (width, 80 + len(lines) * size * 2), "white")
    draw = ImageDraw.Draw(image)
    blocks = []
    for i, text in enumerate(lines):
        x, y = 60, 40 + i * size * 2
        draw.text((x, y), text, fill="black", font=font(size))
        x0, y0, x1, y1 = draw.textbbox((x, y), text, font=font(size))
        blocks.append(Block(text=text, bbox=[x0 - 2, y0 - 2, x1 + 2, y1 + 2], score=0.97))
    return image, blocks


def png_idat(png: bytes) -> bytes:
    """The compressed pixels of a PNG: its IDAT chunks' data, joined."""
    data, at = [], 8
    while at < len(png):
        length, kind = struct.unpack(">I4s", png[at : at + 8])
        if kind == b"IDAT":
            data.append(png[at + 8 : at + 8 + length])
        at += 12 + length
    return b"".join(data)


def images(page: pikepdf.Page) -> list[pikepdf.Object]:
    xobjects = page.obj.Resources.get("/XObject", {})
    return [xobjects[k] for k in sorted(xobjects.keys()) if xobjects[k].Subtype == "/Image"]


def document(pages: list[PageResult]) -> DocumentResult:
    return DocumentResult(job_id="a" * 32, engine="tesseract", pages=pages, text="", markdown="")


def page_result(index: int, image: Image.Image, blocks: list[Block], **kw: object) -> PageResult:
    return PageResult(
        index=index, width=image.width, height=image.height, blocks=blocks, engine="tesseract", **kw
    )


def render(doc: DocumentResult, fmt: str, source: Path, media_type: str) -> Path:
    return render_archive(doc, fmt, source, media_type, source.with_name(f"result.{fmt}"))


def assert_words_inside(path: Path, pages: list[PageResult], points_per_pixel: float) -> None:
    """Every word pdftotext finds on `pages` sits inside a box of its page holding it."""
    boxes = [[(b.text, b.bbox) for b in page.blocks] for page in pages]
    count, outside = words_outside(path, boxes, points_per_pixel)
    assert count and not outside, outside


def test_a_png_page_keeps_its_pixels_and_reads_back_with_its_positions(tmp_path: Path) -> None:
    image, blocks = drawn_page(LINES)
    source = tmp_path / "input"
    source.write_bytes(encode(image, dpi=(200, 200)))
    page = page_result(1, image, blocks, dpi=200)

    pdf = render(document([page]), "pdf", source, "image/png")

    assert [" ".join(x.split()) for x in pdftotext(pdf).splitlines() if x.strip()] == LINES
    assert_words_inside(pdf, [page], 72 / 200)
    with pikepdf.open(pdf) as doc:
        (xobject,) = images(doc.pages[0])
        assert xobject.Filter == "/FlateDecode" and xobject.DecodeParms.Predictor == 15
        assert xobject.read_raw_bytes() == png_idat(
            source.read_bytes()
        )  # the PNG's own compressed pixels, not re-encoded
        assert doc.open_metadata().pdfa_status == "2B"
        assert float(doc.pages[0].mediabox[2]) == pytest.approx(image.width * 72 / 200, rel=1e-4)
    assert pdf.stat().st_size < source.stat().st_size + 20_000  # font, sRGB profile, XMP
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout
    assert re.search(r"OcrqGlyphLess\s+CID TrueType\s+Identity-H\s+yes\s+no\s+yes", fonts), fonts


def test_a_jpeg_page_is_embedded_byte_for_byte(tmp_path: Path) -> None:
    image, blocks = drawn_page(LINES[:1])
    source = tmp_path / "input"
    source.write_bytes(encode(image, "JPEG", quality=85))

    pdf = render(document([page_result(1, image, blocks)]), "pdf", source, "image/jpeg")

    with pikepdf.open(pdf) as doc:
        (xobject,) = images(doc.pages[0])
        assert xobject.Filter == "/DCTDecode"
        assert xobject.read_raw_bytes() == source.read_bytes()
    assert "Invoice number 20461" in pdftotext(pdf)


def test_a_page_the_engine_turned_comes_out_upright_and_aligned(tmp_path: Path) -> None:
    upright, blocks = drawn_page(LINES)
    scanned = upright.rotate(-90, expand=True)  # the scan lies a quarter turn clockwise
    source = tmp_path / "input"
    source.write_bytes(encode(scanned, dpi=(150, 150)))
    # the engine turned it 90 degrees counter-clockwise to read it: boxes are upright
    page = page_result(1, upright, blocks, dpi=150, rotation=90)

    pdf = render(document([page]), "pdf", source, "image/png")

    assert page_rotation(pdf) == 270
    assert [" ".join(x.split()) for x in pdftotext(pdf).splitlines() if x.strip()] == LINES
    assert_words_inside(pdf, [page], 72 / 150)
    subprocess.run(
        ["pdftoppm", "-r", "150", "-png", "-singlefile", str(pdf), str(tmp_path / "shown")],
        check=True,
    )
    shown = Image.open(tmp_path / "shown.png").convert("L")
    assert shown.size == upright.size

    def differing(expected: Image.Image) -> int:
        return sum(ImageChops.difference(shown, expected.convert("L")).histogram()[64:])

    # what resampling leaves (edges of glyphs) is a fraction of what a wrong turn gives
    assert differing(upright) * 5 < differing(upright.rotate(180))


def test_pdf_pages_are_kept_as_they_are_with_text_over_them(tmp_path: Path) -> None:
    """A scanned 3-page PDF (Pillow's, JPEG pages) read at 100 dpi, page 2 skipped by `pages`,
    and a born-digital page read from its own text layer, which gets no second text."""
    scans = [drawn_page([f"Scanned page {n} of three"]) for n in (1, 2, 3)]
    scanned = io.BytesIO()
    scans[0][0].save(
        scanned, "PDF", resolution=100, save_all=True, append_images=[s[0] for s in scans[1:]]
    )
    source = tmp_path / "input"
    with (
        pikepdf.open(scanned) as pdf,
        pikepdf.open(io.BytesIO(text_pdf([["Born digital text"]]))) as born,
    ):
        pdf.pages.append(born.pages[0])
        pdf.save(source)
    original_streams = []
    with pikepdf.open(source) as pdf:
        for page in pdf.pages:
            original_streams.append([xo.read_raw_bytes() for xo in images(page)])
    pages = [page_result(n, scans[n - 1][0], scans[n - 1][1], dpi=100) for n in (1, 3)]
    born_blocks = [Block(text="Born digital text", bbox=[200, 100, 520, 128])]
    pages.append(
        PageResult(
            index=4, width=827, height=1169, dpi=100, source="text_layer", blocks=born_blocks
        )
    )

    pdf = render(document(pages), "pdf", source, "application/pdf")

    texts = page_texts(pdf)
    assert texts[:3] == ["Scanned page 1 of three", "Scanned page 3 of three", "Born digital text"]
    assert_words_inside(pdf, pages[:2], 72 / 100)
    with pikepdf.open(pdf) as doc:
        assert len(doc.pages) == 3
        kept = [[xo.read_raw_bytes() for xo in images(p)] for p in doc.pages]
        assert kept == [original_streams[0], original_streams[2], original_streams[3]]
        assert doc.open_metadata().pdfa_status == ""  # a PDF upload is not claimed PDF/A


def test_hocr_parses_with_every_word_inside_its_line(tmp_path: Path) -> None:
    image, blocks = drawn_page(LINES)
    figure = Block(type="figure", text="", bbox=[900, 10, 1300, 60])
    vl_block = Block(
        type="table",
        text="<table><tr><td>Qty</td><td>Price</td></tr><tr><td>2</td><td>9.50</td></tr></table>",
        bbox=[60, 300, 600, 380],
    )
    page = page_result(1, image, [*blocks, figure, vl_block], dpi=200)

    hocr = etree.parse(str(render(document([page]), "hocr", tmp_path / "none", "image/png")))

    ns = {"h": "http://www.w3.org/1999/xhtml"}
    (page_div,) = hocr.findall(".//h:div[@class='ocr_page']", ns)
    assert page_div.get("title").startswith(f"bbox 0 0 {image.width} {image.height}")
    lines = hocr.findall(".//h:span[@class='ocr_line']", ns)
    assert [" ".join(w.text for w in line) for line in lines] == [*LINES, "Qty Price", "2 9.50"]
    for line in lines:
        lx0, ly0, lx1, ly1 = (int(v) for v in line.get("title").split()[1:5])
        for word in line:
            x0, y0, x1, y1 = (int(v) for v in word.get("title").split(";")[0].split()[1:5])
            assert lx0 <= x0 < x1 <= lx1 and ly0 <= y0 < y1 <= ly1
    assert len(hocr.findall(".//h:div[@class='ocr_photo']", ns)) == 1
    ids = [e.get("id") for e in hocr.iter() if e.get("id")]
    assert len(ids) == len(set(ids))


def hocr_spec_report(path: Path) -> list[str]:
    """hocr-spec's findings on a file (its checker, as its `hocr-spec` command runs it), but
    its DEBUG notes ("Unknown ocr-system: 'ocrq ...'": it knows only tesseract and OCRopus)."""
    report = HocrValidator("standard").validate(str(path))
    assert report.is_valid(), report.format("text")
    return [str(item) for item in report.items if item.level != "DEBUG"]


def test_hocr_names_the_languages_and_scripts_read_and_hocr_spec_has_no_warning(
    tmp_path: Path,
) -> None:
    image, blocks = drawn_page(LINES)
    read = page_result(1, image, blocks)
    latin = page_result(2, image, blocks).model_copy(update={"engine": "rapidocr"})
    failed = PageResult(
        index=3, width=0, height=0, error=PageError(code="image_too_large", message="too big")
    )
    cases = {
        "tesseract": ([read], ("ru en", "Cyrl Latn")),
        "rapidocr then tesseract": ([latin, read], ("en ru", "Latn Cyrl")),
        "a failed page adds nothing": ([read, failed], ("ru en", "Cyrl Latn")),
        "no page read": ([failed], ("und", "Zyyy")),
    }
    for name, (pages, (langs, scripts)) in cases.items():
        (tmp_path / name).mkdir()
        path = render(document(pages), "hocr", tmp_path / name / "none", "image/png")
        head = etree.parse(str(path)).getroot()
        meta = {m.get("name"): m.get("content") for m in head.iterfind(".//{*}meta")}
        assert (meta["ocr-langs"], meta["ocr-scripts"]) == (langs, scripts), name
        assert hocr_spec_report(path) == [], name


def test_alto_is_well_formed_v4_and_validates_against_the_schema(tmp_path: Path) -> None:
    pages = []
    for n in (1, 2):
        image, blocks = drawn_page(LINES)
        pages.append(page_result(n, image, blocks))

    alto = etree.parse(str(render(document(pages), "alto", tmp_path / "none", "image/png")))

    ns = {"a": ALTO_NS}
    assert [p.get("PHYSICAL_IMG_NR") for p in alto.findall(".//a:Page", ns)] == ["1", "2"]
    strings = alto.findall(".//a:Page[1]//a:String", ns)
    assert " ".join(s.get("CONTENT") for s in strings) == " ".join(LINES)
    assert alto.find(".//a:MeasurementUnit", ns).text == "pixel"
    alto_schema().assertValid(alto)
    root = alto.getroot()
    assert root.get("SCHEMAVERSION") == "4.4" and root.tag == f"{{{ALTO_NS}}}alto"


def test_the_glyphless_font_is_a_font_freetype_loads() -> None:
    from PIL import ImageFont

    loaded = ImageFont.truetype(io.BytesIO(glyphless_ttf()), 20)
    assert loaded.getname() == ("OcrqGlyphLess", "Regular")
    assert loaded.getlength("abcd") == 40  # 500 units a glyph: the PDF's /DW


def test_text_that_looks_like_markup_keeps_every_word_only_tables_are_parsed() -> None:
    plain = Block(text="if x < 5 and y > 3 then stop\na <b> &amp; c | d", bbox=[0, 0, 900, 80])
    table = Block(
        type="table",
        text="<table><tr><td>x &lt; 5</td><td>a|b</td></tr><tr><td>y > 3</td></tr></table>",
        bbox=[0, 100, 900, 180],
    )
    markdown_table = Block(
        type="table", text="| Qty | Price |\n|---|---|\n| 2 | 9.50 |", bbox=[0, 0, 9, 9]
    )

    assert plain_lines(plain) == ["if x < 5 and y > 3 then stop", "a <b> &amp; c | d"]
    assert plain_lines(table) == ["x < 5 a|b", "y > 3"]
    assert plain_lines(markdown_table) == ["Qty Price", "2 9.50"]
