"""Rendered evaluation pages with known reading order, clean and degraded (issue 26).

Every page is made from testkit/eval_text.py by a seeded generator: the same arguments give the
same pixels, so nothing is committed but this code. Kinds, each in English and Russian:

- `twocol`: a title across the page, then prose in two columns;
- `form`: a title, key-value rows (key left, value in a second column), a ruled table and a
  boxed notice;
- `margin`: one column of prose and a document number printed vertically (bottom to top) in
  the left margin;
- `small`: a title and prose in 7 pt at 100 dpi (page 0) or 6.5 pt at 150 dpi (page 1).

Degradations (testkit/degrade.py): `clean`, `phone` (about 700 px wide, tinted, uneven light,
blurred, skewed, JPEG) and `fax` (a Group 4 TIFF at 204x98 dpi, binarized, speckled, skewed).

Ground truth is the page's lines in reading order, each a list of cells: a prose line is one
cell; a key-value row is two, a table row one per column. The vertical margin number is the
first line (the margin is the leftmost column). `gt_text` joins cells by tabs and lines by
newlines; scoring (testkit/scoring.py) collapses whitespace, and the order score matches cells.

    .venv/bin/python -m testkit.eval_pages var/eval  # writes PNG/JPEG/TIFF + .gt.txt to look at
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from testkit import degrade
from testkit.eval_text import FORM_FIELDS, MARGIN_NUMBER, NOTICE, PROSE, TABLE, TITLES

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ["DejaVuSans", "DejaVuSerif", "DejaVuSansCondensed", "DejaVuSerifCondensed"]
KINDS = ("twocol", "form", "margin", "small")
LANGS = ("en", "ru")
DEGRADATIONS = ("clean", "phone", "fax")
A4_INCHES = (8.27, 11.69)
SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif"}
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".tif": "image/tiff"}


@dataclass
class EvalPage:
    name: str  # e.g. "form-ru-1-phone"
    kind: str
    lang: str
    degradation: str
    image: Image.Image
    lines: list[list[str]]  # reading order; each line its cells
    dpi: int | tuple[int, int] | None = None  # x and y apart for a fax
    fmt: str = "PNG"  # how the page is stored for the service (JPEG for phone photos, TIFF fax)

    @property
    def gt_text(self) -> str:
        return "\n".join("\t".join(cells) for cells in self.lines)


def font(name: str, size: float) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / f"{name}.ttf"), max(6, round(size)))


def wrap(text: str, face: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and face.getlength(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    return [*lines, current] if current else lines


@dataclass
class Canvas:
    """A white page that remembers what was drawn, in reading order."""

    dpi: int
    image: Image.Image = field(init=False)
    lines: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        size = (round(A4_INCHES[0] * self.dpi), round(A4_INCHES[1] * self.dpi))
        self.image = Image.new("RGB", size, "white")
        self.draw = ImageDraw.Draw(self.image)

    def px(self, points: float) -> float:
        return points * self.dpi / 72

    def text(self, xy: tuple[float, float], text: str, face: ImageFont.FreeTypeFont) -> None:
        self.draw.text(xy, text, fill="black", font=face)

    def row(self, y: float, cells: list[tuple[float, str]], face: ImageFont.FreeTypeFont) -> None:
        for x, cell in cells:
            self.text((x, y), cell, face)
        self.lines.append([cell for _, cell in cells])

    def paragraphs(
        self, x: float, y: float, width: int, bottom: float, texts: list[str], face, leading=1.3
    ) -> float:
        """Prose from `texts` (one paragraph each) until `bottom`; returns the next y."""
        step = face.size * leading
        for paragraph in texts:
            for line in wrap(paragraph, face, width):
                if y + step > bottom:
                    return y
                self.row(y, [(x, line)], face)
                y += step
            y += step * 0.6
        return y


def prose(lang: str, rng: random.Random, sentences: int = 3) -> list[str]:
    """Paragraphs of `sentences` sentences, each sentence once: no line of a page repeats
    another, so the order score can tell lines apart."""
    pool = PROSE[lang][:]
    rng.shuffle(pool)
    return [" ".join(pool[i : i + sentences]) for i in range(0, len(pool), sentences)]


def two_columns(lang: str, rng: random.Random, face_name: str) -> Canvas:
    page = Canvas(150)
    width, height = page.image.size
    margin, gutter = page.px(50), page.px(22)
    page.row(margin, [(margin, rng.choice(TITLES[lang]))], font(face_name, page.px(16)))
    body = font(face_name, page.px(10))
    column = int((width - 2 * margin - gutter) / 2)
    texts = prose(lang, rng)
    top = margin + page.px(40)
    page.paragraphs(margin, top, column, height - margin, texts[: len(texts) // 2], body)
    page.paragraphs(
        margin + column + gutter, top, column, height - margin, texts[len(texts) // 2 :], body
    )
    return page


def form(lang: str, rng: random.Random, face_name: str) -> Canvas:
    page = Canvas(150)
    width, _ = page.image.size
    margin = page.px(50)
    page.row(margin, [(margin, TITLES[lang][2])], font(face_name, page.px(16)))
    face = font(face_name, page.px(10.5))
    step = face.size * 1.6
    y = margin + page.px(40)
    value_x = margin + width * 0.32
    for key, value in FORM_FIELDS[lang]:
        page.row(y, [(margin, key), (value_x, value)], face)
        y += step
    y += step
    columns = [margin, margin + width * 0.34, margin + width * 0.52, margin + width * 0.68]
    for number, cells in enumerate(TABLE[lang]):
        page.row(y, list(zip(columns, cells, strict=True)), face)
        rule = y + step * 0.82
        if number in (0, len(TABLE[lang]) - 1):
            page.draw.line((margin, rule, width - margin, rule), fill="black", width=2)
        y += step
    y += step
    box_top = y
    for line in NOTICE[lang]:
        page.row(y + step * 0.5, [(margin + page.px(12), line)], face)
        y += step
    page.draw.rectangle((margin, box_top, width * 0.7, y + step * 0.8), outline="black", width=3)
    y += step * 2
    page.paragraphs(
        margin, y, int(width - 2 * margin), page.image.size[1] - margin, prose(lang, rng)[:2], face
    )
    return page


def margin_number(lang: str, rng: random.Random, face_name: str) -> Canvas:
    page = Canvas(150)
    width, height = page.image.size
    margin = page.px(60)
    number = MARGIN_NUMBER[lang]
    face = font("DejaVuSansMono", page.px(11))
    strip = Image.new("RGB", (int(face.getlength(number)) + 8, face.size + 8), "white")
    ImageDraw.Draw(strip).text((4, 2), number, fill="black", font=face)
    strip = strip.rotate(90, expand=True)  # reads bottom to top
    page.image.paste(strip, (int(page.px(18)), int(height / 2 - strip.height / 2)))
    page.lines.append([number])
    page.row(margin, [(margin, rng.choice(TITLES[lang][:2]))], font(face_name, page.px(16)))
    body = font(face_name, page.px(10.5))
    page.paragraphs(
        margin,
        margin + page.px(40),
        int(width - margin - page.px(50)),
        height - margin,
        prose(lang, rng),
        body,
    )
    return page


def small_print(lang: str, rng: random.Random, face_name: str, index: int) -> Canvas:
    dpi, points = (100, 7.0) if index % 2 == 0 else (150, 6.5)
    page = Canvas(dpi)
    width, height = page.image.size
    margin = page.px(50)
    page.row(margin, [(margin, rng.choice(TITLES[lang][:2]))], font(face_name, page.px(12)))
    body = font(face_name, page.px(points))
    page.paragraphs(
        margin,
        margin + page.px(30),
        int(width - 2 * margin),
        height * 0.55,
        prose(lang, rng),
        body,
        leading=1.25,
    )
    return page


def clean_page(kind: str, lang: str, index: int) -> Canvas:
    rng = random.Random(f"{kind}-{lang}-{index}")
    face_name = FONTS[(index + LANGS.index(lang)) % len(FONTS)]
    if kind == "twocol":
        return two_columns(lang, rng, face_name)
    if kind == "form":
        return form(lang, rng, face_name)
    if kind == "margin":
        return margin_number(lang, rng, face_name)
    return small_print(lang, rng, face_name, index)


def eval_pages(
    per_kind: int = 2,
    kinds: tuple[str, ...] = KINDS,
    langs: tuple[str, ...] = LANGS,
    degradations: tuple[str, ...] = DEGRADATIONS,
) -> list[EvalPage]:
    """Every (kind, language, index) page, clean and degraded; deterministic."""
    pages = []
    for kind in kinds:
        for lang in langs:
            for index in range(per_kind):
                canvas = clean_page(kind, lang, index)
                for how in degradations:
                    seed = f"{kind}-{lang}-{index}-{how}"
                    image, dpi, fmt = degrade.degrade(canvas.image, canvas.dpi, how, seed)
                    pages.append(
                        EvalPage(
                            f"{kind}-{lang}-{index}-{how}",
                            kind,
                            lang,
                            how,
                            image,
                            canvas.lines,
                            dpi,
                            fmt,
                        )
                    )
    return pages


def save(page: EvalPage, folder: Path) -> Path:
    """The page as the service would receive it (PNG with its dpi, a phone's JPEG, a fax's
    Group 4 TIFF with its x and y dpi)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{page.name}{SUFFIXES[page.fmt]}"
    params: dict[str, object] = {}
    if page.dpi:
        params["dpi"] = page.dpi if isinstance(page.dpi, tuple) else (page.dpi, page.dpi)
    if page.fmt == "JPEG":
        params["quality"] = degrade.JPEG_QUALITY
    if page.fmt == "TIFF":
        params["compression"] = "group4"
    page.image.save(path, format=page.fmt, **params)
    (folder / f"{page.name}.gt.txt").write_text(page.gt_text + "\n")
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "var/eval")
    for each in eval_pages():
        print(save(each, out))
