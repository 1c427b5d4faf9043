"""Open an uploaded file and yield its pages one at a time as RGB images."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageSequence, UnidentifiedImageError

# Pillow's bomb guard: a few-KB PNG can claim 30000x30000 pixels. 120 MP covers A0 at 300 dpi.
MAX_IMAGE_PIXELS = 120_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
PDF_DPI = 200


class PageLoadError(Exception):
    """The input cannot be read; `code` goes into the failed job."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Page:
    index: int  # 1-based
    image: Image.Image
    dpi: int | None


class Document:
    """A readable input: knows its page count up front, renders pages lazily."""

    def __init__(self, path: Path, media_type: str) -> None:
        self.path = path
        self.media_type = media_type
        self._pdf = None
        if media_type == "application/pdf":
            self._pdf = _open_pdf(path)
            self.page_count = len(self._pdf)
        else:
            self.page_count = _count_frames(path)

    def pages(self) -> Iterator[Page]:
        if self._pdf is not None:
            yield from _pdf_pages(self._pdf)
        else:
            yield from _image_pages(self.path)

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()


def _image_error(exc: Exception) -> PageLoadError:
    if isinstance(exc, Image.DecompressionBombError):
        return PageLoadError(
            "image_too_large", f"image has more than {MAX_IMAGE_PIXELS} pixels: {exc}"
        )
    return PageLoadError("invalid_image", f"the image cannot be decoded: {exc}")


def _count_frames(path: Path) -> int:
    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _image_error(exc) from exc


def _image_pages(path: Path) -> Iterator[Page]:
    try:
        with Image.open(path) as image:
            for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
                dpi = frame.info.get("dpi")
                rgb = frame.convert("RGB")  # forces the full decode: truncation shows here
                yield Page(number, rgb, int(dpi[0]) if dpi else None)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _image_error(exc) from exc


def _open_pdf(path: Path):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise PageLoadError("pdf_encrypted", "the PDF is password-protected") from exc
        raise PageLoadError("pdf_corrupt", f"the PDF cannot be opened: {exc}") from exc


def _pdf_pages(pdf) -> Iterator[Page]:
    import pypdfium2 as pdfium

    for number in range(1, len(pdf) + 1):
        try:
            page = pdf[number - 1]
            bitmap = page.render(scale=PDF_DPI / 72)
            image = bitmap.to_pil().convert("RGB")
            page.close()
        except pdfium.PdfiumError as exc:
            raise PageLoadError("pdf_corrupt", f"page {number} cannot be rendered: {exc}") from exc
        yield Page(number, image, PDF_DPI)
