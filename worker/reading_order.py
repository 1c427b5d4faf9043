"""Reading order from the page's geometry, for engines that give one box per text line.

rapidocr sorts its boxes by their tops with a fixed ~10 px row gap, so the lines of a ragged
paragraph or of two columns come out shuffled; Tesseract's own block order reads key-value
rows column by column. Here the boxes are ordered by where they sit instead:

- the page is cut into bands at the heights no box covers (top to bottom); neighbouring bands
  sharing a vertical gutter (a gap between boxes at the same x, which a few of a band's boxes
  may cross: a speck of a fax taken into a line's box) form one region;
- a region is read column by column only where its gutter runs through several lines on each
  side and the pieces are text: lines long enough to be running text when the two sides'
  rows line up (key-value and table rows line up too, and stay rows), any lines when they do
  not (two text blocks side by side); pieces are cut again the same way (XY-cut);
- what is left is a block of rows: boxes whose heights overlap by half or more (not a fixed
  pixel gap) and that do not overlap sideways, read left to right; a wide gap or a change of
  line height starts a new paragraph;
- a vertical line (a box much taller than wide: a document number printed up the margin) is
  a block of its own: in a margin of its own (the page's other boxes all on one side of it),
  the page's first or last column, as an XY-cut would find it; else read beside the lines
  it runs along: before them when they lie to its right, after them when to its left.

Each block gets its ids (`block`, `paragraph`, `line`) in reading order; boxes of one row share
their `line`, so page text joins them with a space (worker/results.py).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from shared.results import Block
from worker.engines.base import Recognition
from worker.results import page_markdown
from worker.vertical_lines import LineReader, read_vertical_lines

if TYPE_CHECKING:
    from PIL.Image import Image

Box = tuple[float, float, float, float]  # x0, y0, x1, y1, y down

# Two boxes are on one row when their heights overlap by this share of the lower one.
ROW_OVERLAP = 0.5
# ... and when they overlap sideways by less than this share of the narrower one.
ROW_SIDE_OVERLAP = 0.3
# A gutter between columns is at least this many line heights wide (box heights: rapidocr's
# boxes of a phone photo's 10 pt text are 28 px tall for a 16 px line pitch, and its gutter of
# 22 pt is 13-15 px).
GUTTER_HEIGHTS = 0.4
# A gutter may be crossed by this share of the boxes of a band (a speck of a fax taken into a
# line's box; rapidocr's boxes taller than the line pitch make one band of a whole column).
GUTTER_STRAYS = 0.2
# Columns whose rows line up (as key-value and table rows do) are cut apart only when each
# side's lines are running text: this many characters and this share of the column's width.
ALIGNED_TEXT_CHARS = 20
ALIGNED_TEXT_FILL = 0.55
# Share of one side's rows that have a box on the other side at the same height: "aligned".
ALIGNED_SHARE = 0.6
# A box this many times as tall as wide, and taller than this many line heights, is vertical.
VERTICAL_ASPECT = 2.0
VERTICAL_HEIGHTS = 1.5
# A new paragraph where the gap between rows exceeds this many times the block's usual gap
# (or, in a block of two rows, this share of a line height), or the line height changes by
# this ratio.
PARAGRAPH_GAP_RATIO = 1.6
PARAGRAPH_GAP_HEIGHTS = 0.8
PARAGRAPH_HEIGHT_RATIO = 1.35


@dataclass(frozen=True)
class Item:
    """One box to order: its place in the engine's list, its box and its length in characters."""

    index: int
    box: Box
    chars: int

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def cy(self) -> float:
        return (self.box[1] + self.box[3]) / 2


Row = list[Item]
Region = list[Row]  # a block: its rows top to bottom, each row's boxes left to right


def arrange_read(
    recognition: Recognition, image: Image, read_line: LineReader, mode: str
) -> Recognition:
    """A CPU engine's read of a page put in reading order (READING_ORDER=geometry): vertical
    lines read turned, blocks ordered and numbered, the markdown made of their paragraphs.
    READING_ORDER=engine: the read as the engine gave it."""
    if mode == "engine" or not recognition.blocks:
        return recognition
    blocks = read_vertical_lines(recognition.blocks, image, read_line)
    blocks = arrange_blocks(blocks, recognition.slope)
    return replace(recognition, blocks=blocks, markdown=page_markdown(blocks))


def arrange_blocks(blocks: Sequence[Block], slope: float = 0.0) -> list[Block]:
    """The blocks in reading order, each with its `block`, `paragraph` and `line` ids.

    `slope`: of the page's lines (dy/dx): each box is turned back with the page about its
    top-left corner (up by its middle's x times the slope, right by its middle's y times it),
    so that the boxes of one row of a page scanned askew sit level again (boxes are
    axis-aligned: 1.5 degrees over 800 px is 21 px, most of a line's height) and the gutter
    between two columns runs upright again (2 degrees over a 900 px column is 31 px, wider
    than the gutter of a phone photo's page).
    """
    items = []
    for n, b in enumerate(blocks):
        x0, y0, x1, y1 = b.bbox
        up, right = slope * (x0 + x1) / 2, slope * (y0 + y1) / 2
        box = (x0 + right, y0 - up, x1 + right, y1 - up)
        items.append(Item(n, box, len(b.text.strip())))
    ordered: list[Block] = []
    paragraph = line = 0
    for number, region in enumerate(order_regions(items)):
        for rows in paragraphs(region):
            for row in rows:
                for item in row:
                    update = {"block": number, "paragraph": paragraph, "line": line}
                    ordered.append(blocks[item.index].model_copy(update=update))
                line += 1
            paragraph += 1
    return ordered


def order_regions(items: Sequence[Item]) -> list[Region]:
    """The page's blocks in reading order, vertical lines placed beside the lines they run along."""
    if not items:
        return []
    flat_heights = [i.height for i in items if not _tall(i)]
    typical = statistics.median(flat_heights) if flat_heights else 0.0
    vertical = [i for i in items if _tall(i) and i.height > VERTICAL_HEIGHTS * typical]
    if len(vertical) > len(items) / 2:
        vertical = []  # a page lying sideways: page rotation's business, not ours
    flat = [i for i in items if i not in vertical]
    regions = [rows_of(block) for block in _cut(flat)]
    for item in sorted(vertical, key=lambda i: i.box[0]):
        regions = _with_vertical(item, regions, [i.box for i in flat])
    return regions


def _tall(item: Item) -> bool:
    return item.height > VERTICAL_ASPECT * item.width


def _with_vertical(item: Item, regions: list[Region], flat: list[Box]) -> list[Region]:
    """`regions` with a vertical line's block put where it is read.

    In a margin of its own (no other box above or below it, all of them to one side of it):
    the page's first column (left margin) or its last (right margin), whatever its height, as
    an XY-cut finds it. Else beside the rows it runs along: before the first of them that lies
    to its right (a column of numbers left of a code listing), else after the last of them;
    running along none, before the first row below its top. A block it lands in is cut there.
    """
    alone: Region = [[item]]
    if flat and not any(_x_overlap(item.box, box) > 0 for box in flat):
        if all(box[0] >= item.box[2] for box in flat):
            return [alone, *regions]
        if all(box[2] <= item.box[0] for box in flat):
            return [*regions, alone]
    places = [
        (n, k, _union([i.box for i in row]))
        for n, region in enumerate(regions)
        for k, row in enumerate(region)
    ]
    along = [(n, k, span) for n, k, span in places if _y_overlap(item.box, span) > 0]
    right = [(n, k) for n, k, span in along if span[0] >= item.box[0]]
    if right:
        n, k = right[0]
    elif along:
        n, k = along[-1][0], along[-1][1] + 1
    else:
        below = [(n, k) for n, k, span in places if span[1] > item.box[1]]
        if not below:
            return [*regions, alone]
        n, k = below[0]
    pieces = [regions[n][:k], alone, regions[n][k:]]
    return [*regions[:n], *(piece for piece in pieces if piece), *regions[n + 1 :]]


def _extent(region: Region) -> Box:
    return _union([i.box for row in region for i in row])


def _union(boxes: Sequence[Box]) -> Box:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _y_overlap(a: Box, b: Box) -> float:
    return min(a[3], b[3]) - max(a[1], b[1])


def _x_overlap(a: Box, b: Box) -> float:
    return min(a[2], b[2]) - max(a[0], b[0])


# -- blocks and columns -------------------------------------------------------------------------


def _cut(items: list[Item]) -> list[list[Item]]:
    """XY-cut: blocks of boxes in reading order (top to bottom, column by column)."""
    if len(items) <= 1:
        return [items] if items else []
    gutter_min = GUTTER_HEIGHTS * statistics.median(i.height for i in items)
    blocks: list[list[Item]] = []
    running: list[Item] = []  # bands read as rows, gathered into one block
    for group, gutters in _band_groups(_bands(items), gutter_min):
        pieces = _column_cut(group, gutters)
        if pieces is None:
            running.extend(group)
            continue
        if running:
            blocks.append(running)
            running = []
        for piece in pieces:  # each smaller than `items`: the recursion ends
            blocks.extend(_cut(piece))
    if running:
        blocks.append(running)
    return blocks


def _bands(items: list[Item]) -> list[list[Item]]:
    """The boxes in horizontal bands, top to bottom, cut where no box covers a height."""
    bands: list[list[Item]] = []
    bottom = float("-inf")
    for item in sorted(items, key=lambda i: i.box[1]):
        if bands and item.box[1] < bottom:
            bands[-1].append(item)
            bottom = max(bottom, item.box[3])
        else:
            bands.append([item])
            bottom = item.box[3]
    return bands


Interval = tuple[float, float]


def _gutters(items: list[Item], width: float) -> list[Interval]:
    """The gaps at least `width` wide between boxes, seen from above (inside the boxes' span),
    where at most GUTTER_STRAYS of the boxes may cross (a line's box run into the gutter by a
    speck of a fax, in a band of many lines)."""
    strays = int(GUTTER_STRAYS * len(items))
    edges = sorted([(i.box[0], 1) for i in items] + [(i.box[2], -1) for i in items])
    gaps = []
    covered, start, seen = 0, None, False
    for x, step in edges:
        covered += step
        if covered > strays:
            if start is not None and seen and x - start >= width:
                gaps.append((start, x))
            start, seen = None, True
        elif start is None:
            start = x
    return gaps


def _common(a: list[Interval], b: list[Interval], width: float) -> list[Interval]:
    found = []
    for a0, a1 in a:
        for b0, b1 in b:
            lo, hi = max(a0, b0), min(a1, b1)
            if hi - lo >= width:
                found.append((lo, hi))
    return found


def _band_groups(bands: list[list[Item]], width: float) -> list[tuple[list[Item], list[Interval]]]:
    """Neighbouring bands that share a gutter, as one group with the gutters they share."""
    groups: list[tuple[list[Item], list[Interval]]] = []
    for band in bands:
        gutters = _gutters(band, width)
        if groups and groups[-1][1] and (shared := _common(groups[-1][1], gutters, width)):
            groups[-1] = (groups[-1][0] + band, shared)
        else:
            groups.append((list(band), gutters))
    return groups


def _column_cut(group: list[Item], gutters: list[Interval]) -> tuple[list[Item], ...] | None:
    """The group's two sides of its widest gutter that makes columns, or None (read as rows)."""
    for lo, hi in sorted(gutters, key=lambda g: g[0] - g[1]):
        middle = (lo + hi) / 2
        left = [i for i in group if i.box[0] + i.box[2] < 2 * middle]
        right = [i for i in group if i.box[0] + i.box[2] >= 2 * middle]
        if _columns(left, right):
            return left, right
    return None


def _columns(left: list[Item], right: list[Item]) -> bool:
    """Two sides of a gutter read one after the other (not as rows): each side is several
    lines, and, where their rows line up, each side's lines are running text."""
    if len(rows_of(left)) < 2 or len(rows_of(right)) < 2:
        return False
    if not _aligned(left, right):
        return True
    return _running_text(left) and _running_text(right)


def _aligned(left: list[Item], right: list[Item]) -> bool:
    """Most rows of one side have a box of the other side at the same height."""

    def share(side: list[Item], other: list[Item]) -> float:
        paired = sum(1 for i in side if any(_same_row(i, o) for o in other))
        return paired / len(side)

    return max(share(left, right), share(right, left)) >= ALIGNED_SHARE


def _running_text(side: list[Item]) -> bool:
    span = _union([i.box for i in side])
    width = span[2] - span[0]
    chars = statistics.median(i.chars for i in side)
    fill = statistics.median(i.width for i in side) / width if width > 0 else 0.0
    return chars >= ALIGNED_TEXT_CHARS and fill >= ALIGNED_TEXT_FILL


# -- rows and paragraphs ------------------------------------------------------------------------


def _same_row(a: Item, b: Item) -> bool:
    return _y_overlap(a.box, b.box) >= ROW_OVERLAP * min(a.height, b.height)


def rows_of(items: Sequence[Item]) -> list[Row]:
    """Boxes grouped into rows by how much their heights overlap, top to bottom, each row left
    to right. Boxes that overlap sideways are never one row (lines stacked in one column)."""
    rows: list[Row] = []
    for item in sorted(items, key=lambda i: (i.cy, i.box[0])):
        best: Row | None = None
        best_overlap = 0.0
        for row in rows[-8:]:  # rows come in order of their middles: the match is a recent one
            if any(
                _x_overlap(item.box, m.box) > ROW_SIDE_OVERLAP * min(item.width, m.width)
                for m in row
            ):
                continue
            overlap = max(
                _y_overlap(item.box, m.box) / max(min(item.height, m.height), 1e-6) for m in row
            )
            if overlap >= ROW_OVERLAP and overlap > best_overlap:
                best, best_overlap = row, overlap
        if best is None:
            rows.append([item])
        else:
            best.append(item)
    for row in rows:
        row.sort(key=lambda i: i.box[0])
    rows.sort(key=lambda row: statistics.fmean(i.cy for i in row))
    return rows


def paragraphs(region: Region) -> list[list[Row]]:
    """A block's rows cut into paragraphs at wide gaps and at changes of line height."""
    if not region:
        return []
    bands = [_union([i.box for i in row]) for row in region]
    heights = [statistics.median(i.height for i in row) for row in region]
    gaps = [max(0.0, b[1] - a[3]) for a, b in itertools.pairwise(bands)]
    usual = statistics.median(gaps) if len(gaps) >= 2 else None
    found: list[list[Row]] = [[region[0]]]
    for n, gap in enumerate(gaps):
        height = max(heights[n], heights[n + 1])
        if usual is not None:
            wide = gap > max(PARAGRAPH_GAP_RATIO * usual, 0.25 * height)
        else:
            wide = gap > PARAGRAPH_GAP_HEIGHTS * height
        ratio = max(heights[n], heights[n + 1]) / max(min(heights[n], heights[n + 1]), 1e-6)
        if wide or ratio > PARAGRAPH_HEIGHT_RATIO:
            found.append([])
        found[-1].append(region[n + 1])
    return found
