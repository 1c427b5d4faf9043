"""Engine registry: adding an engine is one module and one line here.

Modules are imported only when their engine is chosen, so paddle never loads on a CPU worker.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from shared.error_codes import ErrorCode
from worker.engines.base import (
    BatchingEngine,
    EngineError,
    EngineInfo,
    EngineUnavailable,
    OcrEngine,
    OrientingEngine,
    Recognition,
)

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = [
    "ENGINES",
    "BatchingEngine",
    "EngineError",
    "EngineInfo",
    "EngineUnavailable",
    "OcrEngine",
    "OrientingEngine",
    "Recognition",
    "build_engine",
]

ENGINES: dict[str, str] = {
    "rapidocr": "worker.engines.rapidocr_engine:RapidOcrEngine",
    "paddleocr-vl": "worker.engines.paddleocr_vl:PaddleOcrVlEngine",
    "tesseract": "worker.engines.tesseract_engine:TesseractEngine",
}


def build_engine(settings: Settings) -> OcrEngine:
    """Import and construct the engine named by OCR_ENGINE (not yet warmed)."""
    target = ENGINES.get(settings.ocr_engine)
    if target is None:
        raise EngineError(
            ErrorCode.unknown_engine,
            f"OCR_ENGINE={settings.ocr_engine!r} is not one of: {', '.join(sorted(ENGINES))}",
        )
    module_name, class_name = target.split(":")
    engine_class = getattr(import_module(module_name), class_name)
    return engine_class(settings)
