"""STORAGE_URL empty: objects as files in TEMP_DIR and OUTPUT_DIR, which the API and the
workers share (one volume).

Key `temp/<rest>` is TEMP_DIR/<rest>, `output/<rest>` OUTPUT_DIR/<rest>, `sources/<rest>`
OUTPUT_DIR/sources/<rest>. Writes are a temp file beside the target, fsynced, then os.replace:
a reader never sees half a file, and a failed write (a full disk) leaves no temp file. Folders
and files get DIR_MODE/FILE_MODE whatever the umask, so a non-root container user shares them.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.storage.backend import StoredObject
from shared.storage.disk import atomic_target, make_shared_dir
from shared.storage.layout import OUTPUT_AREA, SOURCES_DIR, TEMP_AREA

log = logging.getLogger(__name__)

_READ_CHUNK = 256 << 10  # bytes per chunk read


class LocalStore:
    """The local backend (an ObjectStore): one folder per area."""

    def __init__(self, temp_dir: Path, output_dir: Path) -> None:
        self.bases = {TEMP_AREA: temp_dir, OUTPUT_AREA: output_dir, SOURCES_DIR: output_dir}
        self.roots = {
            TEMP_AREA: temp_dir,
            OUTPUT_AREA: output_dir,
            SOURCES_DIR: output_dir / SOURCES_DIR,
        }

    def local_path(self, key: str) -> Path:
        """The file of `key` (ValueError for a key that is no plain relative path)."""
        area, _, rest = key.partition("/")
        parts = rest.split("/")
        if area not in self.roots or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"not a storage key: {key!r}")
        return self.roots[area].joinpath(*parts)

    def _make_dirs(self, key: str) -> Path:
        """The key's file, its folders made (shared) from the configured folder down."""
        target = self.local_path(key)
        base = self.bases[key.partition("/")[0]]
        missing, folder = [], target.parent
        while folder != base and not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            make_shared_dir(folder)
        return target

    # -- writes --
    def put(self, key: str, data: bytes | Path) -> None:
        target = self.local_path(key)
        if isinstance(data, Path) and data == target:
            return  # written in place (an upload's spool is its stored input)
        with self.writing(key, target.parent) as tmp:
            if isinstance(data, Path):
                shutil.copyfile(data, tmp)
            else:
                tmp.write_bytes(data)

    @contextmanager
    def writing(self, key: str, scratch_dir: Path) -> Iterator[Path]:
        with atomic_target(self._make_dirs(key)) as tmp:
            yield tmp

    def copy(self, source: str, target: str) -> None:
        """A hard link (the same bytes, now under two names); across filesystems or where
        links are refused, a copy written atomically."""
        path = self._make_dirs(target)
        try:
            os.link(self.local_path(source), path)
        except FileExistsError:
            return  # a previous attempt made it
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            with atomic_target(path) as tmp:
                shutil.copyfile(self.local_path(source), tmp)

    # -- reads --
    def size(self, key: str) -> int | None:
        path = self.local_path(key)
        try:
            size = path.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return None
        return size if path.is_file() else None

    def open(self, key: str) -> Iterator[bytes]:
        with open(self.local_path(key), "rb") as fh:
            while chunk := fh.read(_READ_CHUNK):
                yield chunk

    def signed_url(self, key: str, seconds: int, media_type: str, disposition: str) -> None:
        """Files on a volume have no URL of their own: the API serves them."""
        return None

    # -- listing and removal --
    def delete(self, keys: Iterable[str]) -> None:
        """Unlink each file, then its job's folder if that is left empty."""
        for key in keys:
            path = self.local_path(key)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove %s (retention will): %s", path, exc)
                continue
            root = self.roots[key.partition("/")[0]]
            folder = path.parent
            while folder != root and folder.is_relative_to(root):
                try:
                    folder.rmdir()
                except OSError:
                    break  # not empty (or gone): the rest is not ours to remove
                folder = folder.parent

    def delete_under(self, prefix: str) -> None:
        shutil.rmtree(self.local_path(prefix.rstrip("/")), ignore_errors=True)

    def objects(self, prefix: str = "") -> Iterator[StoredObject]:
        for area, root in self.roots.items():
            if not (f"{area}/".startswith(prefix) or prefix.startswith(f"{area}/")):
                continue
            for folder, dirs, names in os.walk(root):
                here = Path(folder)
                if here == root and area == OUTPUT_AREA:
                    dirs[:] = [d for d in dirs if d != SOURCES_DIR]  # the sources area's own
                for name in names:
                    path = here / name
                    key = "/".join((area, *path.relative_to(root).parts))
                    if not key.startswith(prefix):
                        continue
                    try:
                        modified = path.stat().st_mtime
                    except FileNotFoundError:
                        continue  # removed meanwhile
                    yield StoredObject(key, modified)

    def discard_unfinished(self, started_before: float) -> int:
        # An unfinished write is a dot-file in its job's folder: it goes with the folder.
        return 0
