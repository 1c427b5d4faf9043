"""Pick the engine for a page from the job's language hint, so Cyrillic never meets rapidocr.

`ru` and `en` name the script. `auto` reads the page with the primary engine first and looks at
what came back: a Latin-only model reading a Cyrillic page drops most letters but still finds
the lines, so the characters it read per line are far fewer than the lines' length implies
(median about 2 characters per unit of line width/height on Latin text, 0.2-0.4 on the Russian
eval pages). Below UNREAD_SCRIPT_DENSITY the page is read again by an engine that reads
Cyrillic. Latin pages pay nothing extra; Cyrillic pages pay one primary-engine pass.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.options import Language
from worker.engines import EngineError, OcrEngine, Recognition

if TYPE_CHECKING:
    from PIL.Image import Image

SCRIPT_OF_LANGUAGE = {Language.ru: "cyrillic", Language.en: "latin"}
ALL_SCRIPTS = frozenset(SCRIPT_OF_LANGUAGE.values())
UNREAD_SCRIPT_DENSITY = 0.9


def read_density(recognition: Recognition) -> float | None:
    """Median characters read per unit of line aspect ratio; None when no line was found."""
    densities = []
    for block in recognition.blocks:
        width, height = block.bbox[2] - block.bbox[0], block.bbox[3] - block.bbox[1]
        if width > 0 and height > 0:
            densities.append(len("".join(block.text.split())) / (width / height))
    return statistics.median(densities) if densities else None


def unread_script_suspected(recognition: Recognition) -> bool:
    density = read_density(recognition)
    return density is not None and density < UNREAD_SCRIPT_DENSITY


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
            "language_unsupported",
            f"no engine on this worker reads {script} text (engines: "
            f"{', '.join(e.name for e in self.engines)}); add one that does, e.g. "
            "OCR_FALLBACK_ENGINES=tesseract",
        )

    def read(self, image: Image, language: Language) -> tuple[OcrEngine, Recognition]:
        """Recognize one page with the right engine; returns the engine that read it."""
        if language is not Language.auto:
            engine = self.engine_for(SCRIPT_OF_LANGUAGE[language])
            return engine, engine.recognize(image)
        recognition = self.primary.recognize(image)
        if "cyrillic" in self.primary.scripts or not unread_script_suspected(recognition):
            return self.primary, recognition
        fallback = next((e for e in self.engines if "cyrillic" in e.scripts), None)
        if fallback is None:
            return self.primary, recognition
        return fallback, fallback.recognize(image)
