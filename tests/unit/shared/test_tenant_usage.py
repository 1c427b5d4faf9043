"""Tenants' usage and quotas on the real Redis: the check-and-count is atomic, a job leaves its
tenant's queued set however it ends, and a page counts once in usage however often it runs."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import date

import redis

from shared.api_keys import owner_fingerprint
from shared.error_codes import ErrorCode
from shared.jobs import Claim, JobRecord, JobStatus, JobStore, Recovery, connect_redis, utcnow
from shared.jobs.usage import Refusal, utc_today
from tests.conftest import UNIT_REDIS_URL

OWNER = owner_fingerprint("k-usage-test")
DAY = date(2026, 12, 6)


def _store(ttl: int = 600) -> JobStore:
    return JobStore(connect_redis(UNIT_REDIS_URL), ttl)


def _queued(store: JobStore, owner: str | None = OWNER, pages: int = 1) -> str:
    """A job as the API makes one: admitted for its tenant, then recorded."""
    job_id = uuid.uuid4().hex
    assert store.usage.admit(owner, job_id, pages, utc_today()) is None
    record = JobRecord(
        job_id=job_id, status=JobStatus.queued, created_at=utcnow(), owner=owner, pages_total=pages
    )
    store.create(record)
    return job_id


def test_two_api_processes_never_both_take_the_last_pages(redis_client: redis.Redis) -> None:
    stores = [_store(), _store()]  # two connections, as two API processes have
    passed: list[str] = []
    start = threading.Barrier(20)

    def submit(n: int) -> None:
        job_id = f"job-{n}"
        start.wait()
        if stores[n % 2].usage.admit(OWNER, job_id, 2, DAY, pages_per_day=15) is None:
            passed.append(job_id)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(passed) == 7  # 7 x 2 = 14 pages; an 8th job would make 16 > 15
    [today] = stores[0].usage.days(OWNER, DAY, 1)
    assert (today.jobs_submitted, today.pages_submitted) == (7, 14)
    assert stores[0].usage.admit(OWNER, "one-more", 1, DAY, pages_per_day=15) is None  # 15: at
    assert stores[0].usage.admit(OWNER, "past", 1, DAY, pages_per_day=15) == Refusal(
        "pages_per_day", 15
    )
    # the next day starts from nothing
    assert stores[0].usage.admit(OWNER, "tomorrow", 15, date(2026, 12, 7), pages_per_day=15) is None


def test_a_give_back_undoes_the_admission_once(redis_client: redis.Redis) -> None:
    store = _store()
    assert store.usage.admit(OWNER, "j1", 3, DAY, max_queued=1) is None
    assert store.usage.admit(OWNER, "j2", 1, DAY, max_queued=1) == Refusal("max_queued", 1)
    store.usage.give_back(OWNER, "j1", 3, DAY)
    store.usage.give_back(OWNER, "j1", 3, DAY)  # retried: counts nothing twice
    [day] = store.usage.days(OWNER, DAY, 1)
    assert (day.jobs_submitted, day.pages_submitted) == (0, 0)
    assert store.usage.active(OWNER) == 0
    assert store.usage.totals().get((OWNER or "", "submitted")) == 0


def test_a_job_leaves_its_tenants_queued_set_however_it_ends(redis_client: redis.Redis) -> None:
    store = _store()
    succeeded, failed, canceled, lost, planned = (_queued(store) for _ in range(5))
    other = _queued(store, owner=None)  # anonymous: its own set
    assert store.usage.active(OWNER) == 5
    assert store.usage.active(None) == 1

    for job_id in (succeeded, failed, lost):
        assert store.claim(job_id, "w1:1", 1) is Claim.claimed
    store.succeed(succeeded)
    store.fail(failed, ErrorCode.invalid_image, "bad")
    store.cancel(canceled)
    assert store.claim(planned, "w1:1", 1) is Claim.claimed
    assert store.plan(planned, "w1:1", 1, count=2, size=1)
    time.sleep(1.2)  # the worker of `lost` and of range 0 of `planned` died
    assert store.recover(lost, max_attempts=1) is Recovery.failed  # worker_lost
    assert store.recover_range(planned, 0, max_attempts=1).value == "failed"

    assert store.usage.active(OWNER) == 0
    assert store.usage.active(None) == 1
    store.cancel(other)
    assert store.usage.active(None) == 0


def test_max_queued_drops_jobs_whose_record_is_gone(redis_client: redis.Redis) -> None:
    store = _store()
    job_id = _queued(store)
    assert store.usage.admit(OWNER, "x", 1, DAY, max_queued=1) == Refusal("max_queued", 1)
    redis_client.delete(f"ocrq:job:{job_id}")  # lost by Redis, or an API died before create
    # a fresh member without a record may be a submission in flight: kept for a while
    assert store.usage.admit(OWNER, "x", 1, DAY, max_queued=1) == Refusal("max_queued", 1)
    redis_client.zadd(f"ocrq:tenant:{OWNER}", {job_id: time.time() - 7200})
    assert store.usage.admit(OWNER, "x", 1, DAY, max_queued=1) is None


def test_a_page_counts_once_in_usage_even_when_its_job_runs_again(
    redis_client: redis.Redis,
) -> None:
    store = _store()
    job_id = _queued(store, pages=2)
    assert store.claim(job_id, "w1:1", 1) is Claim.claimed
    store.page_done(job_id, 1, engine="rapidocr", engine_seconds=0.25)
    time.sleep(1.2)  # the worker died after page 1
    assert store.recover(job_id, max_attempts=3) is Recovery.requeued
    assert store.claim(job_id, "w2:1", 30) is Claim.claimed  # progress starts from zero again
    store.page_done(job_id, 1, engine="rapidocr", engine_seconds=0.25)
    store.page_done(job_id, 2, ErrorCode.recognition_failed, engine="rapidocr")
    store.page_done(job_id, 2, ErrorCode.recognition_failed, engine="rapidocr")
    assert store.require(job_id).pages_done == 2

    [today] = store.usage.days(OWNER, utc_today(), 1)
    assert (today.pages_done, today.pages_failed) == (1, 1)
    assert today.engine_seconds == {"rapidocr": 0.25}
    totals = store.usage.totals()
    assert (totals[(OWNER or "", "pages_done")], totals[(OWNER or "", "pages_failed")]) == (1, 1)
    store.succeed(job_id)
    assert 0 < redis_client.ttl(f"ocrq:usage:billed:{job_id}") <= 600  # goes with the record
    assert 0 < redis_client.ttl(f"ocrq:usage:{OWNER}:{utc_today()}") <= 400 * 24 * 3600
