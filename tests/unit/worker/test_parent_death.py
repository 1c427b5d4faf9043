"""worker.parent_death in child processes: the kernel's parent-death signal, and the race."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sets_sigkill_as_the_parent_death_signal() -> None:
    result = _python(
        "-c",
        textwrap.dedent(
            """
        import ctypes, ctypes.util, os
        from worker.parent_death import die_with_parent
        die_with_parent(os.getppid())
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        sig = ctypes.c_int()
        libc.prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
        print(sig.value)
        """
        ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "9"


def test_a_worker_process_whose_supervisor_is_already_gone_exits_before_its_engine_warms() -> None:
    gone = os.getpid() + 1_000_000  # not our child's parent: as if re-parented after a death
    result = _python("-m", "worker.process", "--supervisor-pid", str(gone))
    assert result.returncode == 1
    assert f"supervisor {gone} is gone" in result.stderr
    assert "engine" not in result.stderr


def test_supervisor_pid_is_not_an_option_users_see() -> None:
    result = _python("-m", "worker.process", "--help")
    assert result.returncode == 0 and "--supervisor-pid" not in result.stdout
