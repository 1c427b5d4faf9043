"""Count a document's pages cheaply, without rendering or decoding pixels (the API uses this)."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

_MAX_IFDS = 100_000
# pdfium is not thread-safe: every pdfium call of the API process (page counts here, page
# pictures in api/page_images.py), each in the threadpool, holds this lock
PDFIUM_LOCK = threading.Lock()


def count_pages(path: Path, media_type: str) -> int | None:
    """Pages in the file, or None when it cannot be told here (the worker then decides)."""
    if media_type == "application/pdf":
        return _pdf_pages(path)
    if media_type == "image/tiff":
        return _tiff_pages(path)
    return 1


def _pdf_pages(path: Path) -> int | None:
    import pypdfium2 as pdfium  # ctypes binding of pdfium; no numpy, no Pillow

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(path)
        except pdfium.PdfiumError:
            return None  # encrypted or corrupt: the job fails in the worker with its code
        try:
            return len(pdf)
        finally:
            pdf.close()


def _tiff_pages(path: Path) -> int | None:
    """Walk the chain of image file directories (IFDs): one per page."""
    with open(path, "rb") as fh:
        header = fh.read(8)
        if len(header) < 8:
            return None
        endian = "<" if header[:2] == b"II" else ">"
        (offset,) = struct.unpack(endian + "I", header[4:8])
        seen: set[int] = set()
        count = 0
        while offset and count < _MAX_IFDS:
            if offset in seen:
                return None  # a loop in the IFD chain: corrupt
            seen.add(offset)
            fh.seek(offset)
            raw = fh.read(2)
            if len(raw) < 2:
                return None
            (entries,) = struct.unpack(endian + "H", raw)
            fh.seek(offset + 2 + entries * 12)
            raw = fh.read(4)
            if len(raw) < 4:
                return None
            count += 1
            (offset,) = struct.unpack(endian + "I", raw)
        return count
