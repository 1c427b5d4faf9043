"""A picture of one source page, as the engine saw it, for the web page (/ui).

Rendered from the kept source (a PDF page with pdfium, an image frame with Pillow), turned by
the page's `rotation` like the engine turned it, so the result's boxes (upright page pixels)
lie on it when scaled by width/height. Bounded to MAX_SIDE pixels, JPEG; rendered on the first
request and kept as OUTPUT_DIR/<id>/pages/p<n>.jpg beside the result (removed with it).
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from api.errors import PageNotFound, result_gone
from api.page_count import PDFIUM_LOCK
from shared.errors import JobNotFound
from shared.results import DocumentResult, PageResult
from shared.storage import JobFiles, StoredFile

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

MAX_SIDE = 2000  # pixels, the longer side: sharp on a desktop screen, light on a phone
JPEG_QUALITY = 85
DEFAULT_PDF_DPI = 200  # the worker's render resolution when the job set none


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
    started = time.perf_counter()
    with files.source_copy() as source:
        data = render_page_image(source, media_type, page)
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
    from PIL import Image, ImageSequence  # imported on first use: the API starts without it

    with Image.open(source) as image:
        for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
            if number == index:
                if frame.width * frame.height > 4 * MAX_SIDE * MAX_SIDE:
                    frame.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a lower scale
                return frame.convert("RGB")
    raise PageNotFound(f"the source has no page {index}")
