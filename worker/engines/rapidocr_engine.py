"""RapidOCR on onnxruntime with the PP-OCRv6 models inside the `rapidocr` wheel (CPU, offline)."""

from __future__ import annotations

import io
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from shared.results import Block
from worker.engines.base import EngineError, EngineInfo, Recognition

if TYPE_CHECKING:
    from PIL.Image import Image

    from shared.settings import Settings

_MODEL_FILES = {
    "Det.model_path": "PP-OCRv6_det_small.onnx",
    "Rec.model_path": "PP-OCRv6_rec_small.onnx",
    "Cls.model_path": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
}


class RapidOcrEngine:
    """One RapidOCR instance per process: its per-call options stick, so it is never shared."""

    name = "rapidocr"

    def __init__(self, settings: Settings) -> None:
        import rapidocr  # heavy: onnxruntime, cv2

        models = Path(rapidocr.__file__).parent / "models"
        params: dict[str, object] = {key: str(models / f) for key, f in _MODEL_FILES.items()}
        missing = [p for p in params.values() if not Path(str(p)).is_file()]
        if missing:
            raise EngineError("model_missing", f"rapidocr models not found: {missing}")
        params.update(
            {
                "Global.log_level": "warning",
                "Global.use_cls": True,
                # max-side limit: same accuracy, several times faster on small images
                "Det.limit_type": "max",
                "Det.limit_side_len": settings.rapidocr_det_limit_side_len,
            }
        )
        if settings.rapidocr_threads:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = settings.rapidocr_threads
        self._ocr = rapidocr.RapidOCR(params=params)

    def info(self) -> EngineInfo:
        return EngineInfo(
            name=self.name,
            device="cpu",
            versions={"rapidocr": version("rapidocr"), "onnxruntime": version("onnxruntime")},
        )

    def warm(self) -> None:
        from PIL import Image, ImageDraw, ImageFont

        image = Image.new("RGB", (480, 64), "white")
        ImageDraw.Draw(image).text(
            (10, 12), "Warm up 123", fill="black", font=ImageFont.load_default(size=32)
        )
        recognition = self.recognize(image)
        if not recognition.blocks:
            raise EngineError("warmup_failed", "rapidocr read nothing from the warm-up image")

    def recognize(self, image: Image) -> Recognition:
        # Bytes, never a path string: rapidocr fetches strings that look like URLs.
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG", compress_level=1)
        output = self._ocr(buffer.getvalue())
        if output.boxes is None or output.txts is None:
            return Recognition(blocks=[])
        blocks = []
        for box, text, score in zip(output.boxes, output.txts, output.scores, strict=True):
            xs = [float(p[0]) for p in box]
            ys = [float(p[1]) for p in box]
            blocks.append(
                Block(
                    type="text",
                    text=text,
                    bbox=[min(xs), min(ys), max(xs), max(ys)],
                    score=round(float(score), 5),
                )
            )
        return Recognition(blocks=blocks)
