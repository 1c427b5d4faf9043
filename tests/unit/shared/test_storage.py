from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.storage import (
    DIR_MODE,
    FILE_MODE,
    DirectoryNotWritable,
    JobFiles,
    create_shared_file,
    ensure_writable_dir,
)
from tests.fulldisk import fill, small_tmpfs

JOB = "0123456789abcdef0123456789abcdef"


def test_result_writes_are_atomic_and_leave_no_temp_files(tmp_path: Path) -> None:
    files = JobFiles(tmp_path / "t", tmp_path / "o", JOB)
    files.write_result("json", b"{}")
    files.write_result("json", b'{"v": 2}')

    assert files.result_path("json").read_bytes() == b'{"v": 2}'
    assert [p.name for p in (tmp_path / "o" / JOB).iterdir()] == ["result.json"]


@pytest.mark.parametrize("bad", ["../etc", "a" * 31, "A" * 32, f"{JOB}/..", ""])
def test_job_ids_are_never_paths(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        JobFiles(tmp_path, tmp_path, bad)


def test_unwritable_dir_error_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DirectoryNotWritable, match="OUTPUT_DIR="):
        ensure_writable_dir(blocker / "sub", "OUTPUT_DIR")


@pytest.fixture
def strict_umask() -> Iterator[None]:
    """A container's restrictive umask: modes must not depend on it."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def test_job_folders_and_results_are_group_writable_whatever_the_umask(
    tmp_path: Path, strict_umask: None
) -> None:
    files = JobFiles(tmp_path / "t", tmp_path / "o", JOB)
    files.make_input_dir()
    create_shared_file(files.input_path)
    files.write_result("json", b"{}")

    for folder in (files.input_dir, files.output_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == DIR_MODE == 0o2775
    for path in (files.input_path, files.result_path("json")):
        assert stat.S_IMODE(path.stat().st_mode) == FILE_MODE == 0o664


def test_configured_dirs_created_here_are_shared_and_existing_ones_left_alone(
    tmp_path: Path, strict_umask: None
) -> None:
    ensure_writable_dir(tmp_path / "new" / "temp", "TEMP_DIR")
    assert stat.S_IMODE((tmp_path / "new" / "temp").stat().st_mode) == DIR_MODE
    mine = tmp_path / "mounted"
    mine.mkdir()
    mine.chmod(0o750)
    ensure_writable_dir(mine, "OUTPUT_DIR")
    assert stat.S_IMODE(mine.stat().st_mode) == 0o750  # an operator's choice, not ours to change


def test_a_result_write_on_a_full_disk_raises_enospc_and_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "o", size="64k") as output:
        files = JobFiles(tmp_path / "t", output, JOB)
        fill(output)

        with pytest.raises(OSError) as raised:
            files.write_result("json", b"x" * 20_000)

        assert raised.value.errno == errno.ENOSPC
        assert list((output / JOB).iterdir()) == []


def test_the_kept_source_outlives_the_upload_and_goes_with_the_job(tmp_path: Path) -> None:
    files = JobFiles(tmp_path / "t", tmp_path / "o", JOB)
    files.make_input_dir()
    files.input_path.write_bytes(b"%PDF-1.7 pages")

    files.keep_source()
    files.keep_source()  # a second attempt of the job finds it kept
    files.remove_input()

    assert files.source_path.read_bytes() == b"%PDF-1.7 pages"
    assert files.source_path == tmp_path / "o" / "sources" / JOB / "input"
    files.remove_all()
    assert not files.source_dir.exists()


def test_the_source_is_copied_whole_when_output_is_another_filesystem(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "o") as output:
        files = JobFiles(tmp_path / "t", output, JOB)
        files.make_input_dir()
        files.input_path.write_bytes(b"\x89PNG" + b"x" * 10_000)

        files.keep_source()  # os.link says EXDEV: an atomic copy instead

        assert files.source_path.read_bytes() == files.input_path.read_bytes()
        assert [p.name for p in files.source_dir.iterdir()] == ["input"]  # no temp file left
        assert stat.S_IMODE(files.source_path.stat().st_mode) == FILE_MODE
