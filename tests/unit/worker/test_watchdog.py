"""JobWatchdog watching several jobs at once (a batching worker): each keeps its own lease and time
limits, one over its page limit is failed alone, and a stopped clock (an engine outage) charges
no job."""

from __future__ import annotations

import pytest
from redis import RedisError

from shared.jobs import Claim, JobRecord, JobStatus, JobStore, utcnow
from shared.logs import current_job_id, current_trace_id
from worker.watchdog import JobTimedOut, JobWatchdog

HOLDER = "test-worker:1"


@pytest.fixture
def store(redis_client) -> JobStore:
    store = JobStore(redis_client, 600)
    for job_id in ("a", "b"):
        store.create(JobRecord(job_id=job_id, status=JobStatus.queued, created_at=utcnow()))
    assert store.claim("a", HOLDER, 3) is Claim.claimed
    assert store.claim("b", HOLDER, 3) is Claim.claimed
    return store


def make_watch(store: JobStore, now: list[float], timed_out: list[str]) -> JobWatchdog:
    return JobWatchdog(
        store,
        HOLDER,
        lease_seconds=3,
        job_timeout=100,
        page_timeout=10,
        on_timeout=lambda job_id, reason: timed_out.append(f"{job_id}: {reason}"),
        fail_job=lambda job_id, reason: None,
        clock=lambda: now[0],
    )


def test_one_job_over_its_page_limit_times_out_alone_and_the_other_keeps_its_lease(
    store: JobStore, redis_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    now, timed_out = [0.0], []
    watch = make_watch(store, now, timed_out)
    monkeypatch.setattr("worker.watchdog.time.monotonic", lambda: 1000 + now[0])
    with watch.watching("a"), watch.watching("b"):
        now[0] = 8
        watch.page_starting("b")  # b's page came back: its page clock restarts
        redis_client.expire("ocrq:lease:b", 1)
        now[0] = 11
        watch.check()

        assert timed_out == ["a: ran over PAGE_TIMEOUT_SECONDS=10"]
        with pytest.raises(JobTimedOut, match="PAGE_TIMEOUT_SECONDS=10"):
            watch.raise_if_overdue("a")
        watch.raise_if_overdue("b")  # b runs on
        assert redis_client.ttl("ocrq:lease:b") == 3  # renewed by the same tick
        watch.check()
        assert len(timed_out) == 1  # a is failed once


def test_limits_run_on_the_watch_clock_not_the_wall_clock(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    now, timed_out = [0.0], []
    watch = make_watch(store, now, timed_out)
    wall = [0.0]
    monkeypatch.setattr("worker.watchdog.time.monotonic", lambda: wall[0])
    with watch.watching("a"):
        # the batcher's working clock does not move during an outage: an hour of wall-clock
        # wait for the engine is not charged to the page (10 s) or the job (100 s) limit
        wall[0] = 3600
        watch.check()
        watch.raise_if_overdue("a")
        watch.page_starting("a")
        now[0] = 10.5
        watch.check()
    assert timed_out == ["a: ran over PAGE_TIMEOUT_SECONDS=10"]


def test_the_job_limit_stops_the_job_at_its_next_page(store: JobStore) -> None:
    now, timed_out = [0.0], []
    watch = make_watch(store, now, timed_out)
    with watch.watching("a"):
        for t in range(5, 101, 5):
            now[0] = t
            watch.page_starting("a")
        now[0] = 101
        with pytest.raises(JobTimedOut, match="JOB_TIMEOUT_SECONDS=100"):
            watch.page_starting("a")


def test_the_watchdogs_lines_about_a_job_carry_the_jobs_trace(
    redis_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failing a job over its limit (or missing a lease renewal) happens on the watchdog's
    thread, not the run's: its log lines are tagged with the job and its trace all the same,
    the trace read as the run started (so a later Redis outage does not lose it)."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    store = JobStore(redis_client, 600)
    store.create(
        JobRecord(
            job_id="t",
            status=JobStatus.queued,
            created_at=utcnow(),
            traceparent=f"00-{trace_id}-00f067aa0ba902b7-01",
        )
    )
    assert store.claim("t", HOLDER, 3) is Claim.claimed
    now, tags = [0.0], []

    def tagged(job_id: str, reason: str) -> None:
        tags.append((job_id, current_job_id.get(), current_trace_id.get()))

    watch = JobWatchdog(
        store,
        HOLDER,
        lease_seconds=3,
        job_timeout=100,
        page_timeout=10,
        on_timeout=tagged,
        fail_job=tagged,
        clock=lambda: now[0],
    )
    with watch.watching("t/1"):  # a page range of the job: tagged by the job's id
        now[0] = 11
        watch.check()
    assert tags == [("t/1", "t", trace_id)] * 2
    assert current_job_id.get() is None and current_trace_id.get() is None  # reset after

    logged = []
    monkeypatch.setattr(store, "renew", lambda *args: (_ for _ in ()).throw(RedisError("down")))
    monkeypatch.setattr(
        "worker.watchdog.log.warning", lambda *args: logged.append(current_trace_id.get())
    )
    wall = [1000.0]
    monkeypatch.setattr("worker.watchdog.time.monotonic", lambda: wall[0])
    now[0] = 0
    with watch.watching("t"):
        monkeypatch.setattr(store, "traceparent", lambda job_id: None)  # Redis gone meanwhile
        wall[0] += 2  # past a third of the lease: renewed now
        watch.check()
    assert logged == [trace_id]
