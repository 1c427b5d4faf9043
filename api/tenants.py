"""Tenants at the API: each API key's quotas checked at submit, its usage read for GET /usage.

A tenant is an API key (its owner fingerprint; `anonymous` while auth is off), shown by its
name (API_KEYS_FILE `name=`, else `key-<8 hex>`). The counts live in Redis (shared/jobs/
usage.py), so every API process sees the same figures and the same limits.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime, time, timedelta

from api.errors import QuotaExceeded
from api.schemas import TenantLimits, UsageDay, UsageView
from shared.api_keys import owner_fingerprint
from shared.jobs import JobRecord, JobStore
from shared.jobs.usage import Refusal, utc_today
from shared.settings import Settings

log = logging.getLogger(__name__)

USAGE_DAYS = 31  # GET /usage: today and the 30 days before it
# max_queued: a slot frees when one of the key's jobs ends; a short wait is the honest guess
MAX_QUEUED_RETRY_AFTER = 10


def billable_pages(record: JobRecord) -> int:
    """The pages a job counts against pages_per_day: those the API counted at upload (one for
    a file it could not count; the worker then fails it)."""
    return record.pages_total if record.pages_total is not None else 1


def seconds_to_next_utc_day(now: datetime) -> int:
    midnight = datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=UTC)
    return max(1, int((midnight - now).total_seconds() + 0.999))


def _pages(count: int) -> str:
    return f"{count} page" if count == 1 else f"{count} pages"


class Tenants:
    def __init__(self, settings: Settings, store: JobStore) -> None:
        self.ring = settings.key_ring
        self.store = store

    def label(self, owner: str | None) -> str:
        return self.ring.label(owner)

    def admit(self, record: JobRecord) -> None:
        """Count the new job against its key's quotas, or refuse it whole (429
        quota_exceeded) with nothing counted. Before the job is stored or queued."""
        quotas = self.ring.quotas(record.owner)
        pages = billable_pages(record)
        name = self.label(record.owner)
        if quotas.max_pages_per_job is not None and pages > quotas.max_pages_per_job:
            raise QuotaExceeded(  # no Retry-After: this job never passes
                f"the job has {_pages(pages)}; the API key {name} allows max_pages_per_job="
                f"{quotas.max_pages_per_job}",
                headers={"Connection": "close"},
            )
        refusal = self.store.usage.admit(
            record.owner,
            record.job_id,
            pages,
            record.created_at.date(),
            pages_per_day=quotas.pages_per_day,
            max_queued=quotas.max_queued,
        )
        if refusal is not None:
            limit = getattr(quotas, refusal.limit)
            raise self._refused(refusal, limit, pages, name, record.created_at)

    @staticmethod
    def _refused(
        refusal: Refusal, limit: int | None, pages: int, name: str, at: datetime
    ) -> QuotaExceeded:
        if refusal.limit == "max_queued":
            message = (
                f"the API key {name} has {refusal.used} jobs queued or running; its "
                f"max_queued={limit}; retry when one of them ended"
            )
            retry_after = MAX_QUEUED_RETRY_AFTER
        else:
            message = (
                f"the job has {_pages(pages)} and the API key {name} submitted "
                f"{_pages(refusal.used)} today (UTC); its pages_per_day={limit}"
            )
            retry_after = seconds_to_next_utc_day(at)
        log.info("tenant=%s refused: %s", name, message)
        headers = {"Connection": "close"}
        if limit is None or refusal.limit == "max_queued" or pages <= limit:
            headers["Retry-After"] = str(retry_after)  # none when this job can never pass
        return QuotaExceeded(message, headers=headers)

    def give_back(self, record: JobRecord) -> None:
        """The job was admitted but not queued after all: it counts nothing."""
        self.store.usage.give_back(
            record.owner, record.job_id, billable_pages(record), record.created_at.date()
        )

    def usage(self, api_key: str | None) -> UsageView:
        """The caller's figures of today and the days before (the anonymous ones with auth
        off) and its limits."""
        owner = owner_fingerprint(api_key)
        quotas = self.ring.quotas(owner)
        days = self.store.usage.days(owner, utc_today(), USAGE_DAYS)
        return UsageView(
            tenant=self.label(owner),
            limits=TenantLimits(**asdict(quotas)),
            queued=self.store.usage.active(owner),
            today=UsageDay(**asdict(days[-1])),
            days=[UsageDay(**asdict(d)) for d in days],
        )
