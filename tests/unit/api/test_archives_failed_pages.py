"""A result with a failed page (on_page_error=continue) in every archive format: the page keeps
its place, so page N of the archive is page N of the document, and says why where it can.
Read back by poppler, pikepdf, lxml and the ALTO XSD, as tests/unit/api/test_archives.py."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pikepdf
import pytest
from lxml import etree
from PIL import Image

from api.archives.alto import ALTO_NS
from shared.error_codes import ErrorCode
from shared.results import PageError, PageResult
from testkit.pages import bare_pdf, encode
from testkit.poppler import page_texts
from tests.schemas import alto_schema
from tests.unit.api.test_archives import document, drawn_page, images, page_result, render

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils")

HOCR_NS = {"h": "http://www.w3.org/1999/xhtml"}


def failed(index: int, code: ErrorCode, message: str, width: int = 0, height: int = 0):
    """A page that could not be read, as the worker records it."""
    return PageResult(
        index=index,
        width=width,
        height=height,
        error=PageError(code=code, message=message),
    )


def three_pages_middle_failed() -> list[PageResult]:
    pages = []
    for n in (1, 3):
        image, blocks = drawn_page([f"Readable page {n}"])
        pages.append(page_result(n, image, blocks, dpi=100))
    middle = failed(2, ErrorCode.image_too_large, "image has more than 120000000 pixels -- huge")
    return [pages[0], middle, pages[1]]


def test_hocr_has_an_empty_page_with_its_number_and_why(tmp_path: Path) -> None:
    pages = three_pages_middle_failed()

    hocr = etree.parse(str(render(document(pages), "hocr", tmp_path / "none", "image/png")))

    divs = hocr.findall(".//h:div[@class='ocr_page']", HOCR_NS)
    assert [d.get("id") for d in divs] == ["page_1", "page_2", "page_3"]
    assert [d.get("title").split("ppageno ")[1][0] for d in divs] == ["0", "1", "2"]
    middle = divs[1]
    assert middle.get("title") == "ppageno 1"  # no size known
    assert middle.get("data-ocrq-error") == "image_too_large"
    assert len(middle) == 0 or all(not isinstance(c.tag, str) for c in middle)  # no element
    (comment,) = [c for c in middle if isinstance(c, etree._Comment)]
    assert "page 2 could not be read: image_too_large" in comment.text
    lines = hocr.findall(".//h:span[@class='ocr_line']", HOCR_NS)
    assert [" ".join(w.text for w in line) for line in lines] == [
        "Readable page 1",
        "Readable page 3",
    ]
    meta = hocr.find(".//h:meta[@name='ocr-number-of-pages']", HOCR_NS)
    assert meta.get("content") == "3"


def test_hocr_failed_page_with_a_known_size_keeps_its_bbox(tmp_path: Path) -> None:
    page = failed(1, ErrorCode.recognition_failed, "engine crashed", width=800, height=600)

    hocr = etree.parse(str(render(document([page]), "hocr", tmp_path / "none", "image/png")))

    (div,) = hocr.findall(".//h:div[@class='ocr_page']", HOCR_NS)
    assert div.get("title") == "bbox 0 0 800 600; ppageno 0"
    assert div.get("data-ocrq-error") == "recognition_failed"


def test_alto_has_an_empty_page_with_its_number_and_validates(tmp_path: Path) -> None:
    pages = three_pages_middle_failed()
    pages[1] = failed(2, ErrorCode.pdf_corrupt, 'broken <object> "7 0 R"', width=1654, height=2339)

    alto = etree.parse(str(render(document(pages), "alto", tmp_path / "none", "image/png")))

    alto_schema().assertValid(alto)
    ns = {"a": ALTO_NS}
    found = alto.findall(".//a:Page", ns)
    assert [p.get("PHYSICAL_IMG_NR") for p in found] == ["1", "2", "3"]
    middle = found[1]
    assert len(middle) == 0  # no PrintSpace, no text
    assert (middle.get("WIDTH"), middle.get("HEIGHT")) == ("1654", "2339")
    assert middle.get("QUALITY_DETAIL") == (
        'page 2 could not be read: pdf_corrupt: broken <object> "7 0 R"'
    )
    assert [s.get("CONTENT") for s in alto.findall(".//a:String", ns)] == [
        "Readable",
        "page",
        "1",
        "Readable",
        "page",
        "3",
    ]


def test_alto_failed_page_of_unknown_size_validates(tmp_path: Path) -> None:
    page = failed(1, ErrorCode.invalid_image, "")

    alto = etree.parse(str(render(document([page]), "alto", tmp_path / "none", "image/png")))

    alto_schema().assertValid(alto)
    (only,) = alto.findall(".//a:Page", {"a": ALTO_NS})
    assert only.get("WIDTH") is None
    assert only.get("QUALITY_DETAIL") == "page 1 could not be read: invalid_image"


def test_pdf_of_a_pdf_keeps_the_failed_page_in_its_place_without_text(tmp_path: Path) -> None:
    scans = [drawn_page([f"Scanned page {n} of three"]) for n in (1, 2, 3)]
    buffer = io.BytesIO()
    scans[0][0].save(
        buffer, "PDF", resolution=100, save_all=True, append_images=[s[0] for s in scans[1:]]
    )
    source = tmp_path / "input"
    source.write_bytes(buffer.getvalue())
    pages = [page_result(n, scans[n - 1][0], scans[n - 1][1], dpi=100) for n in (1, 3)]
    pages.insert(1, failed(2, ErrorCode.recognition_failed, "the engine gave up"))

    pdf = render(document(pages), "pdf", source, "application/pdf")

    assert page_texts(pdf) == ["Scanned page 1 of three", "", "Scanned page 3 of three"]
    with pikepdf.open(pdf) as doc, pikepdf.open(source) as original:
        assert len(doc.pages) == 3
        # the failed page is the source's page 2, as it was: same picture, no text added
        kept = [xobject.read_raw_bytes() for xobject in images(doc.pages[1])]
        assert kept == [xobject.read_raw_bytes() for xobject in images(original.pages[1])]


def test_pdf_page_whose_boxes_cannot_be_read_becomes_a_blank_page_in_its_place(
    tmp_path: Path,
) -> None:
    scans = [drawn_page([f"Scanned page {n} of two"]) for n in (1, 2)]
    buffer = io.BytesIO()
    scans[0][0].save(buffer, "PDF", resolution=100, save_all=True, append_images=[scans[1][0]])
    source = tmp_path / "input"
    with pikepdf.open(io.BytesIO(buffer.getvalue())) as broken:
        broken.pages[0].obj.MediaBox = pikepdf.Array([0, 0, 0, 0])  # a page with no size
        broken.save(source)
    pages = [
        failed(1, ErrorCode.pdf_corrupt, "page 1 has no size"),
        page_result(2, scans[1][0], scans[1][1], dpi=100),
    ]

    pdf = render(document(pages), "pdf", source, "application/pdf")

    assert page_texts(pdf) == ["", "Scanned page 2 of two"]
    with pikepdf.open(pdf) as doc:
        assert len(doc.pages) == 2
        first, second = (tuple(float(v) for v in p.mediabox) for p in doc.pages)
        assert first == second  # the size of its neighbour
        assert "/XObject" not in doc.pages[0].obj.Resources


def test_pdf_of_a_tiff_keeps_every_frame_and_a_blank_for_one_too_large(tmp_path: Path) -> None:
    """Frame 2 failed and still decodes: it is shown as it is. Frame 3 failed with more pixels
    than a page may have (as the worker refused it): a blank page of its size stands in."""
    frames = [drawn_page([f"Frame {n} text"]) for n in (1, 2)]
    huge = Image.new("1", (12_000, 10_001), 1)  # 120 MP and a row (bilevel: 15 MB here)
    source = tmp_path / "input"
    source.write_bytes(
        encode(
            frames[0][0],
            "TIFF",
            save_all=True,
            append_images=[frames[1][0], huge],
            dpi=(200, 200),
            compression="tiff_deflate",
        )
    )
    pages = [
        page_result(1, frames[0][0], frames[0][1], dpi=200),
        failed(2, ErrorCode.recognition_failed, "the engine gave up"),
        failed(3, ErrorCode.image_too_large, "image has more than 120000000 pixels"),
    ]

    pdf = render(document(pages), "pdf", source, "image/tiff")

    assert page_texts(pdf) == ["Frame 1 text", "", ""]
    with pikepdf.open(pdf) as doc:
        assert len(doc.pages) == 3
        assert "/XObject" in doc.pages[1].obj.Resources  # frame 2, as it is
        assert "/XObject" not in doc.pages[2].obj.Resources  # blank: never decoded
        width, height = (float(v) for v in doc.pages[2].mediabox[2:])
        assert (width, height) == pytest.approx((12_000 * 72 / 200, 10_001 * 72 / 200), rel=1e-3)


def test_pdf_pages_its_page_tree_lacks_become_blank_pages_at_the_end(tmp_path: Path) -> None:
    """A /Count that claims 3 pages over one: pdfium counts 3, the pages past the tree failed;
    the PDF still has 3 pages, the missing two blank, of the real page's size."""
    source = tmp_path / "input"
    source.write_bytes(bare_pdf(3, size_pt=(300, 400)))
    pages = [
        PageResult(index=1, width=833, height=1111, dpi=200),  # read: nothing on it
        failed(2, ErrorCode.pdf_corrupt, "page 2 cannot be loaded"),
        failed(3, ErrorCode.pdf_corrupt, "page 3 cannot be loaded"),
    ]

    pdf = render(document(pages), "pdf", source, "application/pdf")

    with pikepdf.open(pdf) as doc:
        assert [tuple(float(v) for v in p.mediabox) for p in doc.pages] == [(0, 0, 300, 400)] * 3
    assert page_texts(pdf) == ["", "", ""]
