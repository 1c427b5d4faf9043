"""Benchmark inputs: rendered English A4 pages with their true text, and the Russian eval pages.

English pages are 30 lines of license prose (base-files' /usr/share/common-licenses, present on
every Debian system), DejaVuSans at 30 px (about 11 pt at 200 dpi), drawn by
testkit/pages.render_page on a 1654x2339 (A4 at 200 dpi) white page, saved as PNG with
dpi 200. Deterministic: the same pages every run.
"""

from __future__ import annotations

import io
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RU_DATA = ROOT.parent / "shared" / "eval" / "debian_docs_ru"
LICENSES = Path("/usr/share/common-licenses")
LICENSE_TEXTS = ["GPL-3", "Apache-2.0", "GFDL-1.3", "MPL-2.0", "LGPL-2.1", "Artistic", "GPL-2"]
A4_200DPI = (1654, 2339)
LINES_PER_PAGE = 30
FONT_PX = 30
LINE_CHARS = 68


@dataclass(frozen=True)
class BenchPage:
    name: str
    png: bytes  # the file as uploaded
    truth: str  # the page's text, one printed line per line

    @property
    def size_kb(self) -> float:
        return len(self.png) / 1024


def _prose_lines() -> list[str]:
    words: list[str] = []
    for name in LICENSE_TEXTS:
        path = LICENSES / name
        if path.is_file():
            words += path.read_text(errors="replace").split()
    if not words:  # no base-files: a fixed pangram text
        words = ("The quick brown fox jumps over the lazy dog 0123456789. " * 4000).split()
    # printable ASCII only: the pages test reading, not the font's coverage
    text = " ".join(w for w in words if w.isascii() and w.isprintable())
    return textwrap.wrap(text, LINE_CHARS)


def english_pages(count: int) -> list[BenchPage]:
    from PIL import Image

    from testkit.pages import render_page

    lines = _prose_lines()
    pages = []
    for i in range(count):
        start = (i * LINES_PER_PAGE) % max(len(lines) - LINES_PER_PAGE, 1)
        chunk = lines[start : start + LINES_PER_PAGE]
        body = render_page([(line, FONT_PX) for line in chunk], width=A4_200DPI[0], margin=140)
        page = Image.new("RGB", A4_200DPI, "white")
        page.paste(body, (0, 120))
        buffer = io.BytesIO()
        page.save(buffer, format="PNG", dpi=(200, 200))
        pages.append(BenchPage(f"en_{i:02d}", buffer.getvalue(), "\n".join(chunk)))
    return pages


def russian_pages(limit: int | None = None, data: Path = RU_DATA) -> list[BenchPage]:
    images = sorted((data / "img").glob("*.png"))[:limit]
    if not images:
        raise SystemExit(f"no PNG pages in {data / 'img'}")
    return [
        BenchPage(p.stem, p.read_bytes(), (data / "gt" / f"{p.stem}.txt").read_text())
        for p in images
    ]


def noisy_png(megabytes: float = 1.0, seed: int = 0) -> bytes:
    """A valid PNG of about `megabytes` MB: random pixels do not compress."""
    from PIL import Image

    side = int((megabytes * 1024 * 1024 / 3) ** 0.5)
    rng = os.urandom if seed < 0 else _seeded_bytes(seed)
    image = Image.frombytes("RGB", (side, side), rng(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _seeded_bytes(seed: int):
    import random

    generator = random.Random(seed)
    return generator.randbytes
