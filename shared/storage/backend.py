"""The storage interface: the few operations a backend offers, whatever keeps the objects.

Two sibling implementations: `LocalStore` (shared/storage/local.py, files under TEMP_DIR and
OUTPUT_DIR) and `Bucket` (shared/storage/s3.py, objects in an S3-compatible bucket). Neither
knows what a job is: keys are opaque `a/b/c` strings (shared/storage/layout.py builds them),
and `JobFiles` (shared/storage/job_files.py) is the one layer above that knows the layout.
Every write is all-or-nothing: a reader sees the previous object (or none) or the whole new one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class StoredFile:
    """A stored file to serve: a local path, or the chunks of an object and its size; `key`
    names it in its store (for a pre-signed URL)."""

    size: int
    path: Path | None = None
    chunks: Callable[[], Iterator[bytes]] | None = None
    key: str | None = None


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing sees it (retention judges its age)."""

    key: str
    modified: float  # epoch seconds


@runtime_checkable
class ObjectStore(Protocol):
    """Where a job's objects live. Missing objects read as FileNotFoundError (or None from
    `size`); a backend that cannot answer raises StorageUnavailable (shared/errors.py)."""

    def put(self, key: str, data: bytes | Path) -> None:
        """Store `data` (bytes, or a whole local file streamed from disk) as `key`, whole or
        not at all. A file already at the key's own place (`local_path`) is stored as is."""
        ...

    def writing(self, key: str, scratch_dir: Path) -> AbstractContextManager[Path]:
        """A local path to write `key` into (for writers that need a file, e.g. a PDF
        renderer); stored whole when the block ends well, nothing when it fails. A backend
        that does not keep files writes it in `scratch_dir` first."""
        ...

    def copy(self, source: str, target: str) -> None:
        """Store a copy of `source` as `target` (on the server side where it can)."""
        ...

    def size(self, key: str) -> int | None:
        """The object's size in bytes, None when there is none."""
        ...

    def open(self, key: str) -> Iterator[bytes]:
        """The object's bytes, a chunk at a time (FileNotFoundError once iterated, if none)."""
        ...

    def signed_url(self, key: str, seconds: int, media_type: str, disposition: str) -> str | None:
        """A URL that GETs `key` without credentials for `seconds`, answered with
        `media_type` and `disposition` (Content-Type, Content-Disposition); None from a
        backend that has no URLs of its own (local folders)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file that holds `key` on this machine (stored or not yet), for readers that
        need a real file; None from a backend that keeps no files."""
        ...

    def delete(self, keys: Iterable[str]) -> None:
        """Remove the objects; a missing one is no error."""
        ...

    def delete_under(self, prefix: str) -> None:
        """Remove every object whose key starts with `prefix` (a folder: ends with `/`)."""
        ...

    def objects(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object whose key starts with `prefix`, with its last change (retention)."""
        ...

    def discard_unfinished(self, started_before: float) -> int:
        """Drop writes begun before `started_before` (epoch s) that their process never
        finished (it was killed mid-write); how many were dropped."""
        ...
