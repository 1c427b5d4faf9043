"""Page ranges on the real Redis: a job planned once, each range claimed by one runner, pages
counted once, the last range to finish (and only it) assembles, lapsed ranges recovered."""

from __future__ import annotations

import threading
import uuid

import pytest
import redis

from shared.jobs import Claim, JobRecord, JobStatus, JobStore, Recovery, connect_redis, utcnow
from shared.jobs.events import EventKind
from shared.jobs.keys import range_lease
from shared.jobs.outcomes import RangeClaim, RangeDone, RangeRecovery
from shared.jobs.timeline import as_created, record_after
from shared.results import PageResult
from shared.storage import job_files
from tests.conftest import UNIT_REDIS_URL


def _planned(store: JobStore, count: int = 3, holder: str = "w1:1") -> str:
    """A running job planned into `count` ranges of 4 pages by `holder` (range 0 is its)."""
    job_id = uuid.uuid4().hex
    store.create(JobRecord(job_id=job_id, status=JobStatus.queued, created_at=utcnow()))
    assert store.claim(job_id, holder, 30) is Claim.claimed
    store.set_pages_total(job_id, count * 4)
    assert store.plan(job_id, holder, 30, count, 4)
    return job_id


def test_a_job_is_planned_once_and_its_ranges_wait_to_be_sent(redis_client: redis.Redis) -> None:
    store = JobStore(connect_redis(UNIT_REDIS_URL), 600)
    job_id = _planned(store)

    assert not store.plan(job_id, "w1:1", 30, 3, 4)  # a second plan is refused
    assert store.plan_of(job_id) == (3, 4)
    assert store.pending_range_sends(job_id) == [(job_id, 1), (job_id, 2)]
    assert store.running_ranges() == [(job_id, 0)]
    # the job lease went to range 0: a redelivered ocr.run is dropped, the sweep leaves it
    assert store.holder(job_id) is None
    assert store.claim(job_id, "w2:1", 30) is Claim.busy
    assert store.recover(job_id, 3) is Recovery.alive
    assert store.require(job_id).attempts == 1


def test_a_range_has_one_runner_and_is_not_read_again(redis_client: redis.Redis) -> None:
    store = JobStore(connect_redis(UNIT_REDIS_URL), 600)
    job_id = _planned(store)

    assert store.claim_range(job_id, 1, "w2:1", 30) is RangeClaim.claimed
    assert store.claim_range(job_id, 1, "w3:1", 30) is RangeClaim.busy
    assert store.claim_range(job_id, 0, "w3:1", 30) is RangeClaim.busy  # the planner's
    assert store.range_done(job_id, 1, "w3:1") is RangeDone.lost  # not its lease
    assert store.range_done(job_id, 1, "w2:1") is RangeDone.others_running
    assert store.range_done(job_id, 1, "w2:1") is RangeDone.others_running  # idempotent
    store.release(job_id, "w2:1", 1)
    assert store.claim_range(job_id, 1, "w3:1", 30) is RangeClaim.done
    assert store.claim_range(uuid.uuid4().hex, 1, "w3:1", 30) is RangeClaim.missing


def test_the_last_range_done_assembles_exactly_once_under_racing_finishes(
    redis_client: redis.Redis,
) -> None:
    store = JobStore(connect_redis(UNIT_REDIS_URL), 600)
    count = 8
    job_id = _planned(store, count, holder="w0:0")
    for part in range(1, count):
        assert store.claim_range(job_id, part, f"w{part}:{part}", 30) is RangeClaim.claimed
    answers: dict[int, RangeDone] = {}
    start = threading.Barrier(count)

    def finish(part: int) -> None:
        mine = JobStore(connect_redis(UNIT_REDIS_URL), 600)
        start.wait()
        answers[part] = mine.range_done(job_id, part, f"w{part}:{part}")

    threads = [threading.Thread(target=finish, args=(part,)) for part in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assemblers = [part for part, answer in answers.items() if answer is RangeDone.assemble]
    assert len(assemblers) == 1
    assert sorted(answers.values()).count(RangeDone.others_running) == count - 1
    assert store.succeed(job_id)
    assert not store.succeed(job_id)  # the job ends exactly once


def test_a_page_is_counted_once_however_often_its_range_runs(redis_client: redis.Redis) -> None:
    store = JobStore(connect_redis(UNIT_REDIS_URL), 600)
    job_id = _planned(store)

    store.page_done(job_id, 1)
    store.page_done(job_id, 2, "image_too_large")
    store.page_done(job_id, 1)  # range 0 read again after its worker died
    store.page_done(job_id, 2, "image_too_large")
    record = store.require(job_id)
    assert (record.pages_done, record.pages_failed, record.pages_total) == (2, 1, 12)

    pages = [e for e in store.events(job_id) if e.kind is EventKind.page and e.page]
    assert [(e.page, e.outcome, e.code, e.pages_done, e.pages_failed) for e in pages] == [
        (1, "ok", None, 1, 0),
        (2, "failed", "image_too_large", 2, 1),
    ]
    assert store.metrics.page_counters()["pages_failed"] >= 1
    assert store.succeed(job_id)
    record, events = store.history(job_id)
    assert record is not None and events[-1].pages_failed == 1
    # the timeline's fold ends where the scripts left the record
    state = as_created(record)
    for event in events:
        state = record_after(state, event)
    assert (state.status, state.pages_done, state.pages_failed) == ("succeeded", 2, 1)


def test_a_lapsed_range_is_requeued_alone_then_fails_the_job_worker_lost(
    redis_client: redis.Redis,
) -> None:
    store = JobStore(connect_redis(UNIT_REDIS_URL), 600)
    job_id = _planned(store)
    assert store.claim_range(job_id, 1, "w2:1", 30) is RangeClaim.claimed
    store.page_done(job_id, 5)

    assert store.recover_range(job_id, 1, max_attempts=2) is RangeRecovery.alive
    redis_client.delete(range_lease(job_id, 1))  # its worker died: the lease lapsed
    assert store.recover_range(job_id, 1, max_attempts=2) is RangeRecovery.requeued
    assert (job_id, 1) in store.pending_range_sends(job_id)
    record = store.require(job_id)
    assert (record.status, record.pages_done) == ("running", 1)  # the job runs on
    requeued = store.events(job_id)[-1]
    assert (requeued.kind, requeued.range) == (EventKind.requeued, 1)
    state = record_after(record, requeued)
    assert state.status is JobStatus.running

    assert store.claim_range(job_id, 1, "w3:1", 30) is RangeClaim.claimed  # attempt 2
    redis_client.delete(range_lease(job_id, 1))
    assert store.recover_range(job_id, 1, max_attempts=2) is RangeRecovery.failed
    record = store.require(job_id)
    assert record.status is JobStatus.failed and record.error is not None
    assert record.error.code == "worker_lost"
    assert (job_id, 1) not in store.running_ranges()


def test_a_dead_assembler_is_recovered_and_its_range_assembles_again(
    redis_client: redis.Redis,
) -> None:
    store = JobStore(connect_redis(UNIT_REDIS_URL), 600)
    job_id = _planned(store, count=2)
    assert store.claim_range(job_id, 1, "w2:1", 30) is RangeClaim.claimed
    assert store.range_done(job_id, 1, "w2:1") is RangeDone.others_running
    store.release(job_id, "w2:1", 1)
    assert store.range_done(job_id, 0, "w1:1") is RangeDone.assemble
    redis_client.delete(range_lease(job_id, 0))  # the assembler died before the job's end

    assert store.recover_range(job_id, 1, 3) is RangeRecovery.gone  # released: not running
    assert store.recover_range(job_id, 0, 3) is RangeRecovery.requeued
    assert store.claim_range(job_id, 1, "w3:1", 30) is RangeClaim.done
    assert store.claim_range(job_id, 0, "w3:1", 30) is RangeClaim.assemble
    assert store.succeed(job_id)


def test_cancel_stops_every_range(redis_client: redis.Redis) -> None:
    store = JobStore(connect_redis(UNIT_REDIS_URL), 600)
    job_id = _planned(store)
    assert store.claim_range(job_id, 1, "w2:1", 30) is RangeClaim.claimed

    assert store.cancel(job_id) is JobStatus.running
    assert store.cancel(job_id) is JobStatus.canceled  # refused: ended already
    assert store.claim_range(job_id, 2, "w3:1", 30) is RangeClaim.canceled
    assert store.range_done(job_id, 1, "w2:1") is RangeDone.ended
    store.page_done(job_id, 5)  # refused: nothing counted once canceled
    assert store.require(job_id).pages_done == 0
    assert 0 < redis_client.ttl(f"ocrq:plan:{job_id}") <= 600  # the plan expires with the job


def test_ranges_of_one_job_in_one_process_keep_their_own_copy_of_the_input(
    settings, s3_server
) -> None:
    """With a bucket, each range reads a local copy of its own: one range's end removes only
    its copy, never the one another range of the job is reading in the same process; its
    range file is stored in the bucket until the job's end."""
    files = job_files(s3_server.settings(settings, s3_server.new_bucket()), uuid.uuid4().hex)
    files.make_input_dir()
    files.input_path.write_bytes(b"%PDF-1.4 the upload")
    files.store_input()
    files.drop_local()

    first, second = files.fetch_input("range-1"), files.fetch_input("range-2")
    assert first != second and first.read_bytes() == second.read_bytes() == b"%PDF-1.4 the upload"
    files.drop_local("range-1")
    assert not first.exists() and second.read_bytes() == b"%PDF-1.4 the upload"
    files.drop_local("range-2")
    assert not files.input_dir.exists()

    files.write_range(1, [PageResult(index=4, width=10, height=10, text="four")])
    assert [p.text for p in files.read_range(1)] == ["four"]
    files.remove_input()
    with pytest.raises(FileNotFoundError):
        list(files.read_range(1))
