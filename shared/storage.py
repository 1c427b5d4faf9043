"""Where job files live, and atomic writes. Client file names never become paths."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
INPUT_NAME = "input"
RESULT_FILES = {"json": "result.json", "markdown": "result.md", "text": "result.txt"}
# Folders group-writable, files group-readable: a non-root container user shares them.
DIR_MODE = 0o2775
FILE_MODE = 0o664


def is_job_id(name: str) -> bool:
    """True for the names of job folders under TEMP_DIR and OUTPUT_DIR."""
    return bool(_JOB_ID.match(name))


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


class JobFiles:
    """Paths of one job's upload and results under TEMP_DIR and OUTPUT_DIR."""

    def __init__(self, temp_dir: Path, output_dir: Path, job_id: str) -> None:
        if not _JOB_ID.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        self.job_id = job_id
        self.input_dir = temp_dir / job_id
        self.output_dir = output_dir / job_id

    @property
    def input_path(self) -> Path:
        return self.input_dir / INPUT_NAME

    def result_path(self, fmt: str) -> Path:
        return self.output_dir / RESULT_FILES[fmt]

    def make_input_dir(self) -> Path:
        make_shared_dir(self.input_dir)
        return self.input_dir

    def write_result(self, fmt: str, data: bytes) -> Path:
        """Write one result file atomically: temp file beside it, fsync, then os.replace.

        A write that fails (a full disk) leaves no temp file behind."""
        make_shared_dir(self.output_dir)
        target = self.result_path(fmt)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target

    def remove_input(self) -> None:
        shutil.rmtree(self.input_dir, ignore_errors=True)

    def remove_all(self) -> None:
        shutil.rmtree(self.input_dir, ignore_errors=True)
        shutil.rmtree(self.output_dir, ignore_errors=True)
