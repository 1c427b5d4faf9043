"""Produce an archive format of a succeeded job once, on its first request, beside its result.

Nothing is built at the job's end: jobs whose owners never ask for a PDF pay nothing. The first
request renders the file from result.json (and, for the PDF, the kept upload) and stores it as
result.<format> beside the others (JobFiles.archive_target: whole or not at all); later
requests serve that file. Retention removes it with the job's other files. Concurrent first
requests (threads of one API process, or several API processes on one host) wait for one
renderer; API pods on other hosts (STORAGE_URL=s3://) may render the same file twice, each
storing a whole one.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from api.archives.alto import write_alto
from api.archives.hocr import write_hocr
from api.archives.pdf import write_pdf
from api.errors import result_gone
from shared.errors import JobNotFound
from shared.results import DocumentResult
from shared.storage import JobFiles, StoredFile

log = logging.getLogger(__name__)

ARCHIVE_FORMATS = ("pdf", "hocr", "alto")
ARCHIVE_MEDIA_TYPES = {
    "pdf": "application/pdf",
    "hocr": "text/html; charset=utf-8",
    "alto": "application/xml",
}
_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def _rendering(files: JobFiles, fmt: str) -> Iterator[None]:
    """One renderer of this job's `fmt` at a time: a thread lock, then a flock across processes."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault((files.job_id, fmt), threading.Lock())
    with lock:
        lock_path = files.render_lock_path(fmt)
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                lock_path.unlink(missing_ok=True)  # waiters re-check the result before rendering
                fcntl.flock(handle, fcntl.LOCK_UN)
    with _LOCKS_GUARD:
        _LOCKS.pop((files.job_id, fmt), None)


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
    with _rendering(files, fmt):
        stored = files.stored_result(fmt)
        if stored is not None:  # another request rendered it while this one waited
            return stored
        started = time.perf_counter()
        document = DocumentResult.model_validate_json(files.read_result("json"))
        with files.archive_target(fmt) as target:
            if fmt == "pdf":
                with files.source_copy() as source:
                    render_archive(document, fmt, source, media_type, target)
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
            write_hocr(out, document.job_id, document.engine, document.pages, len(document.pages))
        elif fmt == "alto":
            write_alto(out, document.job_id, document.engine, document.pages)
        else:
            raise ValueError(f"not an archive format: {fmt!r}")
    return target
