"""Tesseract through tesserocr (in process), reading Debian's `rus`/`eng` traineddata (CPU).

tesserocr's PyPI wheel carries its own libtesseract (5.5 at the time of writing, built without
OpenMP); it only needs the language data, which Debian's tesseract-ocr-rus/-eng packages put in
/usr/share/tesseract-ocr/5/tessdata. In process rather than the `tesseract` command: the model
stays loaded between pages and there is no process start or image encoding per page.

Pages scanned upside down or sideways are turned upright, at no cost on upright pages: the page
is read as it lies, and only a read that looks bad (mean confidence per character below
MISREAD_CONFIDENCE, or most lines taller than wide) asks Tesseract's orientation detection
(`osd.traineddata`, a second small PyTessBaseAPI) how the page lies; a confident answer turns the
page and reads it again. On the 16 Russian eval pages (A4, 200 dpi) upright reads score 87-94
and pay nothing extra; turned 90 or 180 degrees they score 37-43, and OSD (0.2-0.3 s of CPU)
named all 64 orientations right: a turned page costs two reads plus OSD (2.3x the CPU).
Without osd.traineddata pages are read as they lie (logged once at boot).
"""

from __future__ import annotations

import logging
import os
import statistics
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from shared.error_codes import ErrorCode
from shared.results import Block
from worker.engines.base import EngineError, EngineInfo, Recognition, mostly_tall
from worker.image_prep import PagePrep
from worker.reading_order import arrange_read

if TYPE_CHECKING:
    from PIL.Image import Image

    from shared.settings import Settings

log = logging.getLogger(__name__)

# Where distributions put the traineddata files: Debian 12/13, Debian 11, Fedora/Alpine, source.
TESSDATA_DIRS = [
    Path("/usr/share/tesseract-ocr/5/tessdata"),
    Path("/usr/share/tesseract-ocr/4.00/tessdata"),
    Path("/usr/share/tessdata"),
    Path("/usr/local/share/tessdata"),
]
INSTALL_HINT = (
    "install Debian's tesseract-ocr, tesseract-ocr-rus and tesseract-ocr-eng "
    "(scripts/ensure-system-deps.sh) or set TESSERACT_DATA_DIR"
)
# A first read whose mean line confidence (weighted by characters, Tesseract's 0..100) is below
# this is checked for orientation. The 16 upright Russian eval pages read 87-94, rendered
# Russian and English test pages 95-97 (blurred or half size too); the eval pages turned 90 or
# 180 degrees read 37-43 (turned 270 they read well but sideways: looks_misread's tall lines).
MISREAD_CONFIDENCE = 70.0
# Tesseract's orientation confidence ("15 is reasonably confident"); below it the page is kept
# as it lies. The eval pages in all four orientations measured 17-37, rendered 5-line pages 22-24.
MIN_ORIENTATION_CONFIDENCE = 5.0
CYRILLIC_LANGS = {"rus", "ukr", "bel", "bul", "srp", "mkd", "kaz", "kir", "tgk", "mon"}
_FONT_FILES = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
]


def _import_tesserocr():
    # Only OpenMP builds of libtesseract (tesserocr compiled against Debian's libtesseract-dev)
    # read this; it must be set before the library loads. One thread per page: on 2 cores
    # OpenMP's threads made a page 5x slower, not faster. The PyPI wheel has no OpenMP.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    try:
        import tesserocr
    except ImportError as exc:
        raise EngineError(
            ErrorCode.engine_not_installed,
            f"tesserocr is not importable ({exc}): pip install -e '.[worker]'",
        ) from None
    return tesserocr


def find_tessdata(configured: Path | None) -> Path:
    """The folder holding *.traineddata: TESSERACT_DATA_DIR if set, else the first usual place."""
    candidates = [configured] if configured else TESSDATA_DIRS
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*.traineddata")):
            return folder
    where = ", ".join(str(c) for c in candidates)
    raise EngineError(
        ErrorCode.engine_not_installed, f"no tesseract language data in {where}: {INSTALL_HINT}"
    )


def open_tesseract(settings: Settings, lang: str, psm: int):
    """A ready PyTessBaseAPI for `lang`, or EngineError naming the missing language data."""
    tesserocr = _import_tesserocr()
    tessdata = find_tessdata(settings.tesseract_data_dir)
    available = available_languages(tessdata)
    missing = [code for code in lang.split("+") if code not in available]
    if missing:
        raise EngineError(
            ErrorCode.engine_not_installed,
            f"tesseract language data missing for {'+'.join(missing)} (TESSERACT_LANG={lang!r}): "
            f"no {', '.join(m + '.traineddata' for m in missing)} in {tessdata}, which has "
            f"{', '.join(available) or 'none'}; {INSTALL_HINT}",
        )
    try:
        return tesserocr.PyTessBaseAPI(path=f"{tessdata}/", lang=lang, psm=psm)
    except RuntimeError as exc:
        raise EngineError(
            ErrorCode.engine_init_failed, f"tesseract failed to load {lang}: {exc}"
        ) from None


def available_languages(tessdata: Path) -> list[str]:
    return sorted(p.name.removesuffix(".traineddata") for p in tessdata.glob("*.traineddata"))


def _set_image(api, image: Image, scale: float = 1.0) -> None:
    """Raw pixels (no PNG/BMP round trip: 4-17 ms instead of 40-80 ms a page) and the dpi.

    `scale`: how much `image` was resized from the original, whose dpi its info still carries.
    """
    dpi = image.info.get("dpi")
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    depth = 1 if image.mode == "L" else 3
    api.SetImageBytes(image.tobytes(), image.width, image.height, depth, image.width * depth)
    if dpi and 70 <= dpi[0] * scale <= 2400:  # else Tesseract estimates it from the text size
        api.SetSourceResolution(round(dpi[0] * scale))


def _font(size: int):
    from PIL import ImageFont

    for path in _FONT_FILES:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return None


@dataclass
class _Line:
    text: str
    bbox: tuple[int, ...]
    confidence: float  # Tesseract's 0..100
    paragraph: int
    slope: float | None = None  # of its baseline (dy/dx); None for a line standing tall


class TesseractEngine:
    """One PyTessBaseAPI per process (not thread-safe; the worker runs one job at a time)."""

    name = "tesseract"

    def __init__(self, settings: Settings) -> None:
        self._tesserocr = _import_tesserocr()
        self._tessdata = find_tessdata(settings.tesseract_data_dir)
        self._lang = settings.tesseract_lang
        codes = set(settings.tesseract_lang.split("+"))
        # Scripts read, for routing by language hint: Cyrillic-script languages, anything else
        # taken as Latin-script (true of eng, deu, fra, ...; not of chi_sim, ara, ...).
        self.scripts = frozenset(
            ({"cyrillic"} if codes & CYRILLIC_LANGS else set())
            | ({"latin"} if codes - CYRILLIC_LANGS - {"osd", "equ"} else set())
        )
        self._api = open_tesseract(settings, settings.tesseract_lang, settings.tesseract_psm)
        self._reading_order = settings.reading_order
        self._osd = self._open_osd()
        self._prep = PagePrep.of(settings, settings.tesseract_photo_min_text_height_px)

    def _open_osd(self):
        """A PyTessBaseAPI for orientation detection only, or None (pages then read as they lie).

        Not DetectOrientationScript on the main API: with rus+eng loaded it aborts the process
        (std::out_of_range in libtesseract 5.5), and it needs osd.traineddata anyway.
        """
        if not (self._tessdata / "osd.traineddata").is_file():
            log.warning(
                "no osd.traineddata in %s: pages scanned upside down or sideways are read as "
                "they lie (install tesseract-ocr, which ships it)",
                self._tessdata,
            )
            return None
        try:
            return self._tesserocr.PyTessBaseAPI(
                path=f"{self._tessdata}/", lang="osd", psm=self._tesserocr.PSM.OSD_ONLY
            )
        except RuntimeError as exc:
            log.warning("tesseract failed to load osd: %s; pages are read as they lie", exc)
            return None

    def info(self) -> EngineInfo:
        return EngineInfo(
            name=self.name,
            device="cpu",
            versions={
                "tesserocr": version("tesserocr"),
                "tesseract": self._api.Version(),
                "lang": self._lang,
                "languages": ",".join(available_languages(self._tessdata)),
                "tessdata": str(self._tessdata),
                "orientation": "osd" if self._osd is not None else "off",
            },
        )

    def warm(self) -> None:
        from PIL import Image, ImageDraw

        font = _font(40)
        text = "Проверка 2025 warm up" if font else "Warm up 2025"
        image = Image.new("L", (720, 90), 255)
        ImageDraw.Draw(image).text((16, 18), text, fill=0, font=font)
        read = " ".join(b.text for b in self.recognize(image).blocks)
        if not read.strip() or (font and "rus" in self._lang and not _has_cyrillic(read)):
            raise EngineError(ErrorCode.warmup_failed, f"tesseract read {read!r} from {text!r}")
        self._detect_orientation(image.rotate(180, expand=True))

    def recognize(self, image: Image) -> Recognition:
        return self.turn_upright(image, self.read_as_given(image))

    def read_as_given(self, image: Image) -> Recognition:
        """One read of the page as it lies (rotation 0); the page prepared first
        (worker/image_prep.py), boxes given on the page as it came, then put in reading order
        (worker/reading_order.py)."""
        prepared, factor = self._prep.prepare(image)
        lines = self._read_lines(prepared, factor)
        for line in lines:
            line.text = self._prep.fix_text(line.text)
            line.bbox = self._prep.box_back(line.bbox, factor)
        read = _recognition(lines)
        return arrange_read(read, image, self.read_line, self._reading_order)

    def read_line(self, line: Image) -> tuple[str, float]:
        """One line image read as a single line (PSM 7): its text and mean confidence 0..1."""
        api = self._api
        page_mode = api.GetPageSegMode()
        api.SetPageSegMode(self._tesserocr.PSM.SINGLE_LINE)
        _set_image(api, line)
        try:
            text = api.GetUTF8Text() or ""
            confidence = api.MeanTextConf()
        finally:
            api.Clear()
            api.SetPageSegMode(page_mode)
        return " ".join(text.split()), min(max(confidence / 100, 0.0), 1.0)

    def turn_upright(self, image: Image, first: Recognition) -> Recognition:
        """`first` (read_as_given of `image`) unless it looks misread and OSD says how to turn
        the page; then the read of the turned page, unless that looks no better."""
        rotation = self.page_rotation(image, first)
        if not rotation:
            return first
        turned = self.read_as_given(image.rotate(rotation, expand=True))
        if looks_misread(turned) and _read_confidence(turned) <= _read_confidence(first):
            log.info("page turned by %d degrees read no better; kept as it lies", rotation)
            return first
        return replace(turned, rotation=rotation)

    def page_rotation(self, image: Image, first: Recognition) -> int:
        """0, 90, 180 or 270: how far to turn the page counter-clockwise to make it upright.

        0 without asking OSD when the first read looks right, as upright pages do.
        """
        if not looks_misread(first):
            return 0
        return self._detect_orientation(image)

    def _detect_orientation(self, image: Image) -> int:
        if self._osd is None:
            return 0
        _set_image(self._osd, image)
        try:
            found = self._osd.DetectOrientationScript()
        finally:
            self._osd.Clear()
        if not found or found["orient_conf"] < MIN_ORIENTATION_CONFIDENCE:
            log.info("orientation unsure (%s); page read as it lies", found)
            return 0
        # orient_deg is how far the page lies turned clockwise: turning it back that far
        # counter-clockwise (PIL's direction) makes it upright.
        return int(found["orient_deg"]) % 360

    def _read_lines(self, image: Image, scale: float = 1.0) -> list[_Line]:
        """Text lines in Tesseract's reading order (blocks, then paragraphs, then lines).
        `scale`: how much `image` was enlarged from the page (for its dpi)."""
        ril = self._tesserocr.RIL
        api = self._api
        _set_image(api, image, scale)
        try:
            api.Recognize()
            iterator = api.GetIterator()
            lines: list[_Line] = []
            paragraph = -1
            if iterator is None:
                return lines
            for item in self._tesserocr.iterate_level(iterator, ril.TEXTLINE):
                if item.Empty(ril.TEXTLINE):  # e.g. a blank page: GetUTF8Text would raise
                    continue
                if item.IsAtBeginningOf(ril.PARA):
                    paragraph += 1
                text = (item.GetUTF8Text(ril.TEXTLINE) or "").strip()
                box = item.BoundingBox(ril.TEXTLINE)
                if text and box:
                    confidence = item.Confidence(ril.TEXTLINE)
                    slope = _baseline_slope(item.Baseline(ril.TEXTLINE))
                    lines.append(_Line(text, box, confidence, paragraph, slope))
            return lines
        finally:
            api.Clear()  # drop the page image and results: pages can be 100 MP


def _recognition(lines: list[_Line]) -> Recognition:
    blocks = [
        Block(
            type="text",
            text=line.text,
            bbox=[float(v) for v in line.bbox],
            score=round(min(max(line.confidence / 100, 0.0), 1.0), 5),
        )
        for line in lines
    ]
    slopes = [line.slope for line in lines if line.slope is not None]
    slope = statistics.median(slopes) if slopes else 0.0
    return Recognition(blocks=blocks, markdown=_paragraph_markdown(lines), slope=slope)


def _baseline_slope(baseline) -> float | None:
    """dy/dx of a line's baseline ((x1, y1), (x2, y2)); None when it stands tall or is missing."""
    if not baseline:
        return None
    (x1, y1), (x2, y2) = baseline
    if abs(x2 - x1) <= 2 * abs(y2 - y1):
        return None
    return (y2 - y1) / (x2 - x1)


def _read_confidence(recognition: Recognition) -> float:
    """Mean line confidence weighted by characters read, 0..100 (0 when nothing was read)."""
    weights = [len("".join(b.text.split())) for b in recognition.blocks]
    if not sum(weights):
        return 0.0
    scores = [(b.score or 0.0) * 100 for b in recognition.blocks]
    return sum(s * w for s, w in zip(scores, weights, strict=True)) / sum(weights)


def looks_misread(recognition: Recognition) -> bool:
    """A read of a page lying upside down or sideways: low confidence, or most lines taller than
    wide (Tesseract reads a page turned clockwise as vertical lines, confidently but sideways).
    A page with nothing read is not suspect: there is nothing to turn."""
    if not recognition.blocks:
        return False
    return _read_confidence(recognition) < MISREAD_CONFIDENCE or mostly_tall(
        [b.bbox for b in recognition.blocks]
    )


def _paragraph_markdown(lines: list[_Line]) -> str:
    """Tesseract's paragraphs as markdown paragraphs, their lines joined by line breaks."""
    paragraphs: list[list[str]] = []
    last = None
    for line in lines:
        if line.paragraph != last:
            paragraphs.append([])
            last = line.paragraph
        paragraphs[-1].append(line.text)
    return "\n\n".join("\n".join(p) for p in paragraphs)


def _has_cyrillic(text: str) -> bool:
    return any("\u0400" <= ch <= "\u04ff" for ch in text)
