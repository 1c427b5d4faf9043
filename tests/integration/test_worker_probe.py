"""`python -m worker.probe` against a real warm worker, as a container's exec probe runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from testkit.stack import ROOT, Stack

pytestmark = pytest.mark.integration


def probe(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.probe", *args],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_probe_passes_for_the_running_warm_worker(stack: Stack) -> None:
    result = probe(stack, "--worker-id", "test-worker-0")
    assert result.returncode == 0, result.stderr
    assert "engine rapidocr on cpu" in result.stdout


def test_probe_fails_for_a_worker_that_is_not_there(stack: Stack) -> None:
    result = probe(stack, "--worker-id", "test-worker-99")
    assert result.returncode == 1
    assert "no heartbeat for worker 'test-worker-99'" in result.stderr
