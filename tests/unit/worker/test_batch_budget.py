"""The batcher's budget with a slow engine: an engine call on N pages may run the page limit once
per page the engine reads one after another, and a job's page clock stops while it waits on the
batcher.

A real PageBatcher, real BatchReaders (one thread per job, as the worker's pool runs them) and a
real JobWatchdog on the real Redis, driving `SlowEngine`: it reads pages one after another,
sleeping PER_PAGE seconds each, like paddleocr-vl's native backend (its VL model reads one block
at a time). The page limit is PAGE_LIMIT seconds, above one page's read and below a full
batch's, so an engine call on a full batch runs past one page limit but within its budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from PIL import Image

from shared.error_codes import ErrorCode
from shared.jobs import Claim, JobRecord, JobStatus, JobStore, utcnow
from shared.jobs.outcomes import RangeClaim
from shared.results import Block, PageResult
from worker.batcher import HungCall, PageBatcher
from worker.engines import BatchingEngine, EngineError, Recognition
from worker.page_reading import BatchReader, JobChecks
from worker.pages import Page, PageLoadError
from worker.watchdog import Hung, JobTimedOut, JobWatchdog

PAGE_LIMIT = 0.5  # PAGE_TIMEOUT_SECONDS of these tests
PER_PAGE = 0.2  # a page's read: under the page limit, but 4 of them (a full batch) are over it
MAX_BATCH = 4
TICK = 0.02  # the watchdog's tick here (the worker's is a second, its limits 600 s)
HOLDER = "test-worker:1"
WAIT = 30.0  # upper bound on waits that end long before when correct


class SlowEngine:
    """Reads one page after another, PER_PAGE seconds each; a page whose width is in `hang`
    blocks until `release` is set (a native call that does not return)."""

    name = "slow-engine"
    scripts = frozenset({"latin", "cyrillic"})
    max_batch = MAX_BATCH
    pages_at_once = 1

    def __init__(self) -> None:
        self.hang: set[int] = set()
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls: list[tuple[list[int], float]] = []  # (page widths, seconds) per call

    def info(self):  # pragma: no cover - not used by the batcher
        raise NotImplementedError

    def warm(self) -> None:  # pragma: no cover
        pass

    def recognize(self, image: Image.Image) -> Recognition:  # pragma: no cover
        return self.recognize_batch([image])[0]

    def check_available(self) -> None:
        pass

    def recognize_batch(self, images: Sequence[Image.Image]) -> list[Recognition | EngineError]:
        self.entered.set()
        started = time.monotonic()
        outcomes: list[Recognition | EngineError] = []
        for image in images:
            if image.width in self.hang:
                assert self.release.wait(WAIT)
            time.sleep(PER_PAGE)
            outcomes.append(Recognition(blocks=[Block(text=f"w{image.width}", bbox=[0, 0, 1, 1])]))
        self.calls.append(([i.width for i in images], time.monotonic() - started))
        return outcomes


@dataclass
class Seen:
    """What the watchdog did."""

    failed: list[tuple[str, str]] = field(default_factory=list)  # (job id, reason)
    timed_out: list[str] = field(default_factory=list)  # on_timeout: one job stopped
    hung: list[Hung] = field(default_factory=list)  # on_hung: the worker would restart


@dataclass
class Rig:
    engine: SlowEngine
    batcher: PageBatcher
    watch: JobWatchdog
    store: JobStore
    seen: Seen

    def job(self, job_id: str) -> JobRecord:
        record = JobRecord(job_id=job_id, status=JobStatus.queued, created_at=utcnow())
        self.store.create(record)
        assert self.store.claim(job_id, HOLDER, 30) is Claim.claimed
        return record


@pytest.fixture
def rig(redis_client) -> Iterator[Rig]:
    engine = SlowEngine()
    assert isinstance(engine, BatchingEngine)
    batcher = PageBatcher(engine, MAX_BATCH, fill_seconds=30.0, page_seconds=PAGE_LIMIT)
    store = JobStore(redis_client, 600)
    seen = Seen()
    watch = JobWatchdog(
        store,
        HOLDER,
        lease_seconds=30,
        job_timeout=3600,
        page_timeout=PAGE_LIMIT,
        on_timeout=lambda job_id, reason: seen.timed_out.append(job_id),
        fail_job=lambda job_id, reason: seen.failed.append((job_id, reason)),
        clock=batcher.working_clock,
        hung_call=batcher.overdue_call,
        on_hung=seen.hung.append,
    )
    stop = threading.Event()

    def tick() -> None:  # the watchdog's own thread, at a pace that fits these limits
        while not stop.wait(TICK):
            watch.check()

    ticker = threading.Thread(target=tick, daemon=True)
    batcher.start()
    ticker.start()
    try:
        yield Rig(engine, batcher, watch, store, seen)
    finally:
        stop.set()
        engine.release.set()
        ticker.join(WAIT)
        batcher.stop()


def eventually(condition, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def pages(*widths: int) -> list[Page]:
    return [
        Page(n, Image.new("RGB", (w, 10), "white"), w, 10, None)
        for n, w in enumerate(widths, start=1)
    ]


class Run:
    """One job read through a BatchReader in its own thread, watched as the worker does."""

    def __init__(self, rig: Rig, job_id: str, widths: list[int]) -> None:
        self.record = rig.job(job_id)
        self.results: list[PageResult] = []
        self.error: BaseException | None = None
        reader = BatchReader(rig.batcher, rig.store.metrics, "slow-engine", MAX_BATCH)
        checks = JobChecks(job_id, rig.store, rig.watch)

        def run() -> None:
            try:
                with rig.watch.watching(job_id):
                    for result in reader.read(self.record, iter(pages(*widths)), checks):
                        self.results.append(result)
            except BaseException as exc:  # noqa: BLE001 - the test looks at it
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> Run:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the job's thread did not end"
        return self

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.results]


def test_a_batch_longer_than_one_page_limit_runs_within_its_budget_and_the_job_behind_it_waits(
    rig: Rig,
) -> None:
    document = Run(rig, "doc", [101, 102, 103, 104])  # a full batch: sent at once
    assert rig.engine.entered.wait(WAIT)
    single = Run(rig, "single", [201])  # its page waits behind the whole batch, then is read

    document.join()
    single.join()

    assert document.error is None and single.error is None
    assert document.texts == ["w101", "w102", "w103", "w104"]
    assert single.texts == ["w201"]
    [(first, seconds), (second, _)] = rig.engine.calls
    assert (first, second) == ([101, 102, 103, 104], [201])
    # the precondition: the first call ran past one page limit (4 x 0.2 s > 0.5 s) ...
    assert seconds > PAGE_LIMIT
    assert rig.batcher.budget(4) == 4 * PAGE_LIMIT  # ... within its budget: 4 pages read in turn
    # nobody was timed out or killed, though `single` waited past its page limit for its page
    assert rig.seen == Seen()


def test_a_page_that_hangs_past_its_calls_budget_fails_the_jobs_in_that_call_and_ends_the_worker(
    rig: Rig,
) -> None:
    rig.engine.hang.add(302)
    stuck = Run(rig, "stuck", [301, 302])  # its 2-page batch: budget 2 page limits
    assert rig.engine.entered.wait(WAIT)
    behind = Run(rig, "behind", [401])  # queued behind the hung call, not in it

    assert eventually(lambda: rig.seen.hung)

    [hung, *_] = rig.seen.hung  # the worker would restart here (exit_after_hung_call)
    assert isinstance(hung, HungCall)
    assert (hung.pages, hung.budget, hung.jobs) == (2, 2 * PAGE_LIMIT, ("stuck",))
    assert hung.seconds > hung.budget
    [(job_id, reason)] = rig.seen.failed  # `behind` waits, its page clock stopped
    assert job_id == "stuck"
    assert "engine call on 2 page(s)" in reason and "over its budget of 1 s" in reason
    assert rig.seen.timed_out == []  # no job hit its own page limit

    rig.engine.release.set()  # (a restart would have ended it; here the call returns)
    stuck.join()
    behind.join()
    assert isinstance(stuck.error, JobTimedOut)
    assert behind.error is None and behind.texts == ["w401"]


def test_a_job_waiting_for_room_in_the_batcher_is_not_charged_for_the_wait(rig: Rig) -> None:
    # 2 x MAX_BATCH pages held at most: the third job's first page waits for room while two
    # full batches are read one after another (2 x 4 x 0.2 s, over three page limits)
    first = Run(rig, "first", [501, 502, 503, 504])
    assert rig.engine.entered.wait(WAIT)
    second = Run(rig, "second", [601, 602, 603, 604])
    assert eventually(lambda: len(rig.batcher._queue) == 4)  # 8 pages held: the batcher is full
    third = Run(rig, "third", [701])

    for run in (first, second, third):
        run.join()

    assert [run.error for run in (first, second, third)] == [None, None, None]
    assert third.texts == ["w701"]
    assert [widths for widths, _ in rig.engine.calls] == [
        [501, 502, 503, 504],
        [601, 602, 603, 604],
        [701],
    ]
    assert rig.seen == Seen()


def test_the_page_clock_of_a_job_still_runs_outside_the_batcher(rig: Rig) -> None:
    record = rig.job("slow-render")
    checks = JobChecks("slow-render", rig.store, rig.watch)
    with rig.watch.watching("slow-render"):
        with checks.waiting_on_batcher():
            time.sleep(2 * PAGE_LIMIT)  # waiting on the batcher: not charged
        checks.raise_if_overdue()
        # preparing its own page (rendering, here a sleep): charged
        assert eventually(lambda: rig.seen.failed)
        with pytest.raises(JobTimedOut, match=r"PAGE_TIMEOUT_SECONDS=0\.5"):
            checks.raise_if_overdue()
    assert rig.seen.failed == [(record.job_id, "ran over PAGE_TIMEOUT_SECONDS=0.5")]
    assert rig.seen.hung == []


@pytest.mark.parametrize(
    ("pages_at_once", "pages", "page_limits"),
    [
        (1, 1, 1),
        (1, 4, 4),  # native: one after another
        (50, 1, 1),
        (50, 50, 1),  # a server reading 50 pages at once
        (50, 64, 2),
    ],
)
def test_a_calls_budget_is_the_page_limit_per_page_read_in_turn(
    pages_at_once: int, pages: int, page_limits: int
) -> None:
    engine = SlowEngine()
    engine.pages_at_once = pages_at_once
    batcher = PageBatcher(engine, 64, fill_seconds=0.05, page_seconds=600)
    assert batcher.budget(pages) == 600 * page_limits
    assert PageBatcher(engine, 64, fill_seconds=0.05).budget(pages) is None  # no limit set


def test_a_batching_worker_reads_two_ranges_of_one_job_at_once(rig: Rig) -> None:
    """Ranges of one long job held side by side (BATCH_JOBS), each watched by its own key; a
    page that could not be loaded fails alone in its range."""
    job_id = "ab" * 16
    record = rig.job(job_id)
    assert rig.store.plan(job_id, HOLDER, 30, 2, 2)
    assert rig.store.claim_range(job_id, 1, HOLDER, 30) is RangeClaim.claimed
    broken = PageLoadError(ErrorCode.image_too_large, "page 4 is too large")
    ranges = {
        0: pages(101, 102),
        1: [
            Page(3, Image.new("RGB", (103, 10), "white"), 103, 10, None),
            Page(4, None, 0, 0, None, error=broken),
        ],
    }
    results: dict[int, list[PageResult]] = {}

    def read(part: int) -> None:
        key = f"{job_id}/{part}"
        reader = BatchReader(rig.batcher, rig.store.metrics, "slow-engine", MAX_BATCH)
        with rig.watch.watching(key):
            checks = JobChecks(job_id, rig.store, rig.watch, key)
            results[part] = list(reader.read(record, iter(ranges[part]), checks))

    threads = [threading.Thread(target=read, args=(part,)) for part in ranges]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)

    assert [r.text for r in results[0]] == ["w101", "w102"]
    assert [r.text for r in results[1]] == ["w103", ""]
    assert results[1][1].error is not None and results[1][1].error.code == "image_too_large"
    assert sorted(w for widths, _ in rig.engine.calls for w in widths) == [101, 102, 103]
    assert rig.seen.failed == [] and rig.seen.hung == []
