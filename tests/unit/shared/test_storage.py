from __future__ import annotations

from pathlib import Path

import pytest

from shared.storage import DirectoryNotWritable, JobFiles, ensure_writable_dir

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
