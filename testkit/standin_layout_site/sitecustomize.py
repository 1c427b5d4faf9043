"""Put this folder on PYTHONPATH (with OCRQ_TEST_STANDIN_LAYOUT=1) and a worker process built on
PADDLEOCR_VL_LAYOUT=off gets testkit's stand-in layout predictor in each PaddleOCRVL it builds:
a text box over the top half of a page and an image box below it. Test-only: production code
has no hook for it; paddlex's own code crops the image box and links it in the markdown."""

from __future__ import annotations

import os

if os.environ.get("OCRQ_TEST_STANDIN_LAYOUT") == "1":
    from testkit.paddle_layout import StandInLayout, box, install_layout
    from worker.engines import paddleocr_vl

    LAYOUT = StandInLayout(
        lambda w, h: [
            box("text", 0, 0, w, h // 2),
            box("image", w // 4, h // 2 + 10, 3 * w // 4, h - 10),
        ]
    )
    _built = paddleocr_vl.PaddleOcrVlEngine.__init__

    def _with_layout(self, settings):  # type: ignore[no-untyped-def]
        _built(self, settings)
        for value in vars(self).values():
            for pipeline in value if isinstance(value, list | tuple) else [value]:
                if hasattr(pipeline, "paddlex_pipeline"):
                    install_layout(pipeline, LAYOUT)

    paddleocr_vl.PaddleOcrVlEngine.__init__ = _with_layout
