"""Produce an archive format of a succeeded job once, on its first request, beside its result.

Nothing is built at the job's end: jobs whose owners never ask for a PDF pay nothing. The first
request renders the file from result.json (and, for the PDF, the kept upload) and stores it as
result.<format> beside the others (JobFiles.result_target: whole or not at all; a full disk
answers 507 insufficient_storage); later requests serve that file. Retention removes it with
the job's other files. Concurrent first requests wait for one renderer (api/rendering.py).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from api.archives.alto import write_alto
from api.archives.hocr import write_hocr
from api.archives.pdf import write_pdf
from api.errors import result_gone
from api.rendering import disk_full_as_507, one_renderer, render_alone
from shared.errors import JobNotFound
from shared.results import DocumentResult
from shared.storage import JobFiles, StoredFile

log = logging.getLogger(__name__)

ARCHIVE_FORMATS = ("pdf", "hocr", "alto")
ARCHIVE_MEDIA_TYPES = {
    "pdf": "application/pdf",
    "hocr": "text/vnd.hocr+html; charset=utf-8",  # never rendered as a page of our origin
    "alto": "application/xml",
}


def archive_file(files: JobFiles, fmt: str, media_type: str) -> StoredFile:
    """The job's `fmt` file, rendered now if this is its first request.

    ResultGone when the result is no longer stored; JobNotFound when (for the PDF) its source
    is not."""
    stored = files.stored_result(fmt)
    if stored is not None:
        return stored
    gone = result_gone(files.job_id)
    if not files.has_result("json"):
        raise gone
    if fmt == "pdf" and not files.has_source():
        raise JobNotFound(
            f"the source pages of job {files.job_id} are no longer stored (it ended before "
            "sources were kept); format=hocr and format=alto still work"
        )
    with disk_full_as_507(f"the job's {fmt} file"), one_renderer(files, fmt):
        stored = files.stored_result(fmt)
        if stored is not None:  # another request rendered it while this one waited
            return stored
        started = time.perf_counter()
        document = DocumentResult.model_validate_json(files.read_result("json"))
        with files.result_target(fmt) as target:
            if fmt == "pdf":
                with files.source_copy() as source:  # decodes the pages: one PDF at a time
                    render_alone(render_archive, document, fmt, source, media_type, target)
            else:
                render_archive(document, fmt, None, media_type, target)
        stored = files.stored_result(fmt)
        if stored is None:  # removed (retention, a cancel) the moment it was stored
            raise gone
        log.info(
            "job=%s rendered result.%s: %d page(s) in %.2f s, %d bytes",
            files.job_id,
            fmt,
            len(document.pages),
            time.perf_counter() - started,
            stored.size,
        )
    return stored


def render_archive(
    document: DocumentResult, fmt: str, source: Path | None, media_type: str, target: Path
) -> Path:
    """Write `document` as `fmt` into `target` (a temp file the caller makes the result)."""
    if fmt == "pdf":
        assert source is not None
        write_pdf(document, source, media_type, target)
        return target
    with open(target, "wb") as out:
        if fmt == "hocr":
            write_hocr(out, document.job_id, document.engine, document.pages)
        elif fmt == "alto":
            write_alto(out, document.job_id, document.engine, document.pages)
        else:
            raise ValueError(f"not an archive format: {fmt!r}")
    return target
