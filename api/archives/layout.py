"""Where each word of a stored result sits: the one geometry hOCR, ALTO and the PDF text share.

Engines give boxes at different grains (see docs/results.md, "Archive formats"): `tesseract` and
`rapidocr` one box per text line, `paddleocr-vl` one box per layout block (a paragraph, a
table, a formula), a PDF's own text layer (`text_layer=use`) one box per text run. None gives
word boxes today, so words are placed inside their line's box by their share of its characters
(spaces included): exact at the line's ends, within a character or two inside it. A block's
text lines are spread evenly over the block's height.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

from shared.results import Block, PageResult

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in upright page pixels, y down

# Block types that hold no text to place (a figure's text, if any, is its caption block's).
PICTURE_TYPES = frozenset({"figure", "image", "seal", "chart"})
_HTML_TABLE = re.compile(r"<\s*(table|tr|td|th)\b", re.I)  # a VL table block's markup
# characters XML 1.0 cannot carry (and no PDF reader shows)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")  # a markdown table's |---|---| line


@dataclass
class Word:
    text: str
    box: Box


@dataclass
class Line:
    box: Box
    words: list[Word]

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


@dataclass
class Region:
    """One block of the result: its type, box, confidence and the text lines placed in it."""

    type: str
    box: Box
    score: float | None
    lines: list[Line] = field(default_factory=list)

    @property
    def is_picture(self) -> bool:
        return self.type in PICTURE_TYPES


def clamp_box(bbox: list[float], width: float, height: float) -> Box | None:
    """The bbox inside the page, corners in order; None when nothing of it is left."""
    x0, y0, x1, y1 = bbox
    x0, x1 = sorted((min(max(x0, 0.0), width), min(max(x1, 0.0), width)))
    y0, y1 = sorted((min(max(y0, 0.0), height), min(max(y1, 0.0), height)))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return (x0, y0, x1, y1)


def plain_lines(block: Block) -> list[str]:
    """The block's text as lines of words, exactly as the text result carries them.

    Only a table block holds markup (PaddleOCR-VL writes tables as HTML, or markdown rows):
    its cells become words, parsed, never by a pattern that would eat `x < 5 and y > 3`."""
    text = _CONTROL.sub(" ", block.text)
    if block.type != "table":
        return _words_by_line(text)
    if _HTML_TABLE.search(text):
        return _words_by_line(_html_text(text))
    lines = []  # a markdown table: | cells | apart, |---| rules dropped
    for raw in text.splitlines():
        if _TABLE_RULE.match(raw):
            continue
        if line := " ".join(raw.replace("|", " ").split()):
            lines.append(line)
    return lines


def _words_by_line(text: str) -> list[str]:
    """Each non-blank line with its words one space apart."""
    return [line for raw in text.splitlines() if (line := " ".join(raw.split()))]


class _TableText(HTMLParser):
    """The text of an HTML table: a line per row (or paragraph, item), cells apart."""

    _BREAKS = frozenset({"tr", "p", "div", "li", "br", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.parts.append("\n" if tag in self._BREAKS else " ")

    def handle_endtag(self, tag: str) -> None:
        self.parts.append("\n" if tag in self._BREAKS else " ")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _html_text(markup: str) -> str:
    parser = _TableText()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def words_in_line(text: str, box: Box) -> list[Word]:
    """The line's words, each given the share of the box its characters take."""
    x0, y0, x1, y1 = box
    per_char = (x1 - x0) / max(len(text), 1)
    words = []
    for match in re.finditer(r"\S+", text):
        words.append(
            Word(
                match.group(), (x0 + match.start() * per_char, y0, x0 + match.end() * per_char, y1)
            )
        )
    return words


def page_regions(page: PageResult) -> Iterator[Region]:
    """The page's blocks in reading order, each with its lines and words placed."""
    for block in page.blocks:
        box = clamp_box(block.bbox, page.width, page.height)
        if box is None:
            continue
        region = Region(block.type, box, block.score)
        if not region.is_picture:
            texts = plain_lines(block)
            x0, y0, x1, y1 = box
            step = (y1 - y0) / max(len(texts), 1)
            for i, text in enumerate(texts):
                line_box = (x0, y0 + i * step, x1, y0 + (i + 1) * step)
                region.lines.append(Line(line_box, words_in_line(text, line_box)))
        yield region


def page_error_words(page: PageResult) -> str:
    """Why a failed page was not read, in one line an XML attribute or comment can carry."""
    assert page.error is not None
    message = " ".join(_CONTROL.sub(" ", page.error.message).split()).replace("--", "- -")
    return f"page {page.index} could not be read: {page.error.code}: {message}".rstrip(": ")


def precision(page: PageResult) -> str:
    """How exact the page's boxes are: `line` (one box per text line) or `block`."""
    if page.source == "text_layer":
        return "line"
    if page.engine and page.engine.startswith("paddleocr-vl"):
        return "block"
    return "line"
