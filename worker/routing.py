"""Pick the engine for a page from the job's language hint, so Cyrillic never meets rapidocr.

`ru` and `en` name the script. `auto` reads the page with the primary engine first and looks at
what came back: a Latin-only model reading a Cyrillic page drops most letters but still finds
the lines, so the characters it read per line are far fewer than the lines' length implies
(median about 2 characters per unit of line width/height on Latin text, 0.2-0.4 on the Russian
eval pages). Below UNREAD_SCRIPT_DENSITY, or with UNREAD_LINE_SHARE of the lines below it, the
page is read again by an engine that reads Cyrillic.

The script is decided on the primary's first pass over the page as it lies, before the
primary's orientation step could read it a second time: Latin pages pay nothing extra, upright
Cyrillic pages pay one primary pass (and the cheap orientation guess). A page read upside down
or sideways also looks unread, so a suspect page is turned upright first (read again only if it
was not upright), and the fallback engine reads the upright page.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from shared.error_codes import ErrorCode
from shared.options import Language
from worker.engines import EngineError, OcrEngine, OrientingEngine, Recognition
from worker.engines.base import mostly_tall

if TYPE_CHECKING:
    from PIL.Image import Image

SCRIPT_OF_LANGUAGE = {Language.ru: "cyrillic", Language.en: "latin"}
ALL_SCRIPTS = frozenset(SCRIPT_OF_LANGUAGE.values())
UNREAD_SCRIPT_DENSITY = 0.9
# ... or when this share of lines reads below it (pages mixing Russian text with many Latin
# commands and paths: median 1.8, yet 46 % of lines starved). English pages measured 2-31 %.
UNREAD_LINE_SHARE = 0.4


def line_densities(recognition: Recognition) -> list[float]:
    """Characters read per unit of line aspect ratio (length / height), one value per line.

    On a page read sideways (most lines taller than wide) a line's length is its height.
    """
    sizes = [(b.bbox[2] - b.bbox[0], b.bbox[3] - b.bbox[1]) for b in recognition.blocks]
    sideways = mostly_tall([b.bbox for b in recognition.blocks])
    densities = []
    for block, (width, height) in zip(recognition.blocks, sizes, strict=True):
        if width > 0 and height > 0:
            aspect = height / width if sideways else width / height
            densities.append(len("".join(block.text.split())) / aspect)
    return densities


def read_density(recognition: Recognition) -> float | None:
    """Median of line_densities; None when no line was found."""
    densities = line_densities(recognition)
    return statistics.median(densities) if densities else None


def unread_script_suspected(recognition: Recognition) -> bool:
    densities = line_densities(recognition)
    if not densities:
        return False  # nothing found: nothing another engine would read better
    starved = sum(1 for d in densities if d < UNREAD_SCRIPT_DENSITY) / len(densities)
    return statistics.median(densities) < UNREAD_SCRIPT_DENSITY or starved >= UNREAD_LINE_SHARE


class EngineRouter:
    """The worker's warm engines, primary first, and the rule that chooses among them."""

    def __init__(self, engines: Sequence[OcrEngine]) -> None:
        if not engines:
            raise ValueError("at least one engine")
        self.engines = list(engines)

    @property
    def primary(self) -> OcrEngine:
        return self.engines[0]

    def engine_for(self, script: str) -> OcrEngine:
        for engine in self.engines:
            if script in engine.scripts:
                return engine
        raise EngineError(
            ErrorCode.language_unsupported,
            f"no engine on this worker reads {script} text (engines: "
            f"{', '.join(e.name for e in self.engines)}); add one that does, e.g. "
            "OCR_FALLBACK_ENGINES=tesseract",
        )

    def read(self, image: Image, language: Language) -> tuple[OcrEngine, Recognition]:
        """Recognize one page with the right engine; returns the engine that read it."""
        if language is not Language.auto:
            engine = self.engine_for(SCRIPT_OF_LANGUAGE[language])
            return engine, engine.recognize(image)
        primary = self.primary
        fallback = next((e for e in self.engines if "cyrillic" in e.scripts), None)
        if "cyrillic" in primary.scripts or fallback is None:
            return primary, primary.recognize(image)
        if not isinstance(primary, OrientingEngine):
            recognition = primary.recognize(image)
            if not unread_script_suspected(recognition):
                return primary, recognition
            return fallback, fallback.recognize(image)
        first = primary.read_as_given(image)
        if not unread_script_suspected(first):
            return primary, primary.turn_upright(image, first)
        rotation = primary.page_rotation(image, first)
        if rotation:
            # read upside down or sideways: the letters dropped may be Latin ones
            image = image.convert("RGB").rotate(rotation, expand=True)
            turned = replace(primary.read_as_given(image), rotation=rotation)
            if not unread_script_suspected(turned):
                return primary, turned
        # The fallback may turn the page further (rapidocr said upright, or guessed wrong):
        # the page's rotation is both turns together.
        recognition = fallback.recognize(image)
        return fallback, replace(recognition, rotation=(rotation + recognition.rotation) % 360)
