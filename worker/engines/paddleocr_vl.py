"""PaddleOCR-VL (`paddleocr.PaddleOCRVL`): layout detection plus a 0.9B vision-language model.

The VL model runs on a local CUDA GPU (`native`) or behind an OpenAI-style server (`vllm-server`,
`sglang-server`, ...); the layout model (PADDLEOCR_VL_LAYOUT=on) runs in-process on
PADDLEOCR_VL_DEVICE. Tested against the real paddleocr 3.7.0 / paddlex 3.7.2 in tests/paddle.
paddle and paddleocr are imported only when the engine is built, never at module import.

Every page is bounded (docs/gpu.md, "Bounds on every page"): each VL request carries a token cap
(PADDLEOCR_VL_MAX_NEW_TOKENS); a page whose output repeats itself (worker/engines/vl_loops.py)
is read once more with a repetition penalty and a temperature, then fails alone with
`vl_output_repetitive`; on a server backend a request that gets no answer ends within the
page's time limit (worker/engines/vl_client.py) and fails its page with `vl_server_error`.
"""

from __future__ import annotations

import logging
import queue
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from shared.error_codes import ErrorCode
from worker.engines.base import EngineError, EngineInfo, EngineUnavailable, Recognition
from worker.engines.openai_server import check_serves
from worker.engines.paddleocr_vl_results import recognition_from_result
from worker.engines.paddleocr_vl_weights import announce_download
from worker.engines.vl_client import BoundedRequests, genai_client, timed_out
from worker.engines.vl_loops import Loop, find_loop

if TYPE_CHECKING:
    from collections.abc import Sequence

    from PIL.Image import Image

    from shared.settings import Settings

log = logging.getLogger(__name__)

NATIVE_BACKEND = "native"
PADDLE_GPU_INSTALL = (
    "python -m pip install paddlepaddle-gpu==3.3.1 "
    "-i https://www.paddlepaddle.org.cn/packages/stable/cu126/"
)
PADDLEOCR_INSTALL = 'python -m pip install "paddleocr[doc-parser]"'
# The VL model each pipeline version asks a server for (paddlex configs/pipelines/*.yaml).
VL_MODELS = {
    "v1": "PaddleOCR-VL-0.9B",
    "v1.5": "PaddleOCR-VL-1.5-0.9B",
    "v1.6": "PaddleOCR-VL-1.6-0.9B",
}


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
            ErrorCode.config_error,
            f"PADDLEOCR_VL_DEVICE={device!r}: give one GPU as gpu or gpu:N (N a number)",
        )
    return int(ids)


def check_cuda_device(paddle: Any, device: str) -> None:
    """Raise gpu_unavailable, saying what is missing, unless `device` names a usable CUDA GPU."""
    build = getattr(paddle, "__version__", "?")
    if not paddle.device.is_compiled_with_cuda():
        raise EngineError(
            ErrorCode.gpu_unavailable,
            f"PADDLEOCR_VL_DEVICE={device} needs CUDA, but paddle {build} is a CPU-only build "
            f"(package paddlepaddle); install the GPU build instead: {PADDLE_GPU_INSTALL}",
        )
    count = paddle.device.cuda.device_count()
    index = _gpu_index(device)
    if count == 0:
        raise EngineError(
            ErrorCode.gpu_unavailable,
            f"PADDLEOCR_VL_DEVICE={device}: paddle {build} has CUDA but sees no GPU; check the "
            "driver (nvidia-smi), CUDA_VISIBLE_DEVICES, and that the container runs with --gpus",
        )
    if index >= count:
        raise EngineError(
            ErrorCode.gpu_unavailable,
            f"PADDLEOCR_VL_DEVICE={device}: only {count} GPU(s) visible (gpu:0..gpu:{count - 1}); "
            "check CUDA_VISIBLE_DEVICES",
        )


# Pages per batch on a server backend: paddlex's pipeline batch (configs/pipelines/
# PaddleOCR-VL*.yaml `batch_size: 64`); a longer list is read as several batches in turn.
SERVER_MAX_BATCH = 64
# Pages per batch on `native`: its VL model reads one block at a time (paddlex doc_vlm
# PADDLEOCR_VL_LOCAL_BATCH_SIZE = 1), so a batch's pages are read one after another and a
# bigger batch only makes the pages of other jobs wait behind it; 4 still lets the layout
# model read several pages in one pass (paddlex batches it by 8).
NATIVE_MAX_BATCH = 4


# Retries of a failed VL request by the OpenAI client (paddlex leaves its default, 2): one, for
# a dropped connection or a 503. A request that gets no answer ends, all its attempts and the
# client's backoff between them (openai: 0.5 s before the first retry) included, by
# REQUEST_SHARE x PAGE_TIMEOUT_SECONDS: inside the batcher's budget for the call
# (worker/batcher.py), instead of paddlex's 600 s x 3.
VL_REQUEST_RETRIES = 1
REQUEST_SHARE = 0.9
RETRY_BACKOFF_SECONDS = 0.5


def request_timeout(page_timeout: float, retries: int = VL_REQUEST_RETRIES) -> float:
    """Seconds per attempt of a VL request: 600 s pages get 269.75 s, 4 s pages 1.55 s."""
    spare = REQUEST_SHARE * page_timeout - retries * RETRY_BACKOFF_SECONDS
    return max(0.5, spare / (retries + 1))


def page_loop(recognition: Recognition, bounds: BoundedRequests | None) -> Loop | None:
    """The loop of the first block of a page whose reply looped, if any: marked by `bounds`
    (server backends: it checked each raw reply), else found in the block's text (native)."""
    for block in recognition.blocks:
        loop = bounds.loop_in(block.text) if bounds is not None else find_loop(block.text)
        if loop is not None:
            return loop
    return None


def concurrency_shares(total: int, pipelines: int) -> list[int]:
    """`total` requests in flight split over at most `pipelines` pipelines, each at least 1:
    one share per pipeline to build (fewer pipelines than asked when `total` is smaller)."""
    count = max(1, min(pipelines, total))
    base, extra = divmod(max(total, 1), count)
    return [base + 1] * extra + [base] * (count - extra)


class PaddleOcrVlEngine:
    """PaddleOCRVL pipelines built and checked at boot; reads pages in batches (one
    `predict(list)`: every block of every page goes to the VL server at once).

    On a server backend it builds BATCH_IN_FLIGHT pipelines (each < 1 s, no weights) and
    `max_in_flight` says as many batches may be read at once, each on a pipeline of its own (the
    worker's page batcher sends the next batch while one waits on the server); the pipelines
    share PADDLEOCR_VL_MAX_CONCURRENCY requests in flight (each its `vl_rec_max_concurrency`).
    `native` builds one: its pipeline holds the model on the GPU, and one predict at a time is
    what is known safe.

    `max_batch` and `pages_at_once` follow the backend: `native` takes small batches and reads
    their pages one after another (1 at once); a server backend takes 64 pages and sends them
    at once, one request per page with layout off (as many pages at once as a pipeline's
    requests); with layout on a page is as many requests as the layout model finds blocks, not
    known before the call, so the call is counted page by page as on `native`.
    """

    name = "paddleocr-vl"
    scripts = frozenset({"latin", "cyrillic"})  # PaddleOCR-VL reads 109 languages

    def __init__(self, settings: Settings) -> None:
        self._backend = settings.paddleocr_vl_backend.strip().lower()
        self._device = settings.paddleocr_vl_device.strip().lower()
        self._server_url = (settings.paddleocr_vl_server_url or "").strip() or None
        self._pipeline_version = settings.paddleocr_vl_pipeline_version
        self._model = (settings.paddleocr_vl_model or "").strip() or VL_MODELS.get(
            self._pipeline_version, ""
        )
        key = settings.paddleocr_vl_api_key
        self._api_key = key.get_secret_value() if key is not None else None
        self._layout = settings.paddleocr_vl_layout == "on"
        native = self._backend == NATIVE_BACKEND
        self._max_new_tokens = settings.paddleocr_vl_max_new_tokens
        self._loop_retry = {
            "repetition_penalty": settings.paddleocr_vl_loop_retry_repetition_penalty,
            "temperature": settings.paddleocr_vl_loop_retry_temperature,
        }
        self._page_timeout = settings.page_timeout_seconds
        self._request_timeout = request_timeout(settings.page_timeout_seconds)
        # Requests in flight per pipeline (server backends); one pipeline on `native`.
        shares = (
            [0]
            if native
            else concurrency_shares(settings.paddleocr_vl_max_concurrency, settings.batch_in_flight)
        )
        self.max_batch = NATIVE_MAX_BATCH if native else SERVER_MAX_BATCH
        self.pages_at_once = 1 if native or self._layout else min(min(shares), self.max_batch)
        # Batches read at once (worker/batcher.py runs this many dispatchers).
        self.max_in_flight = len(shares)
        if not native and self._server_url is None:
            raise EngineError(
                ErrorCode.config_error,
                f"PADDLEOCR_VL_BACKEND={self._backend} needs PADDLEOCR_VL_SERVER_URL, "
                "e.g. http://127.0.0.1:8118/v1",
            )
        if native and not self._device.startswith("gpu"):
            raise EngineError(
                ErrorCode.config_error,
                f"PADDLEOCR_VL_DEVICE={self._device} with the native backend: the VL model "
                "runs on a CUDA GPU here; set gpu or gpu:N, or use a server backend "
                "(PADDLEOCR_VL_BACKEND=vllm-server) with PADDLEOCR_VL_DEVICE=cpu",
            )

        announce_download(self._pipeline_version, layout=self._layout, native=native)
        try:
            from paddleocr import PaddleOCRVL
        except ImportError as exc:
            raise EngineError(
                ErrorCode.engine_not_installed,
                f"paddleocr is not importable ({exc}): {PADDLEOCR_INSTALL}",
            ) from exc
        try:
            # The layout model runs on paddle whatever the VL backend.
            import paddle
        except ImportError as exc:
            raise EngineError(
                ErrorCode.engine_not_installed,
                f"paddlepaddle is not importable ({exc}): {PADDLE_GPU_INSTALL}",
            ) from exc
        except OSError as exc:
            # A GPU build whose CUDA/cuDNN shared libraries are missing fails here.
            raise EngineError(
                ErrorCode.gpu_unavailable, f"paddle could not load its native libraries: {exc}"
            ) from exc
        if self._device.startswith("gpu"):
            check_cuda_device(paddle, self._device)

        kwargs: dict[str, Any] = {
            # Explicit: the library default moves between releases (v1 -> v1.5 -> v1.6).
            "pipeline_version": self._pipeline_version,
            "vl_rec_backend": self._backend,
            "device": self._device,
            # Off: each whole page is one block for the VL model (no layout weights needed).
            "use_layout_detection": self._layout,
            # Orientation fix and unwarping would put bboxes in a rectified image's pixels,
            # not the page's.
            "use_doc_orientation_classify": False,
            "use_doc_unwarping": False,
        }
        if not native:
            # The OpenAI client logs every request at INFO through httpx (openai 3: httpx2):
            # one line per block.
            for name in ("httpx", "httpx2"):
                logging.getLogger(name).setLevel(max(logging.WARNING, log.getEffectiveLevel()))
            kwargs["vl_rec_server_url"] = self._server_url
            if self._model:
                kwargs["vl_rec_api_model_name"] = self._model
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        if not native:
            # paddlex's default is 200 per pipeline: BATCH_IN_FLIGHT pipelines would have that
            # many times 200 requests in flight to one server.
            shown += f", vl_rec_max_concurrency={'/'.join(map(str, shares))}"
            shown += (
                f"; each VL request: max_new_tokens={self._max_new_tokens}, "
                f"{VL_REQUEST_RETRIES} retry, {self._request_timeout:g} s per attempt"
            )
        log.info(
            "building %d x PaddleOCRVL(%s%s)",
            len(shares),
            shown,
            ", vl_rec_api_key=***" if self._api_key else "",
        )
        if self._api_key and not native:
            kwargs["vl_rec_api_key"] = self._api_key
        try:
            self.pipelines = tuple(
                PaddleOCRVL(**kwargs)
                if native
                else PaddleOCRVL(**kwargs, vl_rec_max_concurrency=share)
                for share in shares
            )
        except ValueError as exc:
            # PaddleOCRVL validates pipeline_version and vl_rec_backend with ValueError.
            raise EngineError(
                ErrorCode.config_error, f"PaddleOCRVL refused its settings: {exc}"
            ) from exc
        except Exception as exc:
            # Model download (layout weights, native VL weights), missing extras.
            raise EngineError(
                ErrorCode.engine_init_failed,
                f"PaddleOCRVL could not be built: {type(exc).__name__}: {exc}",
            ) from exc
        # Each pipeline's VL requests bounded in time (server backends; None on native, whose
        # model runs in this process).
        self._bounds: dict[int, BoundedRequests] = {}
        if not native:
            for pipeline in self.pipelines:
                client = genai_client(pipeline)
                if client is None:
                    raise EngineError(
                        ErrorCode.engine_init_failed,
                        f"paddlex {_package_version('paddlex').get('paddlex', '?')}: no VL "
                        "client found in PaddleOCRVL (paddlex_pipeline._pipeline.vl_rec_model."
                        "genai_client) to bound its requests' time; this engine is tested with "
                        "paddlex 3.7.2",
                    )
                self._bounds[id(pipeline)] = BoundedRequests(
                    client, self._request_timeout, VL_REQUEST_RETRIES
                )
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()  # pipelines not reading now
        for pipeline in self.pipelines:
            self._free.put(pipeline)

    def info(self) -> EngineInfo:
        device = self._device if self._backend == NATIVE_BACKEND else f"server:{self._server_url}"
        return EngineInfo(
            name=self.name,
            device=device,
            versions=_package_version("paddleocr", "paddlex", "paddlepaddle-gpu", "paddlepaddle"),
        )

    def check_available(self) -> None:
        """The VL server answers `GET /models` and lists our model (no-op for native)."""
        if self._server_url is not None and self._backend != NATIVE_BACKEND:
            check_serves(self._server_url, self._model, self._api_key)

    def warm(self) -> None:
        from PIL import Image, ImageDraw, ImageFont

        try:
            self.check_available()
        except EngineUnavailable as exc:
            # At boot a missing server or model is a setup error, said before any page is read.
            raise EngineError(ErrorCode.engine_init_failed, exc.message) from exc
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
            raise EngineError(
                ErrorCode.warmup_failed, f"warm-up prediction failed: {exc.message}"
            ) from exc
        if not any(block.text.strip() for block in recognition.blocks):
            raise EngineError(
                ErrorCode.warmup_failed,
                f"PaddleOCR-VL read no text from the warm-up page "
                f"(blocks: {[b.type for b in recognition.blocks]})",
            )

    def recognize(self, image: Image) -> Recognition:
        [outcome] = self.recognize_batch([image])
        if isinstance(outcome, EngineError):
            raise outcome
        return outcome

    def recognize_batch(self, images: Sequence[Image]) -> list[Recognition | EngineError]:
        import cv2
        import numpy as np

        # PaddleX reads arrays as BGR, like cv2 (ReadImage(format="BGR") passes arrays through).
        # One copy out of PIL, one fused channel swap in cv2 (outside the GIL): the batcher's
        # dispatchers run beside the job threads in this process.
        arrays = [
            cv2.cvtColor(
                np.asarray(image if image.mode == "RGB" else image.convert("RGB")),
                cv2.COLOR_RGB2BGR,
            )
            for image in images
        ]
        if not arrays:
            return []
        pipeline = self._free.get()  # one is free whenever the batcher calls
        bounds = self._bounds.get(id(pipeline))
        try:
            if bounds is None:
                return self._read_bounded(pipeline, arrays, None)
            with bounds.batch():
                return self._read_bounded(pipeline, arrays, bounds)
        finally:
            self._free.put(pipeline)

    def _read_bounded(
        self, pipeline: Any, arrays: list[Any], bounds: BoundedRequests | None
    ) -> list[Recognition | EngineError]:
        """The pages read; a page whose output loops is read once more with the loop retry's
        sampling settings (server backends), and fails with vl_output_repetitive if it loops
        again."""
        outcomes = self._read(pipeline, arrays)
        looping = {
            i: loop
            for i, outcome in enumerate(outcomes)
            if isinstance(outcome, Recognition) and (loop := page_loop(outcome, bounds)) is not None
        }
        if not looping:
            return outcomes
        native = self._backend == NATIVE_BACKEND
        retry = ", ".join(f"{k}={v:g}" for k, v in self._loop_retry.items())
        if not native:
            log.warning(
                "%d of %d pages came back repeating themselves (%s); reading them again with %s",
                len(looping),
                len(arrays),
                next(iter(looping.values())).describe(),
                retry,
            )
            again = self._read(pipeline, [arrays[i] for i in looping], **self._loop_retry)
            for i, outcome in zip(list(looping), again, strict=True):
                outcomes[i] = outcome
                loop = page_loop(outcome, bounds) if isinstance(outcome, Recognition) else None
                if loop is None:
                    del looping[i]
                else:
                    looping[i] = loop
        for i, loop in looping.items():
            then = (
                "the native backend has no sampling settings to read it otherwise"
                if native
                else f"and again when read once more with {retry}"
            )
            outcomes[i] = EngineError(
                ErrorCode.vl_output_repetitive,
                f"the VL model kept repeating itself on this page ({loop.describe()}, up to "
                f"its cap of PADDLEOCR_VL_MAX_NEW_TOKENS={self._max_new_tokens} tokens), {then}",
            )
        return outcomes

    def _read(
        self, pipeline: Any, arrays: list[Any], **sampling: float
    ) -> list[Recognition | EngineError]:
        """One predict(list); if it fails, each half again, down to the failing pages alone.

        paddlex fails a whole predict call when one VL request fails (after the OpenAI client's
        retry), so a bad page would take its batch-mates down with it. Within one batch read
        the pages already answered are not sent again (vl_client.BoundedRequests).
        """
        try:
            # use_queues=False: no fixed 0.5 s wait per call, and the OpenAI errors come raw
            # instead of as RuntimeError("Exception from the 'vlm' worker: ...").
            results = list(
                pipeline.predict(
                    arrays, use_queues=False, max_new_tokens=self._max_new_tokens, **sampling
                )
            )
        except Exception as exc:  # noqa: BLE001 (a failed read is the pages' outcome)
            failure = self._failure(exc)  # raises EngineUnavailable when the server is gone
            if len(arrays) == 1:
                return [failure]
            log.warning("a batch of %d pages failed (%s); reading each half", len(arrays), exc)
            half = len(arrays) // 2
            return self._read(pipeline, arrays[:half], **sampling) + self._read(
                pipeline, arrays[half:], **sampling
            )
        if len(results) != len(arrays):
            error = EngineError(
                ErrorCode.recognition_failed,
                f"PaddleOCRVL gave {len(results)} results for {len(arrays)} images",
            )
            return [error] * len(arrays)
        outcomes: list[Recognition | EngineError] = []
        for result in results:
            try:
                outcomes.append(recognition_from_result(result))
            except EngineError as exc:
                outcomes.append(exc)
        return outcomes

    def _failure(self, exc: Exception) -> EngineError:
        """The EngineError of a failed predict; EngineUnavailable raised if the server is gone."""
        detail = f"{type(exc).__name__}: {exc}"
        if type(exc).__module__.split(".")[0] != "openai" and not timed_out(exc):
            return EngineError(
                ErrorCode.recognition_failed, f"PaddleOCRVL.predict failed: {detail}"
            )
        # Connection refused, 404 model, 401 key: is the server still there, serving our model?
        self.check_available()
        if timed_out(exc):
            return EngineError(
                ErrorCode.vl_server_error,
                f"VL server {self._server_url} did not answer this page within "
                f"{self._request_timeout:g} s, {VL_REQUEST_RETRIES + 1} times (in all "
                f"{REQUEST_SHARE:g} x PAGE_TIMEOUT_SECONDS={self._page_timeout}): {detail}",
            )
        return EngineError(
            ErrorCode.vl_server_error, f"VL server {self._server_url} failed: {detail}"
        )
