"""hOCR 1.2 (XHTML) of a stored result: pages, blocks, lines and words with their pixel boxes."""

from __future__ import annotations

from typing import BinaryIO
from xml.sax.saxutils import escape, quoteattr

from api.archives.layout import Box, page_error_words, page_regions
from shared.results import PageResult

_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
 "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="und" lang="und">
<head>
<title>{title}</title>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8"/>
<meta name="ocr-system" content="ocrq {engine}"/>
<meta name="ocr-capabilities" content="ocr_page ocr_carea ocr_par ocr_line ocrx_word ocr_photo"/>
<meta name="ocr-number-of-pages" content="{pages}"/>
<meta name="ocr-langs" content="{langs}"/>
<meta name="ocr-scripts" content="{scripts}"/>
</head>
<body>
"""


# What each engine is set up to read (docs/engines.md): languages as ISO 639-1 codes and scripts
# as ISO 15924 codes, the forms the hOCR spec asks for in ocr-langs and ocr-scripts.
ENGINE_READS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "rapidocr": (("en",), ("Latn",)),  # its Latin recognition model
    "tesseract": (("ru", "en"), ("Cyrl", "Latn")),  # rus+eng
    "paddleocr-vl": (("ru", "en"), ("Cyrl", "Latn")),  # what the service routes to it
}
UNDETERMINED = (("und",), ("Zyyy",))  # ISO 639-2 "undetermined", ISO 15924 "undetermined script"


def languages_read(pages: list[PageResult]) -> tuple[str, str]:
    """ocr-langs and ocr-scripts: what the engines that read the document's pages read, in
    the order met; undetermined when no page was read (all failed, or text layers only)."""
    langs: dict[str, None] = {}
    scripts: dict[str, None] = {}
    for page in pages:
        if page.error is None and page.source == "ocr" and page.engine in ENGINE_READS:
            page_langs, page_scripts = ENGINE_READS[page.engine]
            langs |= dict.fromkeys(page_langs)
            scripts |= dict.fromkeys(page_scripts)
    if not langs:
        return " ".join(UNDETERMINED[0]), " ".join(UNDETERMINED[1])
    return " ".join(langs), " ".join(scripts)


def _bbox(box: Box) -> str:
    return "bbox " + " ".join(str(round(v)) for v in box)


def write_hocr(out: BinaryIO, job_id: str, engine: str, pages: list[PageResult]) -> None:
    """Write the whole document to `out`, one page at a time."""
    langs, scripts = languages_read(pages)
    head = _HEAD.format(
        title=escape(f"ocrq job {job_id}"),
        engine=escape(engine),
        pages=len(pages),
        langs=langs,
        scripts=scripts,
    )
    out.write(head.encode())
    for page in pages:
        out.write(_page(page).encode())
    out.write(b"</body>\n</html>\n")


def _failed_page(page: PageResult) -> str:
    """An empty page for one that could not be read: its number, its size when known, its code
    in a `data-ocrq-error` attribute (hocr-spec refuses `x_` properties it does not know), and
    code and message in a comment."""
    assert page.error is not None
    n = page.index
    title = f"ppageno {n - 1}"
    if page.width > 0 and page.height > 0:
        title = f"{_bbox((0, 0, page.width, page.height))}; {title}"
    why = page_error_words(page)
    code = quoteattr(page.error.code)
    return (
        f"<div class='ocr_page' id='page_{n}' title={quoteattr(title)} data-ocrq-error={code}>"
        f"<!-- {why} --></div>\n"
    )


def _page(page: PageResult) -> str:
    if page.error is not None:
        return _failed_page(page)
    n = page.index
    title = f"{_bbox((0, 0, page.width, page.height))}; ppageno {n - 1}"
    if page.dpi:
        title += f"; scan_res {page.dpi} {page.dpi}"
    parts = [f"<div class='ocr_page' id='page_{n}' title={quoteattr(title)}>\n"]
    line_no = word_no = 0
    for b, region in enumerate(page_regions(page), start=1):
        if region.is_picture:
            parts.append(
                f" <div class='ocr_photo' id='photo_{n}_{b}' title='{_bbox(region.box)}'></div>\n"
            )
            continue
        if not region.lines:
            continue
        parts.append(f" <div class='ocr_carea' id='block_{n}_{b}' title='{_bbox(region.box)}'>\n")
        parts.append(f"  <p class='ocr_par' id='par_{n}_{b}' title='{_bbox(region.box)}'>\n")
        conf = f"; x_wconf {round(region.score * 100)}" if region.score is not None else ""
        for line in region.lines:
            line_no += 1
            parts.append(
                f"   <span class='ocr_line' id='line_{n}_{line_no}' title='{_bbox(line.box)}'>"
            )
            spans = []
            for word in line.words:
                word_no += 1
                spans.append(
                    f"<span class='ocrx_word' id='word_{n}_{word_no}'"
                    f" title='{_bbox(word.box)}{conf}'>{escape(word.text)}</span>"
                )
            parts.append(" ".join(spans) + "</span>\n")
        parts.append("  </p>\n </div>\n")
    parts.append("</div>\n")
    return "".join(parts)
