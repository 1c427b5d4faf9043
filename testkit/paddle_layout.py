"""A stand-in for PaddleOCR-VL's layout model (its weights come only from model hubs).

The pipeline is built with layout detection off (nothing to download), then given this
predictor: everything after the layout model stays paddlex's own code (overlap filtering, crops,
block merging, the VL requests, result assembly). The hook is private to paddlex 3.7.2
(`pipeline.paddlex_pipeline._pipeline`, `layout_det_model`, `use_layout_detection`), which is
why pyproject and scripts/ensure-paddle-venv.sh pin paddlex.

    install_layout(engine_pipeline, StandInLayout(lambda w, h: [box("text", 0, 0, w, h)]))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

# PP-DocLayoutV3's class ids (paddlex configs/pipelines/PaddleOCR-VL-1.6.yaml, merge modes).
CLASS_IDS = {
    "abstract": 0,
    "algorithm": 1,
    "aside_text": 2,
    "chart": 3,
    "content": 4,
    "display_formula": 5,
    "doc_title": 6,
    "figure_title": 7,
    "footer": 8,
    "footnote": 10,
    "formula_number": 11,
    "header": 12,
    "image": 14,
    "inline_formula": 15,
    "number": 16,
    "paragraph_title": 17,
    "reference": 18,
    "reference_content": 19,
    "seal": 20,
    "table": 21,
    "text": 22,
    "vision_footnote": 24,
}

Boxes = Callable[[int, int], Sequence[dict[str, Any]]]


def box(label: str, x1: int, y1: int, x2: int, y2: int, order: int | None = None) -> dict:
    """One layout box as PP-DocLayoutV3's predictor yields it."""
    return {
        "cls_id": CLASS_IDS.get(label, 22),
        "label": label,
        "score": 0.99,
        "coordinate": [float(x1), float(y1), float(x2), float(y2)],
        "order": order,
        "polygon_points": [[x1, y1], [x2, y1], [x2, y2], [x1, y2]],
    }


class StandInLayout:
    """Called as the layout model is: `model(list_of_bgr_arrays, **kwargs)`, one result each."""

    def __init__(self, boxes: Boxes, batch_size: int = 8) -> None:
        self.boxes = boxes  # (width, height) -> the boxes of that page
        self.batch_sampler = SimpleNamespace(batch_size=batch_size)
        self.calls = 0

    def __call__(self, images: Sequence[Any], **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls += 1
        for image in images:
            height, width = image.shape[:2]
            yield {"input_path": None, "page_index": None, "boxes": list(self.boxes(width, height))}

    def close(self) -> None:
        pass


def install_layout(paddleocr_vl: Any, layout: StandInLayout) -> None:
    """Give a PaddleOCRVL built with use_layout_detection=False this layout predictor."""
    inner = paddleocr_vl.paddlex_pipeline._pipeline
    inner.layout_det_model = layout
    inner.use_layout_detection = True
