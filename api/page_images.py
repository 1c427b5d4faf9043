"""A picture of one source page, as the engine saw it, for the web page (/ui).

Rendered from the kept source (a PDF page with pdfium, an image frame with Pillow), turned by
the page's `rotation` like the engine turned it, so the result's boxes (upright page pixels)
lie on it when scaled by width/height. Bounded to MAX_SIDE pixels, JPEG; rendered on the first
request and kept as OUTPUT_DIR/<id>/pages/p<n>.jpg beside the result (removed with it).

A few-KB upload can hold 100 MP, so memory is bounded whatever the upload: one renderer per
page, one render at a time in the process (in one thread), no frame past the worker's
MAX_IMAGE_PIXELS, a JPEG decoded at a reduced scale, any other frame reduced strip by strip
(never a full-size RGB copy, 4 bytes a pixel), a PDF page rendered at most MAX_SIDE a side.
A full disk answers 507 insufficient_storage.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from api.errors import PageNotFound, PageTooLarge, result_gone
from api.page_count import PDFIUM_LOCK
from api.rendering import disk_full_as_507, one_renderer, render_alone
from shared.errors import JobNotFound, ServiceError
from shared.page_limits import MAX_IMAGE_PIXELS
from shared.results import DocumentResult, PageResult
from shared.storage import JobFiles, StoredFile

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

MAX_SIDE = 2000  # pixels, the longer side: sharp on a desktop screen, light on a phone
JPEG_QUALITY = 85
DEFAULT_PDF_DPI = 200  # the worker's render resolution when the job set none
STRIP_PIXELS = 4_000_000  # a frame is converted and reduced this many pixels at a time


def page_image(files: JobFiles, index: int, media_type: str) -> StoredFile:
    """The picture of page `index` of a succeeded job, rendered now on its first request and
    stored with the result (OUTPUT_DIR or the bucket).

    PageNotFound when the result has no such page; ResultGone when the result is gone,
    JobNotFound when the source is."""
    stored = files.stored_page_image(index)
    if stored is not None:
        return stored
    gone = result_gone(files.job_id)
    try:
        document = DocumentResult.model_validate_json(files.read_result("json"))
    except FileNotFoundError:
        raise gone from None
    page = next((p for p in document.pages if p.index == index), None)
    if page is None:
        read = ", ".join(str(p.index) for p in document.pages) or "none"
        raise PageNotFound(f"job {files.job_id} has no page {index} in its result (read: {read})")
    if not files.has_source():
        raise JobNotFound(f"the source pages of job {files.job_id} are no longer stored")
    with disk_full_as_507(f"the picture of page {index}"), one_renderer(files, f"page{index}"):
        stored = files.stored_page_image(index)
        if stored is not None:  # another request rendered it while this one waited
            return stored
        started = time.perf_counter()
        with files.source_copy() as source:
            data = render_alone(_render_or_explain, source, media_type, page)
        files.write_page_image(index, data)
        log.info(
            "job=%s rendered page %d picture in %.2f s, %d bytes",
            files.job_id,
            index,
            time.perf_counter() - started,
            len(data),
        )
    stored = files.stored_page_image(index)
    if stored is None:  # removed (retention) the moment it was stored
        raise gone
    return stored


def _render_or_explain(source: Path, media_type: str, page: PageResult) -> bytes:
    """The page's picture; for a page that could not be read (its `error` set) whose source
    cannot be drawn either, PageNotFound saying why (never a 500 for a known-broken page)."""
    try:
        return render_page_image(source, media_type, page)
    except ServiceError:
        raise
    except Exception as exc:
        if page.error is None:
            raise
        raise PageNotFound(
            f"page {page.index} could not be read ({page.error.code}: {page.error.message}) "
            f"and has no picture: {type(exc).__name__}"
        ) from exc


def render_page_image(source: Path, media_type: str, page: PageResult) -> bytes:
    """JPEG bytes of `page` of `source`, upright as the engine read it, at most MAX_SIDE."""
    if media_type == "application/pdf":
        image = _pdf_page(source, page)
    else:
        image = _image_frame(source, page.index)
    if page.rotation % 360:
        image = image.rotate(page.rotation, expand=True)  # counter-clockwise, as the engine did
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _pdf_page(source: Path, page: PageResult) -> Image.Image:
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument(source)
        try:
            pdf_page = pdf[page.index - 1]
            width_pt, height_pt = pdf_page.get_size()
            scale = min((page.dpi or DEFAULT_PDF_DPI) / 72, MAX_SIDE / max(width_pt, height_pt))
            bitmap = pdf_page.render(scale=scale)
            image = bitmap.to_pil().convert("RGB")
            bitmap.close()
            pdf_page.close()
        finally:
            pdf.close()
    return image


def _image_frame(source: Path, index: int) -> Image.Image:
    """Frame `index` of the image, reduced to about MAX_SIDE a side while it is decoded."""
    from PIL import Image  # imported on first use: the API starts without it

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # as the worker: Pillow refuses twice this
    try:
        with Image.open(source) as image:
            try:
                image.seek(index - 1)
            except EOFError:
                raise PageNotFound(f"the source has no page {index}") from None
            _check_pixels(image.width, image.height, index)
            if image.format == "JPEG":
                image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # libjpeg decodes at 1/2..1/8 scale
            return _reduced(image)
    except Image.DecompressionBombError as exc:
        raise PageTooLarge(f"page {index} has more than {MAX_IMAGE_PIXELS} pixels") from exc


def _check_pixels(width: int, height: int, index: int) -> None:
    """The worker's limit (it refused such a page): a picture is no reason to decode more."""
    if width * height > MAX_IMAGE_PIXELS:
        raise PageTooLarge(
            f"page {index} has {width * height} pixels ({width}x{height}); pictures are drawn "
            f"of pages up to {MAX_IMAGE_PIXELS}"
        )


def _reduced(frame: Image.Image) -> Image.Image:
    """The frame in RGB (L when it has no colour), shrunk by a whole factor to about MAX_SIDE.

    Converted and reduced a strip at a time: the decoded frame (1 byte a pixel for a bilevel or
    grey scan) is the only full-size copy, never a 4-bytes-a-pixel RGB one."""
    from PIL import Image

    mode = "L" if frame.mode in ("1", "L") else "RGB"
    factor = max(1, max(frame.size) // MAX_SIDE)
    if factor == 1:
        return frame.convert(mode)
    width, height = frame.size
    rows = max(factor, STRIP_PIXELS // width // factor * factor)  # whole blocks of `factor`
    out = Image.new(mode, (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = frame.crop((0, top, width, min(top + rows, height))).convert(mode)
        out.paste(strip.reduce(factor), (0, top // factor))
    return out
