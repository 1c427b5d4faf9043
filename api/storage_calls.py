"""StorageCalls: the API's calls to job files (the bucket, or OUTPUT_DIR) on their own bounded
thread pool.

Redis reads run on starlette's shared thread pool (anyio's default, 40 threads). A bucket that
stalls holds each of its calls for up to its timeouts (shared/storage/s3.py): were those calls
on the shared pool, a handful of result requests would take every thread, and GET /jobs/{id}
or a status stream, which need only Redis, would wait behind them. Here they wait only for one
another, at most STORAGE_THREADS at once; the rest wait in line without a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from shared.errors import StorageUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
STORAGE_THREADS = 16  # bucket calls in flight per API process (boto3's pool holds 32)
_DONE = object()


class StorageCalls:
    """Runs blocking job-file calls on a pool of their own; owned by the app's lifespan."""

    def __init__(self, threads: int = STORAGE_THREADS) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="storage")

    async def run(self, func: Callable[..., T], *args: object) -> T:
        """`func(*args)` on the storage pool (with this request's context: its log tags)."""
        call = functools.partial(contextvars.copy_context().run, func, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def answer_within(self, seconds: float, func: Callable[..., T], *args: object) -> T:
        """As `run`, but StorageUnavailable after `seconds`: for a check a Redis-only answer
        may not wait on. A call still waiting for a thread is dropped; one running ends in its
        thread within the bucket's own timeouts."""
        try:
            return await asyncio.wait_for(self.run(func, *args), seconds)
        except TimeoutError:
            raise StorageUnavailable(f"the job files did not answer within {seconds:g} s") from None

    async def iterate(self, chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
        """A blocking iterator's items (a bucket object's body), each read on the storage pool."""
        try:
            while (chunk := await self.run(next, chunks, _DONE)) is not _DONE:
                yield chunk
        finally:
            # a generator: close it (the body's connection goes back) once no read is in flight
            with contextlib.suppress(RuntimeError):  # the pool is shut down: the API is ending
                self._pool.submit(_close, chunks)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        try:
            close()
        except ValueError:  # still running in another thread (its reader was canceled)
            log.debug("a body being read was left to its timeout")
