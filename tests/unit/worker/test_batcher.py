"""PageBatcher's own logic: grouping, outcomes back to their own job, one failing page, a job
dropped mid-batch, and an engine outage waited out.

The engine here is a small in-test BatchingEngine (the real one needs the paddle venv and a VL
server: tests/integration/test_vl_batching.py runs those): it answers each page with the page's
size, so a test can tell whose page an outcome is, and records the batches it was given.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from PIL import Image

from shared.results import Block
from worker.batcher import PageBatcher
from worker.engines import BatchingEngine, EngineError, EngineUnavailable, Recognition

WAIT = 5.0  # upper bound on waits that should end at once; no test takes that long when correct


class SizeEngine:
    """Reads a page as its `WxH`; pages `fail` names get an EngineError; `down` = no answer."""

    name = "size-engine"
    scripts = frozenset({"latin", "cyrillic"})
    pages_at_once = 1

    def __init__(self, max_batch: int = 8) -> None:
        self.max_batch = max_batch
        self.batches: list[list[str]] = []
        self.fail: set[str] = set()
        self.crash_on: set[str] = set()  # a batch holding one of these raises RuntimeError
        self.down = threading.Event()
        self.checks = 0
        self.gate = threading.Event()  # cleared: recognize_batch waits for it (a slow GPU)
        self.gate.set()
        self.entered = threading.Event()
        self.active = 0  # recognize_batch calls running now
        self.most_active = 0
        self._lock = threading.Lock()

    def info(self):  # pragma: no cover - not used by the batcher
        raise NotImplementedError

    def warm(self) -> None:  # pragma: no cover
        pass

    def recognize(self, image: Image.Image) -> Recognition:  # pragma: no cover
        return self.recognize_batch([image])[0]

    def check_available(self) -> None:
        self.checks += 1
        if self.down.is_set():
            raise EngineUnavailable("http://127.0.0.1:1/v1 does not answer")

    def recognize_batch(self, images: Sequence[Image.Image]) -> list[Recognition | EngineError]:
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            return self._read(images)
        finally:
            with self._lock:
                self.active -= 1

    def _read(self, images: Sequence[Image.Image]) -> list[Recognition | EngineError]:
        self.entered.set()
        assert self.gate.wait(WAIT)
        if self.down.is_set():
            raise EngineUnavailable("http://127.0.0.1:1/v1 does not answer")
        names = [f"{i.width}x{i.height}" for i in images]
        self.batches.append(names)
        if self.crash_on & set(names):
            raise RuntimeError("the batch broke")
        return [
            EngineError("vl_server_error", f"{n} failed")
            if n in self.fail
            else Recognition(blocks=[Block(text=n, bbox=[0, 0, 1, 1])])
            for n in names
        ]


def eventually(condition, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def page(width: int, height: int = 10) -> Image.Image:
    return Image.new("RGB", (width, height), "white")


def text(outcome: Recognition | EngineError | None) -> str:
    assert isinstance(outcome, Recognition), outcome
    return outcome.blocks[0].text


@pytest.fixture
def engine() -> SizeEngine:
    return SizeEngine()


@pytest.fixture
def make_batcher(engine: SizeEngine) -> Iterator:
    made: list[PageBatcher] = []

    def make(**kwargs) -> PageBatcher:
        options = {"max_batch": engine.max_batch, "fill_seconds": 30.0, **kwargs}
        batcher = PageBatcher(engine, **options)
        batcher.start()
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.stop()


def test_the_engine_is_a_batching_engine(engine: SizeEngine) -> None:
    assert isinstance(engine, BatchingEngine)


def test_pages_of_many_jobs_go_in_one_batch_and_come_back_to_their_own_job(
    engine: SizeEngine, make_batcher
) -> None:
    batcher = make_batcher()
    with batcher.job() as first, batcher.job() as second:
        tickets_1 = [first.submit(page(w), WAIT) for w in (11, 12, 13)]
        tickets_2 = [second.submit(page(w), WAIT) for w in (21, 22)]
        # both jobs still say they may submit: the batch waits (fill_seconds is 30 s) ...
        assert engine.batches == []
        first.done_submitting()
        second.done_submitting()  # ... until no job is preparing a page
        outcomes_1 = [first.wait(t, WAIT) for t in tickets_1]  # type: ignore[arg-type]
        outcomes_2 = [second.wait(t, WAIT) for t in tickets_2]  # type: ignore[arg-type]

    assert engine.batches == [["11x10", "12x10", "13x10", "21x10", "22x10"]]
    assert [text(o) for o in outcomes_1] == ["11x10", "12x10", "13x10"]
    assert [text(o) for o in outcomes_2] == ["21x10", "22x10"]
    # each page's share of the one call (a tenant's usage counts shares, never the call twice)
    for ticket in [*tickets_1, *tickets_2]:
        assert ticket is not None
        assert ticket.share_seconds == pytest.approx(ticket.engine_seconds / 5)


def test_a_full_batch_goes_without_waiting_and_the_rest_when_the_job_waits(
    engine: SizeEngine, make_batcher
) -> None:
    engine.gate.clear()
    batcher = make_batcher(max_batch=3)
    with batcher.job() as job:
        tickets = [job.submit(page(w), WAIT) for w in range(31, 36)]
        assert engine.entered.wait(WAIT)  # the job still prepares: only a full batch goes
        assert len(batcher._queue) == 2
        engine.gate.set()
        outcomes = [job.wait(t, WAIT) for t in tickets]  # type: ignore[arg-type]

    assert engine.batches == [["31x10", "32x10", "33x10"], ["34x10", "35x10"]]
    assert [text(o) for o in outcomes] == [f"{w}x10" for w in range(31, 36)]


def test_a_batch_goes_after_the_fill_wait_while_a_job_still_prepares(
    engine: SizeEngine, make_batcher
) -> None:
    batcher = make_batcher(fill_seconds=0.05)
    with batcher.job() as job, batcher.job() as busy:
        ticket = job.submit(page(41), WAIT)
        assert ticket is not None
        job.done_submitting()
        # `busy` never submits nor waits, yet the page goes once it waited 0.05 s
        assert text(job.wait(ticket, WAIT)) == "41x10"
        assert busy.submitting
    assert engine.batches == [["41x10"]]


def test_a_failing_page_fails_only_its_own_outcome(engine: SizeEngine, make_batcher) -> None:
    engine.fail.add("52x10")
    batcher = make_batcher()
    with batcher.job() as first, batcher.job() as second:
        good = first.submit(page(51), WAIT)
        bad = second.submit(page(52), WAIT)
        first.done_submitting()
        second.done_submitting()
        ok, failed = first.wait(good, WAIT), second.wait(bad, WAIT)  # type: ignore[arg-type]

    assert len(engine.batches) == 1
    assert text(ok) == "51x10"
    assert isinstance(failed, EngineError) and failed.code == "vl_server_error"


def test_a_batch_that_breaks_is_read_again_page_by_page(engine: SizeEngine, make_batcher) -> None:
    engine.crash_on.add("62x10")
    batcher = make_batcher()
    with batcher.job() as job:
        tickets = [job.submit(page(w), WAIT) for w in (61, 62, 63)]
        job.done_submitting()
        outcomes = [job.wait(t, WAIT) for t in tickets]  # type: ignore[arg-type]

    assert engine.batches == [["61x10", "62x10", "63x10"], ["61x10"], ["62x10"], ["63x10"]]
    assert text(outcomes[0]) == "61x10" and text(outcomes[2]) == "63x10"
    assert isinstance(outcomes[1], EngineError) and outcomes[1].code == "recognition_failed"
    assert "the batch broke" in outcomes[1].message


def test_a_job_that_ends_mid_batch_drops_its_queued_pages_only(
    engine: SizeEngine, make_batcher
) -> None:
    engine.gate.clear()  # the first batch is being read and does not return yet
    batcher = make_batcher(max_batch=2, max_held=6)
    with batcher.job() as stays:
        with batcher.job() as canceled:
            in_flight = [canceled.submit(page(71), WAIT), stays.submit(page(81), WAIT)]
            assert engine.entered.wait(WAIT)  # a full batch: sent at once
            queued = [canceled.submit(page(w), WAIT) for w in (72, 73)]
            later = stays.submit(page(82), WAIT)
        # `canceled` ended (its thread saw the DELETE): its pages 72 and 73 are never read
        stays.done_submitting()
        engine.gate.set()
        mine = [stays.wait(t, WAIT) for t in (in_flight[1], later)]  # type: ignore[arg-type]

    assert engine.batches == [["71x10", "81x10"], ["82x10"]]
    assert [text(o) for o in mine] == ["81x10", "82x10"]
    assert all(t is not None and t.wait(0) is None for t in queued)


def test_submit_waits_for_room_when_the_batcher_holds_its_maximum(
    engine: SizeEngine, make_batcher
) -> None:
    engine.gate.clear()
    batcher = make_batcher(max_batch=2, max_held=3)
    with batcher.job() as job:
        tickets = [job.submit(page(w), WAIT) for w in (91, 92)]  # a full batch: read now
        assert engine.entered.wait(WAIT)
        third = job.submit(page(93), WAIT)
        assert job.submit(page(94), timeout=0.05) is None  # three held: no room
        engine.gate.set()
        assert text(job.wait(tickets[0], WAIT)) == "91x10"  # type: ignore[arg-type]
        fourth = job.submit(page(94), WAIT)
        job.done_submitting()
        rest = [job.wait(t, WAIT) for t in (third, fourth)]  # type: ignore[arg-type]
    assert [text(o) for o in rest] == ["93x10", "94x10"]


def test_an_outage_holds_the_pages_and_stops_the_working_clock_until_the_engine_is_back(
    engine: SizeEngine, make_batcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("worker.batcher.OUTAGE_BACKOFF", (0.02, 0.05))
    reports: list[tuple[bool, str | None]] = []
    now = [1000.0]
    batcher = make_batcher(on_availability=lambda up, why: reports.append((up, why)))
    batcher.clock = lambda: now[0]
    engine.down.set()
    with batcher.job() as job:
        ticket = job.submit(page(101), WAIT)
        job.done_submitting()
        assert ticket is not None
        assert job.wait(ticket, 0.3) is None  # held, not failed
        assert reports == [(False, "http://127.0.0.1:1/v1 does not answer")]
        assert not batcher.available and engine.checks >= 2  # polled again and again
        before = batcher.working_clock()
        now[0] += 60  # a minute of outage is not charged to the jobs' time limits
        assert batcher.working_clock() == pytest.approx(before)

        engine.down.clear()
        assert text(job.wait(ticket, WAIT)) == "101x10"
    assert reports[-1] == (True, None) and batcher.available
    assert engine.batches == [["101x10"]]
    now[0] += 5
    assert batcher.working_clock() == pytest.approx(before + 5)


def test_with_two_in_flight_the_next_batch_goes_while_one_is_read(
    engine: SizeEngine, make_batcher
) -> None:
    engine.gate.clear()  # the server is slow: no call returns yet
    batcher = make_batcher(max_batch=2, in_flight=2)
    with batcher.job() as first, batcher.job() as second:
        mine_1 = [first.submit(page(w), WAIT) for w in (111, 112)]  # a full batch: sent
        mine_2 = [second.submit(page(w), WAIT) for w in (121, 122)]  # sent beside it
        assert eventually(lambda: engine.active == 2)
        assert batcher.call_seconds() >= 0 and batcher._reading == 4
        # the memory cap holds over both calls: 2 x max_batch pages are in memory already
        assert first.submit(page(113), timeout=0.05) is None
        first.done_submitting()
        second.done_submitting()
        engine.gate.set()
        outcomes_1 = [first.wait(t, WAIT) for t in mine_1]  # type: ignore[arg-type]
        outcomes_2 = [second.wait(t, WAIT) for t in mine_2]  # type: ignore[arg-type]

    assert engine.most_active == 2
    assert sorted(engine.batches) == [["111x10", "112x10"], ["121x10", "122x10"]]
    assert [text(o) for o in outcomes_1] == ["111x10", "112x10"]
    assert [text(o) for o in outcomes_2] == ["121x10", "122x10"]
    assert batcher.call_seconds() == 0.0 and batcher._reading == 0


def test_an_outage_seen_by_two_calls_in_flight_is_reported_once_and_holds_both(
    engine: SizeEngine, make_batcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("worker.batcher.OUTAGE_BACKOFF", (0.02, 0.05))
    reports: list[tuple[bool, str | None]] = []
    batcher = make_batcher(
        max_batch=1, in_flight=2, on_availability=lambda up, why: reports.append((up, why))
    )
    engine.gate.clear()
    engine.down.set()
    with batcher.job() as first, batcher.job() as second:
        tickets = [first.submit(page(131), WAIT), second.submit(page(141), WAIT)]
        assert eventually(lambda: engine.active == 2)  # both calls wait on the server
        engine.gate.set()  # ... which answers neither
        assert first.wait(tickets[0], 0.3) is None and second.wait(tickets[1], 0.01) is None
        assert reports == [(False, "http://127.0.0.1:1/v1 does not answer")]
        assert len(batcher._queue) == 2  # both pages held, none failed

        engine.down.clear()
        assert text(first.wait(tickets[0], WAIT)) == "131x10"  # type: ignore[arg-type]
        assert text(second.wait(tickets[1], WAIT)) == "141x10"  # type: ignore[arg-type]
    assert reports[1:] == [(True, None)]
    assert sorted(engine.batches) == [["131x10"], ["141x10"]]
