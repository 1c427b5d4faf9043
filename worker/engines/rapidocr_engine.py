"""RapidOCR on onnxruntime with the PP-OCRv6 models inside the `rapidocr` wheel (CPU, offline)."""

from __future__ import annotations

import logging
import os
import statistics
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.error_codes import ErrorCode
from shared.results import Block
from worker.engines.base import EngineError, EngineInfo, Recognition, mostly_tall
from worker.image_prep import PagePrep
from worker.reading_order import arrange_read

if TYPE_CHECKING:
    from PIL.Image import Image

    from shared.settings import Settings

log = logging.getLogger(__name__)

_MODEL_FILES = {
    "Det.model_path": "PP-OCRv6_det_small.onnx",
    "Rec.model_path": "PP-OCRv6_rec_small.onnx",
    "Cls.model_path": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
}
# The detector's input, longest side: 960 reads as well as larger sizes and cuts latency
# (measured when the engine was chosen); it was the setting RAPIDOCR_DET_LIMIT_SIDE_LEN.
DET_LIMIT_SIDE_LEN = 960
# Lines sampled to tell a page's orientation with the line classifier (0 or 180 degrees),
# three pieces of each; at most this share of pieces may say 180 on an upright page (the
# Russian eval pages: 0-14%; upside-down English pages: 100%) ...
_ORIENTATION_SAMPLES = 12
_CLS_ASPECT = 4.0  # the classifier's input, 192x48
_UPRIGHT_VOTES = 0.25
# ... else the recognizer reads a piece of this many lines as they lie and turned by 180, and
# the way with the higher summed score wins (whole lines of the Russian eval pages, read by the
# Latin model: mean 0.86-0.94 upright, 0.59-0.70 turned). About 1.2 s of CPU on an A4 page,
# paid only by pages the classifier doubts, which are then mostly read twice anyway.
_CONFIRM_SAMPLES = 6
_REC_ASPECT = 12.0
# Lines of the page-sized warm-up image: a page's worth. With 6 lines the first real page
# still grew the memory arena by 91k page faults (about 0.3 s); with 30, 50k; later pages ~0.
_WARM_PAGE_LINES = 30
_WARM_PAGE_READS = 2
# as wide as an A4 line at 200 dpi (1371 px in Pillow's default font at 30 px)
_WARM_PAGE_TEXT = (
    "Warm up the detector and the recognizer on a whole page of text: 0123456789 ABCDEFGHIJKLMNOP"
)


class RapidOcrEngine:
    """One RapidOCR instance per process: its per-call options stick, so it is never shared."""

    name = "rapidocr"

    def __init__(self, settings: Settings) -> None:
        # onnxruntime >= 1.2x sends 1DS telemetry from Linux too, keeping a device id under
        # ~/.cache and a session file in TMPDIR: off, before its first import latches it.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import rapidocr  # heavy: onnxruntime, cv2

        models = Path(rapidocr.__file__).parent / "models"
        params: dict[str, object] = {key: str(models / f) for key, f in _MODEL_FILES.items()}
        if settings.rapidocr_rec_model:
            params["Rec.model_path"] = str(settings.rapidocr_rec_model)
        if settings.rapidocr_rec_keys:
            params["Rec.rec_keys_path"] = str(settings.rapidocr_rec_keys)
        missing = [p for p in params.values() if not Path(str(p)).is_file()]
        if missing:
            raise EngineError(ErrorCode.model_missing, f"rapidocr model files not found: {missing}")
        params.update(
            {
                "Global.log_level": "warning",
                "Global.use_cls": True,
                # max-side limit: same accuracy, several times faster on small images
                "Det.limit_type": "max",
                "Det.limit_side_len": DET_LIMIT_SIDE_LEN,
                # onnxruntime keeps its buffers between pages instead of taking them from malloc
                # and giving them back every run: rapidocr's default (off) cost 200k+ page
                # faults (~1 GB zeroed) and about 12% of the time of each A4 page. RSS stays
                # near its peak instead (about 1 GB with A4 pages), see BENCHMARKS.md.
                "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
            }
        )
        if settings.rapidocr_threads:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = settings.rapidocr_threads
        self._ocr = rapidocr.RapidOCR(params=params)
        self._rec_model = Path(str(params["Rec.model_path"])).name
        self._reading_order = settings.reading_order
        self._prep = PagePrep.of(settings)
        self.scripts = frozenset(
            s.strip() for s in settings.rapidocr_rec_scripts.split(",") if s.strip()
        )

    def info(self) -> EngineInfo:
        return EngineInfo(
            name=self.name,
            device="cpu",
            versions={
                "rapidocr": version("rapidocr"),
                "onnxruntime": version("onnxruntime"),
                "rec_model": self._rec_model,
            },
        )

    def warm(self) -> None:
        from PIL import Image, ImageDraw, ImageFont

        image = Image.new("RGB", (480, 64), "white")
        ImageDraw.Draw(image).text(
            (10, 12), "Warm up 123", fill="black", font=ImageFont.load_default(size=32)
        )
        recognition = self.recognize(image)
        if not recognition.blocks:
            raise EngineError(
                ErrorCode.warmup_failed, "rapidocr read nothing from the warm-up image"
            )
        # Then a page like a real one (A4 at 200 dpi, 30 long lines), read twice, so that the
        # memory arena has grown to a page's needs before the first job: with no page the
        # first job ran 1.17x the steady one; after one read of it the first real page still
        # took about 38k page faults (steady pages 2-5k), after two about 16k (BENCHMARKS.md).
        page = Image.new("RGB", (1654, 2339), "white")
        draw = ImageDraw.Draw(page)
        for line in range(_WARM_PAGE_LINES):
            draw.text(
                (140, 160 + 66 * line),
                _WARM_PAGE_TEXT,
                fill="black",
                font=ImageFont.load_default(size=30),
            )
        for _ in range(_WARM_PAGE_READS):
            self.recognize(page)

    def recognize(self, image: Image) -> Recognition:
        image = image.convert("RGB")
        return self.turn_upright(image, self.read_as_given(image))

    def read_as_given(self, image: Image) -> Recognition:
        """One pass over the page as it lies, without the orientation step (rotation 0); the
        page prepared first (worker/image_prep.py), boxes given on the page as it came, then
        put in reading order (worker/reading_order.py)."""
        image = image.convert("RGB")
        prepared, factor = self._prep.prepare(image)
        output = self._run(prepared.convert("RGB"))
        blocks = self._prep.restore(_blocks(output), factor)
        read = Recognition(blocks=blocks, slope=_line_slope(output))
        return arrange_read(read, image, self.read_line, self._reading_order)

    def turn_upright(self, image: Image, first: Recognition) -> Recognition:
        """`first` (read_as_given of `image`) if the page is upright, else a read of it turned."""
        rotation = self.page_rotation(image, first)
        if not rotation:
            return first
        # Lines are read either way, but an upside-down read drops or garbles most letters,
        # and reading order and bboxes need the upright page: turn it and read once more.
        turned = self.read_as_given(image.convert("RGB").rotate(rotation, expand=True))
        return replace(turned, rotation=rotation)

    def _run(self, image: Image) -> Any:
        # A BGR array, never a path string (rapidocr fetches strings that look like URLs) nor
        # PNG bytes (same pixels after a round trip that cost 85 ms of CPU per A4 page, see
        # BENCHMARKS.md). Options are passed on every call: rapidocr keeps the last call's.
        # No per-line 180-degree classifier: it squashes a long line into its 192x48 input and
        # turned 4 of 30 upright lines of an A4 page into garbage (CER 3.9% -> 0.0% on the
        # rendered English pages of bench/pages.py); page_rotation turns whole pages instead.
        return self._ocr(_as_array(image), use_det=True, use_cls=False, use_rec=True)

    def page_rotation(self, image: Image, first: Recognition) -> int:
        """0, 90, 180 or 270: how far to turn the page counter-clockwise to make it upright.

        The line classifier guesses 0 or 180 on short pieces of the longest lines; when more
        than a few pieces say 180, the recognizer reads pieces both ways and the better-read
        way wins (the classifier alone took 7 of 16 upright Russian pages for upside down).
        """
        boxes = sorted((b.bbox for b in first.blocks), key=_box_area, reverse=True)
        boxes = boxes[:_ORIENTATION_SAMPLES]
        if not boxes:
            return 0
        sideways = mostly_tall(boxes)
        image = image.convert("RGB")
        lines = []
        for box in boxes:
            left, top, right, bottom = box
            crop = image.crop((left, top, right, bottom))
            # sideways pages: turn each line by 90 so that it lies at 0 or 180
            lines.append(crop.rotate(90, expand=True) if sideways else crop)
        flipped = self._upside_down(lines)
        if sideways:
            return 270 if flipped else 90
        return 180 if flipped else 0

    def _upside_down(self, lines: list[Image]) -> bool:
        pieces = [_as_array(piece) for line in lines for piece in _pieces(line, _CLS_ASPECT, 3)]
        try:
            labels = self._ocr._load_cls_model()(pieces).cls_res  # internal, stable since 1.x
        except (AttributeError, TypeError) as exc:
            log.debug("orientation check unavailable: %s", exc)
            return False
        if sum(1 for label, _ in labels if label == "180") <= _UPRIGHT_VOTES * len(labels):
            return False  # the usual case: no recognizer pass
        samples = [_pieces(line, _REC_ASPECT, 1)[0] for line in lines[:_CONFIRM_SAMPLES]]
        as_is = [self._read_score(piece) for piece in samples]
        turned = [self._read_score(piece.rotate(180)) for piece in samples]
        return sum(turned) > sum(as_is)

    def _read_score(self, line: Image) -> float:
        """The recognizer's confidence in its reading of one line image (0 if it read nothing)."""
        return self.read_line(line)[1]

    def read_line(self, line: Image) -> tuple[str, float]:
        """One line image read whole, without detection: its text and the recognizer's
        confidence (empty and 0 if it read nothing)."""
        output = self._ocr(_as_array(line), use_det=False, use_cls=False, use_rec=True)
        texts = getattr(output, "txts", None)
        scores = getattr(output, "scores", None)
        if not texts or not scores:
            return "", 0.0
        return str(texts[0]), float(scores[0])


def _pieces(line: Image, aspect: float, count: int) -> list[Image]:
    """Up to `count` pieces of `line` (left, middle, right), each at most `aspect` times as wide
    as high: the classifier's 192x48 input would squash a whole line into noise."""
    width, height = line.size
    piece = max(1, round(aspect * height))
    if width <= piece:
        return [line]
    lefts = [(width - piece) // 2] if count == 1 else [0, (width - piece) // 2, width - piece]
    return [line.crop((left, 0, left + piece, height)) for left in lefts[:count]]


def _box_size(box: list[float]) -> tuple[float, float]:
    return box[2] - box[0], box[3] - box[1]


def _box_area(box: list[float]) -> float:
    width, height = _box_size(box)
    return width * height


def _as_array(image: Image) -> Any:
    """An RGB image as the BGR uint8 array cv2 would load (what rapidocr works on)."""
    import cv2  # rapidocr's own dependency
    import numpy as np

    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)  # 4x faster than [:, :, ::-1]


def _line_slope(output: Any) -> float:
    """Median slope of the top edges of the detector's boxes (four corners each, clockwise from
    the top left) of lines lying flat; 0 without any."""
    if output.boxes is None:
        return 0.0
    slopes = []
    for box in output.boxes:
        (x0, y0), (x1, y1) = box[0], box[1]
        height = abs(float(box[3][1]) - float(y0))
        if x1 - x0 > 3 * height > 0:
            slopes.append((float(y1) - float(y0)) / (float(x1) - float(x0)))
    return statistics.median(slopes) if slopes else 0.0


def _blocks(output: Any) -> list[Block]:
    if output.boxes is None or output.txts is None:
        return []
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
    return blocks
