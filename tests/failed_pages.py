"""Tests that play the worker of a job with failed pages: count its pages as the worker does.

Issue 28's ranges change gives the job store `page_done(job_id, page, failed_code)` (the PAGE
script: progress, `pages_failed`, the `page` event and the counter at once); before it, the
progress is set and `pages_failed` written into the record as that script writes it. Once both
are merged, only the first branch is left to keep.
"""

from __future__ import annotations

from shared.error_codes import ErrorCode
from shared.jobs import JobStore, keys


def record_pages(store: JobStore, job_id: str, outcomes: dict[int, ErrorCode | None]) -> None:
    """Each page of `outcomes` read (None) or failed (its code), in page order."""
    page_done = getattr(store, "page_done", None)
    if page_done is not None:
        for page, code in sorted(outcomes.items()):
            page_done(job_id, page, code)
        return
    store.set_pages_done(job_id, len(outcomes))
    failed = sum(1 for code in outcomes.values() if code is not None)
    store.redis.hset(keys.job(job_id), "pages_failed", failed)
