"""The files of a batch: what folders and globs select, where each result goes, what to skip."""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from ocrq_client.cli.errors import UsageError
from ocrq_client.client import is_source_url

# What the API accepts (it sniffs the bytes; this only picks files out of folders).
SUPPORTED_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".pdf"})
RESULT_SUFFIXES = {
    "json": ".json",
    "markdown": ".md",
    "text": ".txt",
    "pdf": ".pdf",
    "hocr": ".hocr",
    "alto": ".alto.xml",
}

FAILED_PAGES_SUFFIX = ".failed-pages.json"


@dataclass
class BatchFile:
    path: Path
    name: str  # relative path (POSIX): shown, reported, and mirrored under OUT_DIR
    out: Path | None = None
    url: str | None = None  # a document the service fetches itself (nothing uploaded)
    state: str = "pending"  # pending, skipped, queued, running, succeeded, failed, canceled
    job_id: str | None = None
    reused: bool = False  # the service already had a job for these bytes
    pages: int = 0
    error: str | None = None
    # succeeded, but these pages could not be read: "<page>: <code>: <message>" each
    pages_failed: int = 0
    page_errors: list[str] = field(default_factory=list)

    @property
    def failed_pages_note(self) -> Path | None:
        """Beside the result in OUT_DIR while it lacks pages: what a re-run with
        --retry-failed reads to submit the file again (removed once a job reads them all)."""
        return self.out.with_name(self.out.name + FAILED_PAGES_SUFFIX) if self.out else None


def _matches(name: str, rel: str, include: list[str]) -> bool:
    if not include:
        return Path(name).suffix.lower() in SUPPORTED_SUFFIXES
    name, rel = name.lower(), rel.lower()
    return any(
        fnmatch.fnmatchcase(name, p.lower()) or fnmatch.fnmatchcase(rel, p.lower()) for p in include
    )


def _walk(root: Path, recursive: bool, skip: Path | None) -> Iterator[Path]:
    """Files under `root`, sorted, hidden ones and the output folder left out."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = (
            sorted(
                d
                for d in dirnames
                if not d.startswith(".") and (skip is None or Path(dirpath, d).resolve() != skip)
            )
            if recursive
            else []
        )
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath, name)


def read_manifest(path: str) -> list[str]:
    """A manifest's URLs: one a line, blank lines and `#` comments skipped (`-`: stdin)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the manifest: {exc.strerror or exc}") from None
    urls = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#"):
            continue
        line = line.split(" #", 1)[0].strip()  # a comment after the URL (a URL has no spaces)
        if not line:
            continue
        if not is_source_url(line):
            raise UsageError(
                f"{path}:{number}: not a URL (https://, http:// or s3://): {line[:80]!r}"
            )
        urls.append(line)
    return urls


def url_name(url: str) -> str:
    """Where a URL's result goes under OUT_DIR: its host (or bucket) and path, without the
    query (a pre-signed URL's signature), no `..`."""
    if url.startswith("s3://"):
        host, _, path = url.removeprefix("s3://").partition("/")
    else:
        parts = urlsplit(url)
        host, path = parts.hostname or "host", unquote(parts.path)
    segments = [s for s in PurePosixPath(path).parts if s not in ("/", ".", "..")]
    return "/".join([host, *segments]) if segments else f"{host}/index"


def collect_files(
    inputs: list[str],
    *,
    recursive: bool = False,
    include: list[str] | None = None,
    out_dir: Path | None = None,
    fmt: str = "json",
) -> list[BatchFile]:
    """Expand folders, files and URLs into the batch, each with its place under `out_dir`.

    Files named on the command line are taken as they are; files found in folders must match
    `include` (case-insensitive globs on the name or relative path; default: supported types).
    A URL (https://, http://, s3://) is sent for the service to fetch; its result goes under
    `out_dir` at its host (or bucket) and path.
    """
    skip = out_dir.resolve() if out_dir else None
    found: dict[str, Path] = {}
    urls: dict[str, str] = {}
    for given in inputs:
        if is_source_url(given):
            name = url_name(given)
            if urls.get(name, given) != given:
                raise UsageError(
                    f"{urls[name]} and {given} would both be {name!r} under the output folder; "
                    "submit them in separate runs"
                )
            urls[name] = given
            continue
        root = Path(given)
        if root.is_dir():
            pairs = [
                (p, p.relative_to(root).as_posix())
                for p in _walk(root, recursive, skip)
                if _matches(p.name, p.relative_to(root).as_posix(), include or [])
            ]
        elif root.is_file():
            pairs = [(root, root.name)]
        else:
            raise UsageError(f"{given}: no such file or folder")
        for path, name in pairs:
            if name in found and found[name].resolve() != path.resolve():
                raise UsageError(
                    f"{found[name]} and {path} would both be {name!r} under the output folder; "
                    "submit them in separate runs"
                )
            found[name] = path
    files = []
    for name, path in found.items():
        out = out_dir / (name + RESULT_SUFFIXES[fmt]) if out_dir else None
        files.append(BatchFile(path=path, name=name, out=out))
    for name, url in urls.items():
        if name in found:
            raise UsageError(
                f"{found[name]} and {url} would both be {name!r} under the output folder"
            )
        out = out_dir / (name + RESULT_SUFFIXES[fmt]) if out_dir else None
        files.append(BatchFile(path=Path(PurePosixPath(name).name), name=name, out=out, url=url))
    return files


def skip_existing_results(files: list[BatchFile], retry_failed: bool = False) -> None:
    """Resume: a file whose result is already under OUT_DIR is skipped without a request,
    unless it lacks pages (its failed-pages note is there) and `retry_failed`."""
    for f in files:
        if f.out is None or not f.out.exists():
            continue
        note = f.failed_pages_note
        if retry_failed and note is not None and note.exists():
            continue
        f.state = "skipped"
