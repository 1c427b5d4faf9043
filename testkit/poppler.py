"""Read a PDF back with poppler-utils (Debian's pdftotext, pdfinfo): its text and word boxes."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

_WORD = re.compile(r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*)</word>')
Box = Sequence[float]


def pdftotext(path: Path, *args: str) -> str:
    return subprocess.run(
        ["pdftotext", *args, str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def page_texts(path: Path) -> list[str]:
    """Each page's text, whitespace collapsed (pdftotext ends a page with a form feed)."""
    return [" ".join(t.split()) for t in pdftotext(path).split("\f")][:-1]


def words_with_boxes(path: Path) -> list[tuple[int, str, tuple[float, ...]]]:
    """(page, word, (xMin, yMin, xMax, yMax) in points from the shown page's top-left)."""
    found, page = [], 0
    for line in pdftotext(path, "-bbox").splitlines():
        if "<page " in line:
            page += 1
        if match := _WORD.search(line):
            found.append((page, match.group(5), tuple(float(v) for v in match.groups()[:4])))
    return found


def words_outside(
    path: Path, pages: Sequence[Sequence[tuple[str, Box]]], points_per_pixel: float, slack=0.5
) -> tuple[int, list[tuple[int, str, tuple[float, ...]]]]:
    """How many words pdftotext finds on `pages` (per page: (text, pixel bbox) of each source
    block), and those not inside a box whose text holds them (`slack` points of tolerance)."""
    words = [w for w in words_with_boxes(path) if w[0] <= len(pages)]
    outside = []
    for number, word, (x0, y0, x1, y1) in words:
        if not any(
            word in text.split()
            and b[0] * points_per_pixel - slack <= x0 < x1 <= b[2] * points_per_pixel + slack
            and b[1] * points_per_pixel - slack <= y0 < y1 <= b[3] * points_per_pixel + slack
            for text, b in pages[number - 1]
        ):
            outside.append((number, word, (x0, y0, x1, y1)))
    return len(words), outside


def page_rotation(path: Path) -> int:
    """The first page's /Rotate as pdfinfo reads it."""
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True)
    match = re.search(r"Page rot:\s+(\d+)", info.stdout)
    return int(match.group(1)) if match else 0
