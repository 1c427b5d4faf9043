"""Keep one worker process alive: restart it when it dies, stop when told to.

The worker process holds the warm engine and runs jobs one at a time. A page stuck in native
code cannot be interrupted from Python, so the process fails that job with `timeout` and exits;
an OOM kill or a crash ends it too. This small parent (no engine, no Celery) restarts it, so the
worker as a whole lives on, and forwards SIGTERM/SIGINT for a clean (warm) shutdown. If this
parent is killed, the worker process dies with it (worker.parent_death): no orphan lives on.
A process recycled on purpose (WORKER_MAX_JOBS / WORKER_MAX_RSS_MB) exits EXIT_RECYCLE between
jobs and is replaced at once, without the crash backoff.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from worker.exit_codes import EXIT_RECYCLE

log = logging.getLogger("worker.supervisor")

# Exit codes that a restart cannot fix: clean stop, unwritable dirs, engine cannot start.
FINAL_EXIT_CODES = frozenset({0, 2, 3})
MAX_BACKOFF_SECONDS = 30.0
STABLE_AFTER_SECONDS = 5.0  # a process that lived this long was not a crash loop


def supervise(child_args: list[str], module: str = "worker.process") -> int:
    """Run `python -m worker.process ARGS` until it stops for good; return its exit code.

    `module`: what to run instead of worker.process (a stand-in process in tests).
    """
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    own_pid = str(os.getpid())  # the child dies with this process (worker.parent_death)
    backoff = 1.0
    recycled: list[str] = []
    while True:
        started = time.monotonic()
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                *child_args,
                "--supervisor-pid",
                own_pid,
                *recycled,
            ]
        )
        code = child.wait()
        if stopping or code in FINAL_EXIT_CODES:
            return code
        lived = time.monotonic() - started
        if code == EXIT_RECYCLE:
            log.info(
                "worker process %d recycled after %.0f s (its log says why); starting a fresh one",
                child.pid,
                lived,
            )
            recycled, backoff = ["--recycled"], 1.0
            continue
        recycled = []
        backoff = 1.0 if lived > STABLE_AFTER_SECONDS else min(backoff * 2, MAX_BACKOFF_SECONDS)
        log.warning(
            "worker process %d exited with %d after %.0f s; restarting in %.0f s",
            child.pid,
            code,
            lived,
            backoff,
        )
        deadline = time.monotonic() + backoff
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        if stopping:
            return code
