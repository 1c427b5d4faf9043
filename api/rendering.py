"""What a file made on its first request needs (archives, page pictures): one renderer of a
file at a time, the heavy renders one at a time in this process, a full disk said as 507.

Concurrent first requests for one file (threads of one API process, or API processes on one
host) wait for one renderer and then serve its file; API pods on other hosts (STORAGE_URL=
s3://) may render the same file twice, each storing a whole one.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from api.errors import InsufficientStorage
from shared.storage import JobFiles, is_disk_full

_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
# The renders that decode a source's pixels (page pictures, the PDF archive) run one at a time,
# always in this one thread: each may hold a decoded frame of up to MAX_IMAGE_PIXELS (1-4 bytes
# a pixel), and a render in each request's thread would also leave that much behind in each
# thread's malloc arena (measured: 12 jobs' pictures at once kept 650 MB behind a semaphore,
# 60 MB in one thread).
_HEAVY = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
P = ParamSpec("P")
T = TypeVar("T")


def render_alone(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`func(*args)` in the process's one render thread, after the renders queued before it."""
    return _HEAVY.submit(func, *args, **kwargs).result()


@contextmanager
def one_renderer(files: JobFiles, name: str) -> Iterator[None]:
    """One renderer of this job's file `name` at a time: a thread lock, then a flock across
    processes. Waiters re-check for the stored file before rendering it themselves."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault((files.job_id, name), threading.Lock())
    with lock:
        lock_path = files.render_lock_path(name)
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                lock_path.unlink(missing_ok=True)
                fcntl.flock(handle, fcntl.LOCK_UN)
    with _LOCKS_GUARD:
        _LOCKS.pop((files.job_id, name), None)


@contextmanager
def disk_full_as_507(what: str) -> Iterator[None]:
    """A full disk (ENOSPC, EDQUOT) inside the block becomes 507 insufficient_storage; the
    writers (JobFiles' atomic targets) have left no partial file."""
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise InsufficientStorage(
            f"no room left on the server's disk to store {what}; retry later"
        ) from exc
