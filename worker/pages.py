"""Open an uploaded file and yield the selected pages one at a time as RGB images."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageSequence, UnidentifiedImageError

from shared.error_codes import ErrorCode
from shared.page_limits import MAX_IMAGE_PIXELS
from shared.results import Block

Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
# PDFium is not thread-safe, not even across documents: a worker running several jobs in threads
# (a batching engine) makes one pdfium call at a time.
_PDFIUM = threading.RLock()
# x/y resolutions this close are taken as square; pixels more than this many times as tall as
# wide (or wide as tall) are not a scanner's (a fax's are 2x) and are left as they come.
_SQUARE_ENOUGH = 0.02
MAX_PIXEL_ASPECT = 4.0
_IMAGE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
)


class PageLoadError(Exception):
    """The input cannot be read; `code` goes into the failed job."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)  # a member, never a bare string (ValueError if unknown)
        self.message = message


@dataclass
class Page:
    index: int  # 1-based page number in the document
    image: Image.Image | None  # None when the page was not rendered (text layer used)
    width: int
    height: int
    dpi: int | None
    text_blocks: list[Block] | None = None  # the PDF text layer, when asked for and present
    # Why this page could not be loaded (a PDF page that does not render, or too large): the
    # page is failed alone, its job reads the others (image is None then)
    error: PageLoadError | None = None


class Document:
    """A readable input: knows its page count up front, renders pages lazily, one at a time."""

    def __init__(self, path: Path, media_type: str, dpi: int) -> None:
        self.path = path
        self.dpi = dpi
        self._pdf: Any = None
        if media_type == "application/pdf":
            with _PDFIUM:
                self._pdf = _open_pdf(path)
                self.page_count = len(self._pdf)
        else:
            self.page_count = _count_frames(path)

    def pages(self, numbers: list[int], use_text_layer: bool = False) -> Iterator[Page]:
        if self._pdf is not None:
            yield from _pdf_pages(self._pdf, numbers, self.dpi, use_text_layer)
        else:
            yield from _image_pages(self.path, numbers)

    def close(self) -> None:
        if self._pdf is not None:
            with _PDFIUM:
                self._pdf.close()


def input_missing() -> PageLoadError:
    """The upload is not in TEMP_DIR (removed or lost before or while the job ran)."""
    return PageLoadError(ErrorCode.input_missing, "the uploaded file is gone")


def _image_error(exc: Exception, path: Path) -> PageLoadError:
    """The client sees this message: Pillow's may name the server's file, so it never does."""
    if isinstance(exc, FileNotFoundError):
        return input_missing()
    if isinstance(exc, Image.DecompressionBombError):
        return PageLoadError(
            ErrorCode.image_too_large, f"image has more than {MAX_IMAGE_PIXELS} pixels: {exc}"
        )
    if isinstance(exc, UnidentifiedImageError):  # "cannot identify image file '/app/temp/…'"
        reason = "its bytes are not a readable image of the type they announce"
    else:
        reason = str(exc).replace(str(path), "the upload") or type(exc).__name__
    return PageLoadError(ErrorCode.invalid_image, f"the image cannot be decoded: {reason}")


def _check_pixels(image: Image.Image) -> None:
    """Pillow only raises above twice MAX_IMAGE_PIXELS (a warning below): refuse from once."""
    pixels = image.width * image.height
    if pixels > MAX_IMAGE_PIXELS:
        raise PageLoadError(
            ErrorCode.image_too_large,
            f"image has {pixels} pixels ({image.width}x{image.height}); "
            f"the limit is {MAX_IMAGE_PIXELS}",
        )


def _count_frames(path: Path) -> int:
    try:
        with Image.open(path) as image:
            _check_pixels(image)
            return getattr(image, "n_frames", 1)
    except _IMAGE_ERRORS as exc:
        raise _image_error(exc, path) from exc


def _image_pages(path: Path, numbers: list[int]) -> Iterator[Page]:
    wanted = set(numbers)
    try:
        with Image.open(path) as image:
            for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
                if number not in wanted:
                    continue
                _check_pixels(frame)  # each TIFF frame has its own size
                rgb = frame.convert("RGB")  # forces the full decode: truncation shows here
                rgb, dpi = square_pixels(rgb, frame.info.get("dpi"))
                yield Page(number, rgb, rgb.width, rgb.height, dpi)
    except _IMAGE_ERRORS as exc:
        raise _image_error(exc, path) from exc


def square_pixels(image: Image.Image, dpi: Any) -> tuple[Image.Image, int | None]:
    """`image` with square pixels, and its dpi: a fax (204 x 98 dpi, or 204 x 196 "fine") or any
    image whose x and y resolutions differ is stretched along its coarser axis to the finer one,
    else its text comes out squashed. Left as it is beyond MAX_PIXEL_ASPECT (not a real scan) or
    when the stretched image would pass MAX_IMAGE_PIXELS."""
    if not dpi:
        return image, None
    x_dpi, y_dpi = (float(v) for v in dpi)
    finer = max(x_dpi, y_dpi)
    if min(x_dpi, y_dpi) <= 0 or finer / min(x_dpi, y_dpi) > MAX_PIXEL_ASPECT:
        return image, int(x_dpi) if x_dpi > 0 else None
    size = (round(image.width * finer / x_dpi), round(image.height * finer / y_dpi))
    if abs(x_dpi - y_dpi) / finer < _SQUARE_ENOUGH or size[0] * size[1] > MAX_IMAGE_PIXELS:
        return image, int(x_dpi)
    stretched = image.resize(size, Image.Resampling.NEAREST)
    stretched.info.update(image.info)
    stretched.info["dpi"] = (finer, finer)
    return stretched, int(finer)


def _open_pdf(path: Path) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(path)
    except FileNotFoundError:
        raise input_missing() from None
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise PageLoadError(ErrorCode.pdf_encrypted, "the PDF is password-protected") from exc
        raise PageLoadError(ErrorCode.pdf_corrupt, f"the PDF cannot be opened: {exc}") from exc


def _pdf_pages(pdf: Any, numbers: list[int], dpi: int, use_text_layer: bool) -> Iterator[Page]:
    """One Page per number; a page that cannot be loaded comes with its `error`."""
    for number in numbers:
        with _PDFIUM:
            try:
                page = _pdf_page(pdf, number, dpi, use_text_layer)
            except PageLoadError as exc:
                page = Page(number, None, 0, 0, dpi, error=exc)
        yield page


def _pdf_page(pdf: Any, number: int, dpi: int, use_text_layer: bool) -> Page:
    import pypdfium2 as pdfium

    scale = dpi / 72
    try:
        page = pdf[number - 1]
        width_pt, height_pt = page.get_size()
        width, height = round(width_pt * scale), round(height_pt * scale)
        if use_text_layer:
            blocks = _text_layer_blocks(page, height_pt, scale)
            if blocks:
                page.close()
                return Page(number, None, width, height, dpi, text_blocks=blocks)
        if width * height > MAX_IMAGE_PIXELS:  # a huge MediaBox: refuse before rendering
            page.close()
            raise PageLoadError(
                ErrorCode.image_too_large,
                f"page {number} would render to {width}x{height} pixels at {dpi} dpi; the "
                f"limit is {MAX_IMAGE_PIXELS} pixels (a lower dpi may fit)",
            )
        bitmap = page.render(scale=scale)
        image = bitmap.to_pil().convert("RGB")
        bitmap.close()  # here, under the lock, not by a finalizer in some other thread
        page.close()
    except (pdfium.PdfiumError, OSError, ValueError, MemoryError) as exc:
        raise PageLoadError(
            ErrorCode.pdf_corrupt, f"page {number} cannot be rendered: {exc}"
        ) from exc
    return Page(number, image, image.width, image.height, dpi)


def _text_layer_blocks(page: Any, height_pt: float, scale: float) -> list[Block]:
    """The page's embedded text, one block per text run, bboxes in rendered-page pixels."""
    textpage = page.get_textpage()
    try:
        blocks = []
        for i in range(textpage.count_rects()):
            left, bottom, right, top = textpage.get_rect(i)
            text = textpage.get_text_bounded(left, bottom, right, top).strip()
            if text:
                x0, x1 = left * scale, right * scale
                y0, y1 = (height_pt - top) * scale, (height_pt - bottom) * scale
                bbox = [round(v, 1) for v in (x0, y0, x1, y1)]
                blocks.append(Block(type="text", text=text, bbox=bbox))
        return blocks
    finally:
        textpage.close()
