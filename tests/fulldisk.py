"""A real full disk for tests: a small tmpfs mounted on a test's folder, then filled up.

Mounting needs root (CAP_SYS_ADMIN); a test that cannot mount is skipped and says why.
RLIMIT_FSIZE would give EFBIG, not the ENOSPC of a full disk, so it is no substitute.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    """`path` as a fresh tmpfs of `size`, unmounted afterwards (whatever is on it goes too)."""
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=2775", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {mount.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Write one file in `folder` until the filesystem says ENOSPC; the file, to free it later."""
    filler = folder / "filler"
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler
