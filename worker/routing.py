"""Pick the engine for a page from the job's language hint, so Cyrillic never meets rapidocr."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from shared.options import Language
from worker.engines import EngineError, OcrEngine

if TYPE_CHECKING:
    from PIL.Image import Image

SCRIPT_OF_LANGUAGE = {Language.ru: "cyrillic", Language.en: "latin"}
ALL_SCRIPTS = frozenset(SCRIPT_OF_LANGUAGE.values())

ScriptDetector = Callable[["Image"], str]


class EngineRouter:
    """The worker's warm engines, primary first, and the rule that chooses among them."""

    def __init__(
        self, engines: Sequence[OcrEngine], detect_script: ScriptDetector | None = None
    ) -> None:
        if not engines:
            raise ValueError("at least one engine")
        self.engines = list(engines)
        self.detect_script = detect_script

    @property
    def primary(self) -> OcrEngine:
        return self.engines[0]

    @property
    def scripts(self) -> frozenset[str]:
        return frozenset().union(*(e.scripts for e in self.engines))

    def script_for(self, image: Image, language: Language) -> str | None:
        """The script to read the page as; None when the primary engine reads them all."""
        if language is not Language.auto:
            return SCRIPT_OF_LANGUAGE[language]
        if self.primary.scripts >= ALL_SCRIPTS or self.detect_script is None:
            return None
        return self.detect_script(image)

    def pick(self, image: Image, language: Language) -> OcrEngine:
        script = self.script_for(image, language)
        if script is None:
            return self.primary
        for engine in self.engines:
            if script in engine.scripts:
                return engine
        raise EngineError(
            "language_unsupported",
            f"no engine on this worker reads {script} text (engines: "
            f"{', '.join(e.name for e in self.engines)}); add one that does, e.g. "
            "OCR_FALLBACK_ENGINES=tesseract",
        )
