"""Vertical lines (a document number printed up the margin) read turned, as one line.

Read as it lies, such a line comes out as one tall box of garbage (rapidocr's detector finds
the line, its recognizer reads it sideways) or as a run of one-character lines stacked in a
column (Tesseract). Either is cropped from the page, turned by 90 degrees both ways, read as
one line by the engine, and the better-scored read replaces the boxes it covers (a tall box
only when the engine is surer of the turned read than of the box's own): one block with the
line's upright-page box. A page whose lines mostly stand tall is not touched: it lies
sideways, and page rotation turns it whole (worker/engines/base.py `mostly_tall`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from shared.results import Block
from worker.engines.base import mostly_tall

if TYPE_CHECKING:
    from PIL.Image import Image

# Reads one line image: (its text, the engine's confidence 0..1).
LineReader = Callable[["Image"], tuple[str, float]]

# A box at least this many times as tall as wide, and this many line heights tall, is a
# vertical line (several characters, not a tall letter).
VERTICAL_ASPECT = 2.5
VERTICAL_HEIGHTS = 2.0
# A run of at least this many boxes of at most SHORT_CHARS characters stacked in one column
# (each under the one before, closer than GAP_HEIGHTS of its height: letters of a word, not
# the rows of a table's column of short numbers) is a vertical line read a character at a time.
MIN_RUN = 4
SHORT_CHARS = 2
GAP_HEIGHTS = 0.6
# The turned read replaces the boxes only when the engine is at least this sure of it (of a
# run of letters, RUN_SCORE: its boxes may have been a column of short cells after all).
MIN_SCORE = 0.5
RUN_SCORE = 0.75
# Room around the crop, in widths of the line: the box can be tight on the letters. Then a
# border of the background's colour, as wide as BORDER_WIDTHS lines: Tesseract misreads a
# line cropped close (Cyrillic `OOC` for `DOC` with 0.2 of room on the rendered margin
# numbers; right with 0.5 and more), and the page's room may hold the neighbouring text.
PAD_WIDTHS = 0.15
BORDER_WIDTHS = 0.5


def _size(box: Sequence[float]) -> tuple[float, float]:
    return box[2] - box[0], box[3] - box[1]


def vertical_runs(blocks: Sequence[Block]) -> list[list[int]]:
    """Indices of the boxes making up each vertical line: a tall box alone, or a run of short
    boxes stacked in one column."""
    if not blocks or mostly_tall([b.bbox for b in blocks]):
        return []
    heights = [_size(b.bbox)[1] for b in blocks if _size(b.bbox)[1] <= _size(b.bbox)[0]]
    typical = statistics.median(heights) if heights else 0.0
    runs = []
    for n, block in enumerate(blocks):
        width, height = _size(block.bbox)
        if height >= VERTICAL_ASPECT * width and height >= VERTICAL_HEIGHTS * typical:
            runs.append([n])
    short = [
        n
        for n, b in enumerate(blocks)
        if len("".join(b.text.split())) <= SHORT_CHARS and [n] not in runs
    ]
    stacks: list[list[int]] = []
    for n in sorted(short, key=lambda k: (blocks[k].bbox[1], blocks[k].bbox[0])):
        box = blocks[n].bbox
        for stack in stacks:
            last = blocks[stack[-1]].bbox
            side = min(box[2], last[2]) - max(box[0], last[0])
            gap = box[1] - last[3]
            if side >= 0.5 * min(_size(box)[0], _size(last)[0]) and (
                -0.2 * _size(box)[1] <= gap <= GAP_HEIGHTS * max(_size(box)[1], _size(last)[1])
            ):
                stack.append(n)
                break
        else:
            stacks.append([n])
    for stack in stacks:
        width, height = _size(_union([blocks[k].bbox for k in stack]))
        if len(stack) >= MIN_RUN and height >= VERTICAL_ASPECT * width:
            runs.append(stack)
    return runs


def _union(boxes: Sequence[Sequence[float]]) -> list[float]:
    return [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]


def read_turned(image: Image, box: Sequence[float], read_line: LineReader) -> tuple[str, float]:
    """The better-scored read of the crop `box` turned 90 degrees one way and the other."""
    width = box[2] - box[0]
    pad = PAD_WIDTHS * width
    crop = image.crop(
        (
            max(0, round(box[0] - pad)),
            max(0, round(box[1] - pad)),
            min(image.width, round(box[2] + pad)),
            min(image.height, round(box[3] + pad)),
        )
    )
    from PIL import ImageOps

    background = crop.getpixel((0, 0))  # a corner of the room around the line
    fill = background if isinstance(background, tuple | int) else "white"
    crop = ImageOps.expand(crop, round(BORDER_WIDTHS * width), fill=fill)
    reads = [read_line(crop.rotate(angle, expand=True)) for angle in (90, 270)]
    return max(reads, key=lambda read: read[1])


def read_vertical_lines(
    blocks: Sequence[Block], image: Image, read_line: LineReader
) -> list[Block]:
    """`blocks` with each vertical line read turned, as one block where its first box was."""
    replaced: dict[int, Block | None] = {}
    for run in vertical_runs(blocks):
        box = _union([blocks[n].bbox for n in run])
        text, score = read_turned(image, box, read_line)
        text = " ".join(text.split())
        # A tall box read right already (Tesseract turns a clean vertical line itself) stays
        # unless the turned read is surer; a run of one-character lines is no read at all.
        floor = max(MIN_SCORE, blocks[run[0]].score or 0.0) if len(run) == 1 else RUN_SCORE
        if not text or score <= floor:
            continue
        replaced.update(dict.fromkeys(run))
        replaced[run[0]] = Block(type="text", text=text, bbox=box, score=round(score, 5))
    kept: list[Block] = []
    for n, block in enumerate(blocks):
        if n not in replaced:
            kept.append(block)
        elif (new := replaced[n]) is not None:
            kept.append(new)
    return kept
