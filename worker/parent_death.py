"""End the worker process when its supervisor dies, so that it never lives on as an orphan.

A supervisor killed with SIGKILL (or OOM-killed) cannot stop its child; an orphaned worker
would go on taking jobs unsupervised while nothing restarts the worker as a whole. Linux's
PR_SET_PDEATHSIG has the kernel send SIGKILL to this process when its parent dies, even while
a page is stuck in native code; the container's restart policy (or the next supervisor) then
takes over, and the job it was running comes back through its lease like any dead worker's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

log = logging.getLogger("worker.parent_death")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when `parent_pid`, its parent, exits.

    The parent may have died between our fork and the prctl call: then we are already an
    orphan (re-parented to init or a subreaper) and exit at once.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(err))
    else:
        log.warning("%s: this worker process outlives its supervisor if that dies", sys.platform)
    if os.getppid() != parent_pid:
        log.error("supervisor %d is gone before this worker process started: exiting", parent_pid)
        raise SystemExit(1)
