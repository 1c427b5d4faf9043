"""Tests that play the worker of a job with failed pages: count its pages as the worker does."""

from __future__ import annotations

from shared.error_codes import ErrorCode
from shared.jobs import JobStore


def record_pages(store: JobStore, job_id: str, outcomes: dict[int, ErrorCode | None]) -> None:
    """Each page of `outcomes` read (None) or failed (its code), in page order, through the
    store's PAGE script (progress, `pages_failed`, the `page` event and the counter at once)."""
    for page, code in sorted(outcomes.items()):
        store.page_done(job_id, page, code)
