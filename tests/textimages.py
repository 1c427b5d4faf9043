"""Build test inputs: pages of known text rendered with Pillow (no checked-in blobs)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

_FONT_FILES = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
]


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONT_FILES:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def render_page(lines: list[tuple[str, int]], width: int = 1200, margin: int = 40) -> Image.Image:
    """One white page with each (text, font size) on its own line, black, left-aligned."""
    height = margin * 2 + sum(int(size * 1.9) for _, size in lines)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    y = margin
    for text, size in lines:
        draw.text((margin, y), text, fill="black", font=font(size))
        y += int(size * 1.9)
    return image


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def normalize_lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


# Several lines, digits, two font sizes: the fixture most tests read back.
INVOICE_LINES: list[tuple[str, int]] = [
    ("Invoice number 20461", 44),
    ("Delivery date 2026-03-14", 30),
    ("Total amount 1284.50 EUR", 30),
    ("Thank you for your order", 44),
]
