"""ALTO v4 (4.4) XML of a stored result: pages, text blocks, lines and strings in pixels."""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO
from xml.sax.saxutils import escape, quoteattr

from api.archives.layout import Box, page_error_words, page_regions
from shared.results import PageResult

ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
_HEAD = f"""<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="{ALTO_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
 xsi:schemaLocation="{ALTO_NS} http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
 SCHEMAVERSION="4.4">
<Description>
<MeasurementUnit>pixel</MeasurementUnit>
<sourceImageInformation><fileName>{{file}}</fileName></sourceImageInformation>
<Processing ID="ocrq"><processingSoftware><softwareName>ocrq</softwareName>
<softwareVersion>{{engine}}</softwareVersion></processingSoftware></Processing>
</Description>
<Layout>
"""


def _pos(box: Box) -> str:
    x0, y0, x1, y1 = (round(v) for v in box)
    return f'HPOS="{x0}" VPOS="{y0}" WIDTH="{x1 - x0}" HEIGHT="{y1 - y0}"'


def write_alto(out: BinaryIO, job_id: str, engine: str, pages: Iterable[PageResult]) -> None:
    """Write the whole document to `out`, one page at a time."""
    out.write(_HEAD.format(file=escape(f"job {job_id}"), engine=escape(engine)).encode())
    for page in pages:
        out.write(_page(page).encode())
    out.write(b"</Layout>\n</alto>\n")


def _failed_page(page: PageResult) -> str:
    """An empty page for one that could not be read: its number, its size when known, why in
    QUALITY_DETAIL (ALTO's free words on a page's state)."""
    n = page.index
    size = f' WIDTH="{page.width}" HEIGHT="{page.height}"' if page.width and page.height else ""
    why = quoteattr(page_error_words(page))
    return f'<Page ID="p{n}" PHYSICAL_IMG_NR="{n}"{size} QUALITY_DETAIL={why}/>\n'


def _page(page: PageResult) -> str:
    if page.error is not None:
        return _failed_page(page)
    n = page.index
    whole = (0, 0, page.width, page.height)
    parts = [
        f'<Page ID="p{n}" PHYSICAL_IMG_NR="{n}" WIDTH="{page.width}" HEIGHT="{page.height}">\n',
        f"<PrintSpace {_pos(whole)}>\n",
    ]
    line_no = word_no = 0
    for b, region in enumerate(page_regions(page), start=1):
        if region.is_picture:
            parts.append(f'<Illustration ID="p{n}_i{b}" {_pos(region.box)}/>\n')
            continue
        if not region.lines:
            continue
        parts.append(f'<TextBlock ID="p{n}_b{b}" {_pos(region.box)}>\n')
        wc = f' WC="{region.score:.3f}"' if region.score is not None else ""
        for line in region.lines:
            line_no += 1
            parts.append(f'<TextLine ID="p{n}_l{line_no}" {_pos(line.box)}>')
            strings = []
            for word in line.words:
                word_no += 1
                strings.append(
                    f'<String ID="p{n}_w{word_no}" CONTENT={quoteattr(word.text)}'
                    f" {_pos(word.box)}{wc}/>"
                )
            parts.append("<SP/>".join(strings) + "</TextLine>\n")
        parts.append("</TextBlock>\n")
    parts.append("</PrintSpace>\n</Page>\n")
    return "".join(parts)
