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


def text_pdf(pages: list[list[str]], font_size: int = 20) -> bytes:
    """A born-digital PDF (A4, Helvetica) whose pages carry `pages` as a real text layer."""
    objects: list[bytes] = []
    kids = []
    font_id = 3
    for lines in pages:
        ops = ["BT", f"/F1 {font_size} Tf", f"{font_size * 1.4:.0f} TL", "72 770 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        content_id = 4 + len(objects)
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        page_id = 4 + len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (font_id, content_id)
        )
        kids.append(page_id)
    head = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % k for k in kids), len(kids)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    body = b"%PDF-1.4\n"
    offsets = []
    for number, obj in enumerate(head + objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    body += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(offsets) + 1,
        xref,
    )
    return body


def bare_pdf(count: int = 1, size_pt: tuple[int, int] = (612, 792)) -> bytes:
    """One blank page of `size_pt` points, in a page tree whose /Count claims `count` pages
    (a liar's PDF when count > 1)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count %d >>" % count,
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] >>" % size_pt,
    ]
    body, offsets = b"%PDF-1.4\n", []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    xref = len(body)
    body += b"xref\n0 4\n0000000000 65535 f \n"
    body += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    return body + b"trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref


def render_columns(
    heading: str,
    left: list[str],
    right: list[str],
    size: int = 24,
    width: int = 1600,
    margin: int = 60,
    gutter: int = 100,
) -> Image.Image:
    """A heading across the page over two columns of left-aligned lines (read: the heading,
    the left column, then the right one). The columns' lines sit on one grid, row by row."""
    pitch = int(size * 1.6)
    top = margin + int(size * 1.6) * 2
    height = top + pitch * max(len(left), len(right)) + margin
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((margin, margin), heading, fill="black", font=font(int(size * 1.4)))
    column = (width - 2 * margin - gutter) // 2
    for x, lines in ((margin, left), (margin + column + gutter, right)):
        for n, text in enumerate(lines):
            draw.text((x, top + n * pitch), text, fill="black", font=font(size))
    return image


def render_key_values(
    rows: list[tuple[str, str]], size: int = 26, width: int = 1200, margin: int = 60
) -> Image.Image:
    """A form's key-value rows: keys at the left margin, values in a column at mid-page (read
    row by row: key, value, next key)."""
    pitch = int(size * 1.9)
    image = Image.new("RGB", (width, margin * 2 + pitch * len(rows)), "white")
    draw = ImageDraw.Draw(image)
    for n, (key, value) in enumerate(rows):
        y = margin + n * pitch
        draw.text((margin, y), key, fill="black", font=font(size))
        draw.text((width // 2, y), value, fill="black", font=font(size))
    return image


def render_margin_number(
    lines: list[tuple[str, int]], number: str, size: int = 26, width: int = 1200, angle: int = 90
) -> Image.Image:
    """render_page's lines moved right, with `number` printed along the left margin, as a
    document number on a form's edge: turned `angle` degrees counter-clockwise (90: read
    bottom to top; 270: top to bottom)."""
    body = render_page(lines, width=width - 120)
    strip = Image.new("RGB", (max(body.height, size * len(number)), int(size * 1.6)), "white")
    ImageDraw.Draw(strip).text((10, int(size * 0.2)), number, fill="black", font=font(size))
    upright = strip.rotate(angle, expand=True)
    page = Image.new("RGB", (width, max(body.height, upright.height)), "white")
    page.paste(upright, (20, 0))
    page.paste(body, (120, 0))
    return page
