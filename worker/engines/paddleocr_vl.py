"""PaddleOCR-VL (`paddleocr.PaddleOCRVL`): layout detection plus a 0.9B vision-language model.

The VL model runs on a local CUDA GPU (`native`) or behind an OpenAI-style server (`vllm-server`,
`sglang-server`, ...); the layout model always runs in-process on PADDLEOCR_VL_DEVICE.
paddle and paddleocr are imported only when the engine is built, never at module import.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from shared.results import Block
from worker.engines.base import EngineError, EngineInfo, Recognition

if TYPE_CHECKING:
    from PIL.Image import Image

    from shared.settings import Settings

log = logging.getLogger(__name__)

NATIVE_BACKEND = "native"
PADDLE_GPU_INSTALL = (
    "python -m pip install paddlepaddle-gpu==3.2.1 "
    "-i https://www.paddlepaddle.org.cn/packages/stable/cu126/"
)
PADDLEOCR_INSTALL = 'python -m pip install "paddleocr[doc-parser]"'

# Layout labels of PP-DocLayoutV2/V3 (paddlex configs/pipelines/PaddleOCR-VL*.yaml) and the prompt
# labels used without layout detection, folded into this service's block types. Labels not
# listed here pass through unchanged.
_BLOCK_TYPES: dict[str, str] = {
    "doc_title": "title",
    "paragraph_title": "title",
    "abstract_title": "title",
    "content_title": "title",
    "reference_title": "title",
    "text": "text",
    "ocr": "text",
    "content": "text",
    "abstract": "text",
    "aside_text": "text",
    "vertical_text": "text",
    "reference": "text",
    "reference_content": "text",
    "spotting": "text",
    "figure_title": "caption",
    "table_title": "caption",
    "chart_title": "caption",
    "vision_footnote": "caption",
    "table": "table",
    "formula": "formula",
    "display_formula": "formula",
    "inline_formula": "formula",
    "formula_number": "formula_number",
    "image": "figure",
    "figure": "figure",
    "chart": "figure",
    "header_image": "figure",
    "footer_image": "figure",
    "seal": "seal",
    "algorithm": "code",
    "header": "header",
    "footer": "footer",
    "footnote": "footnote",
    "number": "page_number",
}


def block_type(label: str) -> str:
    """This service's block type for a PaddleOCR-VL layout label."""
    label = label.strip().lower()
    return _BLOCK_TYPES.get(label, label or "text")


def _package_version(*names: str) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def _gpu_index(device: str) -> int:
    """`gpu` -> 0, `gpu:1` -> 1; a list such as `gpu:0,1` is refused (one page at a time)."""
    _, _, ids = device.partition(":")
    if not ids:
        return 0
    if not ids.isdigit():
        raise EngineError(
            "config_error",
            f"PADDLEOCR_VL_DEVICE={device!r}: give one GPU as gpu or gpu:N (N a number)",
        )
    return int(ids)


def check_cuda_device(paddle: Any, device: str) -> None:
    """Raise gpu_unavailable, saying what is missing, unless `device` names a usable CUDA GPU."""
    build = getattr(paddle, "__version__", "?")
    if not paddle.device.is_compiled_with_cuda():
        raise EngineError(
            "gpu_unavailable",
            f"PADDLEOCR_VL_DEVICE={device} needs CUDA, but paddle {build} is a CPU-only build "
            f"(package paddlepaddle); install the GPU build instead: {PADDLE_GPU_INSTALL}",
        )
    count = paddle.device.cuda.device_count()
    index = _gpu_index(device)
    if count == 0:
        raise EngineError(
            "gpu_unavailable",
            f"PADDLEOCR_VL_DEVICE={device}: paddle {build} has CUDA but sees no GPU; check the "
            "driver (nvidia-smi), CUDA_VISIBLE_DEVICES, and that the container runs with --gpus",
        )
    if index >= count:
        raise EngineError(
            "gpu_unavailable",
            f"PADDLEOCR_VL_DEVICE={device}: only {count} GPU(s) visible (gpu:0..gpu:{count - 1}); "
            "check CUDA_VISIBLE_DEVICES",
        )


class PaddleOcrVlEngine:
    """One PaddleOCRVL pipeline per worker process, built and checked at boot."""

    name = "paddleocr-vl"
    scripts = frozenset({"latin", "cyrillic"})  # PaddleOCR-VL reads 109 languages

    def __init__(self, settings: Settings) -> None:
        self._backend = settings.paddleocr_vl_backend.strip().lower()
        self._device = settings.paddleocr_vl_device.strip().lower()
        self._server_url = (settings.paddleocr_vl_server_url or "").strip() or None
        self._pipeline_version = settings.paddleocr_vl_pipeline_version
        native = self._backend == NATIVE_BACKEND
        if not native and self._server_url is None:
            raise EngineError(
                "config_error",
                f"PADDLEOCR_VL_BACKEND={self._backend} needs PADDLEOCR_VL_SERVER_URL, "
                "e.g. http://127.0.0.1:8118/v1",
            )
        if native and not self._device.startswith("gpu"):
            raise EngineError(
                "config_error",
                f"PADDLEOCR_VL_DEVICE={self._device} with the native backend: the VL model "
                "runs on a CUDA GPU here; set gpu or gpu:N, or use a server backend "
                "(PADDLEOCR_VL_BACKEND=vllm-server) with PADDLEOCR_VL_DEVICE=cpu",
            )

        try:
            from paddleocr import PaddleOCRVL
        except ImportError as exc:
            raise EngineError(
                "engine_not_installed", f"paddleocr is not importable ({exc}): {PADDLEOCR_INSTALL}"
            ) from exc
        try:
            # The layout model runs on paddle whatever the VL backend.
            import paddle
        except ImportError as exc:
            raise EngineError(
                "engine_not_installed",
                f"paddlepaddle is not importable ({exc}): {PADDLE_GPU_INSTALL}",
            ) from exc
        except OSError as exc:
            # A GPU build whose CUDA/cuDNN shared libraries are missing fails here.
            raise EngineError(
                "gpu_unavailable", f"paddle could not load its native libraries: {exc}"
            ) from exc
        if self._device.startswith("gpu"):
            check_cuda_device(paddle, self._device)

        kwargs: dict[str, Any] = {
            # Explicit: the library default moves between releases (v1 -> v1.5 -> v1.6).
            "pipeline_version": self._pipeline_version,
            "vl_rec_backend": self._backend,
            "device": self._device,
            # Blocks with bboxes are the point of this engine.
            "use_layout_detection": True,
            # Orientation fix and unwarping would put bboxes in a rectified image's pixels,
            # not the page's.
            "use_doc_orientation_classify": False,
            "use_doc_unwarping": False,
        }
        if not native:
            kwargs["vl_rec_server_url"] = self._server_url
        log.info("building PaddleOCRVL(%s)", ", ".join(f"{k}={v!r}" for k, v in kwargs.items()))
        try:
            self._pipeline = PaddleOCRVL(**kwargs)
        except ValueError as exc:
            # PaddleOCRVL validates pipeline_version and vl_rec_backend with ValueError.
            raise EngineError("config_error", f"PaddleOCRVL refused its settings: {exc}") from exc
        except Exception as exc:
            # Model download, missing extras, VL server unreachable (it lists the server's models).
            raise EngineError(
                "engine_init_failed", f"PaddleOCRVL could not be built: {type(exc).__name__}: {exc}"
            ) from exc

    def info(self) -> EngineInfo:
        device = self._device if self._backend == NATIVE_BACKEND else f"server:{self._server_url}"
        return EngineInfo(
            name=self.name,
            device=device,
            versions=_package_version("paddleocr", "paddlex", "paddlepaddle-gpu", "paddlepaddle"),
        )

    def warm(self) -> None:
        from PIL import Image, ImageDraw, ImageFont

        # Page-like, so the layout model finds a title and a paragraph to send to the VL model.
        image = Image.new("RGB", (800, 320), "white")
        draw = ImageDraw.Draw(image)
        draw.text((40, 40), "Warm-up page", fill="black", font=ImageFont.load_default(size=48))
        draw.text(
            (40, 150),
            "The quick brown fox jumps over the lazy dog 123.",
            fill="black",
            font=ImageFont.load_default(size=28),
        )
        try:
            recognition = self.recognize(image)
        except EngineError as exc:
            raise EngineError("warmup_failed", f"warm-up prediction failed: {exc.message}") from exc
        if not any(block.text.strip() for block in recognition.blocks):
            raise EngineError(
                "warmup_failed",
                f"PaddleOCR-VL read no text from the warm-up page "
                f"(blocks: {[b.type for b in recognition.blocks]})",
            )

    def recognize(self, image: Image) -> Recognition:
        import numpy as np

        # PaddleX reads arrays as BGR, like cv2 (ReadImage(format="BGR") passes arrays through).
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        try:
            results = list(self._pipeline.predict(bgr))
        except Exception as exc:
            raise EngineError(
                "recognition_failed", f"PaddleOCRVL.predict failed: {type(exc).__name__}: {exc}"
            ) from exc
        if len(results) != 1:
            raise EngineError(
                "recognition_failed", f"PaddleOCRVL gave {len(results)} results for one image"
            )
        return recognition_from_result(results[0])


def recognition_from_result(result: Any) -> Recognition:
    """Map one PaddleOCRVLResult (a dict subclass with `.json` and `.markdown`) to a Recognition."""
    if isinstance(result, dict) and "error" in result:
        # The pipeline yields {"error": ...} instead of a result when its settings are invalid.
        raise EngineError("recognition_failed", f"PaddleOCRVL: {result['error']}")
    page = result.json["res"]
    blocks = []
    for item in page.get("parsing_res_list") or []:
        bbox = item.get("block_bbox")
        if bbox is None or len(bbox) != 4:
            log.warning("skipping a %s block without a 4-number bbox", item.get("block_label"))
            continue
        blocks.append(
            Block(
                type=block_type(str(item.get("block_label") or "")),
                # Tables come as HTML (the VL model's OTSL converted by PaddleX); kept as is.
                text=str(item.get("block_content") or ""),
                bbox=[float(v) for v in bbox],
                # parsing_res_list has no confidence: PaddleOCR-VL's VL model gives none per block.
                score=None,
            )
        )
    markdown = result.markdown.get("markdown_texts")
    return Recognition(blocks=blocks, markdown=markdown if isinstance(markdown, str) else None)
