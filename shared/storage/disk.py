"""Files on this machine's disk: shared modes whatever the umask, atomic writes, scratch names.

Used by the local backend for the files it stores, and by every backend for a process's own
scratch files (an upload's spool, a worker's copy of its input, a render's temp file).
"""

from __future__ import annotations

import errno
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Folders group-writable, files group-readable: a non-root container user shares them.
DIR_MODE = 0o2775
FILE_MODE = 0o664


def is_disk_full(exc: OSError) -> bool:
    """No room left: the disk is full (ENOSPC) or the user's quota is used up (EDQUOT)."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def hide_dirs(message: str, dirs: dict[str, Path]) -> str:
    """`message` with each folder's path replaced by its setting's name: clients see error
    messages, and the server's layout is none of their business."""
    for label, path in dirs.items():
        message = message.replace(str(path), label)
    return message


class DirectoryNotWritable(Exception):
    """A configured directory cannot be created or written."""


def make_shared_dir(path: Path) -> None:
    """mkdir with DIR_MODE really applied: mkdir's mode passes through the umask and loses
    setgid. A folder that already exists is left alone (it may belong to another user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        if not path.is_dir():
            raise
        return
    os.chmod(path, DIR_MODE)


def open_shared_file(path: Path) -> int:
    """Create (or empty) `path` with FILE_MODE whatever the process umask; a write-only fd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_shared_file(path: Path) -> None:
    """Create (or empty) `path` with FILE_MODE whatever the process umask."""
    os.close(open_shared_file(path))


def ensure_writable_dir(path: Path, label: str) -> Path:
    """Create `path` if needed and prove it writable with a probe file; say clearly if not."""
    try:
        make_shared_dir(path)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise DirectoryNotWritable(
            f"{label}={path} is not writable by uid {os.getuid()}: {exc.strerror or exc}. "
            f"Create it and give this user write access, or point {label} elsewhere."
        ) from exc
    return path


@contextmanager
def atomic_target(target: Path) -> Iterator[Path]:
    """A temp path beside `target` to write; when the block ends well it is fsynced and moved
    onto `target` (os.replace), else removed: a reader never sees half a file."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomically(target: Path, data: bytes) -> Path:
    """Temp file beside `target`, fsync, then os.replace; a failed write leaves no temp file."""
    with atomic_target(target) as tmp:
        tmp.write_bytes(data)
    return target


def scratch_path(temp_dir: Path, kind: str) -> Path:
    """A fresh dot-file name in TEMP_DIR for a short-lived local file (never a job's folder)."""
    return temp_dir / f".{kind}-{uuid.uuid4().hex}"


def spool(chunks: Iterator[bytes], dest: Path) -> None:
    """Write `chunks` into a new shared file `dest`; on any failure (the source missing, a
    full disk) no file is left."""
    try:
        create_shared_file(dest)
        with open(dest, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        close = getattr(chunks, "close", None)  # a generator's response body, released now
        if close is not None:
            close()
