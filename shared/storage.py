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


class DirectoryNotWritable(Exception):
    """A configured directory cannot be created or written."""


def ensure_writable_dir(path: Path, label: str) -> Path:
    """Create `path` if needed and prove it writable with a probe file; say clearly if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
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
        self.input_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        return self.input_dir

    def write_result(self, fmt: str, data: bytes) -> Path:
        """Write one result file atomically: temp file beside it, fsync, then os.replace."""
        self.output_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        target = self.result_path(fmt)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
        return target

    def remove_input(self) -> None:
        shutil.rmtree(self.input_dir, ignore_errors=True)

    def remove_all(self) -> None:
        shutil.rmtree(self.input_dir, ignore_errors=True)
        shutil.rmtree(self.output_dir, ignore_errors=True)
