"""Produce an archive format of a succeeded job once, on its first request, beside its result.

Nothing is built at the job's end: jobs whose owners never ask for a PDF pay nothing. The first
request renders the file from result.json (and, for the PDF, the upload kept in
OUTPUT_DIR/sources/<id>/) into OUTPUT_DIR/<id>/result.<format>, atomically; later requests
serve that file. Retention removes it with the job's other files. Concurrent first requests
(threads of one API process, or several API processes on one host) wait for one renderer.
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
from shared.errors import JobNotFound
from shared.results import DocumentResult
from shared.storage import JobFiles, atomic_target

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
        lock_path = files.output_dir / f".{fmt}.lock"
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                lock_path.unlink(missing_ok=True)  # waiters re-check the result before rendering
                fcntl.flock(handle, fcntl.LOCK_UN)
    with _LOCKS_GUARD:
        _LOCKS.pop((files.job_id, fmt), None)


def archive_path(files: JobFiles, fmt: str, media_type: str) -> Path:
    """The job's `fmt` file, rendered now if this is its first request.

    JobNotFound when the result (or, for the PDF, the source) is no longer stored."""
    path = files.result_path(fmt)
    if path.is_file():
        return path
    json_path = stored_result_json(files)
    if fmt == "pdf" and not files.source_path.is_file():
        raise JobNotFound(
            f"the source pages of job {files.job_id} are no longer stored (it ended before "
            "sources were kept); format=hocr and format=alto still work"
        )
    with _rendering(files, fmt):
        if path.is_file():  # another request rendered it while this one waited
            return path
        started = time.perf_counter()
        document = DocumentResult.model_validate_json(json_path.read_bytes())
        render_archive(document, fmt, files.source_path, media_type, path)
        log.info(
            "job=%s rendered result.%s: %d page(s) in %.2f s, %d bytes",
            files.job_id,
            fmt,
            len(document.pages),
            time.perf_counter() - started,
            path.stat().st_size,
        )
    return path


def stored_result_json(files: JobFiles) -> Path:
    """The job's result.json, what on-request renderings read; JobNotFound once it is gone."""
    json_path = files.result_path("json")
    if not json_path.is_file():
        raise JobNotFound(f"the result of job {files.job_id} is gone (expired or deleted)")
    return json_path


def render_archive(
    document: DocumentResult, fmt: str, source: Path, media_type: str, target: Path
) -> Path:
    """Write `document` as `fmt` to `target` atomically (temp file beside it, fsync, rename)."""
    with atomic_target(target) as tmp:
        if fmt == "pdf":
            write_pdf(document, source, media_type, tmp)
            return target
        with open(tmp, "wb") as out:
            if fmt == "hocr":
                write_hocr(
                    out, document.job_id, document.engine, document.pages, len(document.pages)
                )
            elif fmt == "alto":
                write_alto(out, document.job_id, document.engine, document.pages)
            else:
                raise ValueError(f"not an archive format: {fmt!r}")
    return target
