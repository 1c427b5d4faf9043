"""Worker recycling: the limits, the recycler's count, and the supervisor's prompt restart."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from shared.jobs import WorkerBeat
from shared.settings import Settings
from worker.boot import carry_rewarming_beat
from worker.exit_codes import EXIT_RECYCLE
from worker.probe import check_worker
from worker.recycling import RecyclePolicy, Recycler, current_rss_mb

ROOT = Path(__file__).resolve().parents[3]


def test_limits_off_by_default() -> None:
    policy = RecyclePolicy.from_settings(Settings())
    assert not policy.enabled
    assert policy.reason(10_000, 100_000.0) is None


def test_recycled_once_the_job_count_is_reached() -> None:
    policy = RecyclePolicy(max_jobs=3)
    assert policy.reason(2, 5000.0) is None, "RSS is not a limit here"
    assert policy.reason(3, None) == "3 jobs done (WORKER_MAX_JOBS=3)"


def test_recycled_above_the_rss_limit() -> None:
    policy = RecyclePolicy(max_rss_mb=800)
    assert policy.reason(1, 800.0) is None
    assert policy.reason(1, 801.4) == "RSS 801 MB above WORKER_MAX_RSS_MB=800"
    assert policy.reason(1, None) is None, "unreadable RSS never recycles"


def test_settings_read_the_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_MAX_JOBS", "500")
    monkeypatch.setenv("WORKER_MAX_RSS_MB", "1500")
    assert RecyclePolicy.from_settings(Settings()) == RecyclePolicy(500, 1500)
    monkeypatch.setenv("WORKER_MAX_JOBS", "-1")
    with pytest.raises(ValueError, match="worker_max_jobs"):
        Settings()


def test_recycler_stops_the_process_once_even_with_many_jobs_held() -> None:
    stops: list[int] = []
    recycler = Recycler(
        RecyclePolicy(max_jobs=5), rss_mb=lambda: 100.0, stop=lambda: stops.append(1)
    )
    threads = [threading.Thread(target=recycler.job_done) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert recycler.jobs_done == 12, "held jobs finishing after the limit still count"
    assert stops == [1]
    assert recycler.reason == "5 jobs done (WORKER_MAX_JOBS=5)"


def test_recycler_reads_rss_after_each_job() -> None:
    sizes = iter([300.0, 420.0, 510.0])
    stops: list[int] = []
    recycler = Recycler(
        RecyclePolicy(max_rss_mb=500), rss_mb=lambda: next(sizes), stop=lambda: stops.append(1)
    )
    recycler.job_done()
    recycler.job_done()
    assert not stops
    recycler.job_done()
    assert stops == [1] and recycler.reason == "RSS 510 MB above WORKER_MAX_RSS_MB=500"


def test_disabled_recycler_neither_counts_nor_measures() -> None:
    def no_rss() -> float:
        raise AssertionError("RSS read with recycling off")

    recycler = Recycler(RecyclePolicy(), rss_mb=no_rss, stop=lambda: None)
    recycler.job_done()
    assert recycler.jobs_done == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_current_rss_is_this_process_resident_memory() -> None:
    status = Path("/proc/self/status").read_text()
    (line,) = [x for x in status.splitlines() if x.startswith("VmRSS:")]
    reported = int(line.split()[1]) / 1024
    measured = current_rss_mb()
    assert measured is not None
    assert abs(measured - reported) < max(16.0, reported * 0.1)


def _beat(**changes: object) -> WorkerBeat:
    fields: dict = {
        "worker_id": "w1",
        "engine": "paddleocr-vl",
        "device": "gpu:0",
        "warm": False,
        "pid": 1,
        "started_at": "2026-12-02T04:00:00+00:00",
        "warmup_seconds": 120.0,
    }
    return WorkerBeat(**(fields | changes))


class _Registry:
    def __init__(self, beat: WorkerBeat) -> None:
        self.beat = beat

    def get(self, worker_id: str) -> WorkerBeat | None:
        return self.beat if worker_id == self.beat.worker_id else None


def test_probe_counts_a_worker_rewarming_after_its_recycle_as_healthy_for_a_while() -> None:
    started = datetime.fromisoformat(_beat().started_at)
    rewarming = _Registry(_beat(rewarming=True))
    soon = check_worker(rewarming, "w1", now=started + timedelta(seconds=300))  # type: ignore[arg-type]
    assert soon.ok and "re-warming" in soon.message
    # 3x the last warm-up (120 s): a warm-up that hangs fails the probe at last
    late = check_worker(rewarming, "w1", now=started + timedelta(seconds=361))  # type: ignore[arg-type]
    assert not late.ok and "not warm" in late.message
    plain = check_worker(_Registry(_beat()), "w1", now=started)  # type: ignore[arg-type]
    assert not plain.ok, "a worker warming at container start is not ready"


STAND_IN = """
import sys
from pathlib import Path

runs = Path(sys.argv[sys.argv.index("--runs") + 1])
with runs.open("a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
count = len(runs.read_text().splitlines())
# recycled twice, then a crash, then a clean stop
raise SystemExit({1: {code}, 2: {code}, 3: 1}.get(count, 0))
"""


def test_supervisor_restarts_a_recycled_process_at_once_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "stand_in_worker.py").write_text(STAND_IN.replace("{code}", str(EXIT_RECYCLE)))
    runs = tmp_path / "runs.txt"
    script = textwrap.dedent(
        f"""
        import logging, sys
        sys.path.insert(0, {str(tmp_path)!r})
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        from worker.supervisor import supervise
        raise SystemExit(supervise(["--runs", {str(runs)!r}], module="stand_in_worker"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    args = [line.split() for line in runs.read_text().splitlines()]
    assert len(args) == 4
    assert ["--recycled" in a for a in args] == [False, True, True, False]
    log = result.stderr.splitlines()
    recycled = [line for line in log if "recycled after" in line]
    assert len(recycled) == 2 and all("starting a fresh one" in line for line in recycled)
    (crash,) = [line for line in log if "restarting in" in line]
    assert "exited with 1" in crash, "a crash still backs off"


class _Beats:
    """WorkerRegistry's beat/get/remove over a dict (what carry_rewarming_beat calls)."""

    def __init__(self, beat: WorkerBeat) -> None:
        self.beats = {beat.worker_id: beat}
        self.ttls: list[int] = []

    def get(self, worker_id: str) -> WorkerBeat | None:
        return self.beats.get(worker_id)

    def beat(self, beat: WorkerBeat, ttl_seconds: int) -> None:
        self.beats[beat.worker_id] = beat
        self.ttls.append(ttl_seconds)

    def remove(self, worker_id: str) -> None:
        self.beats.pop(worker_id, None)


def test_a_recycled_process_keeps_its_predecessors_rewarming_beat_fresh() -> None:
    registry = _Beats(_beat(rewarming=True, pid=4242))
    carried = carry_rewarming_beat(registry, "w1", Settings(), recycled=True)  # type: ignore[arg-type]
    assert carried is not None and carried.rewarming and carried.warmup_seconds == 120.0
    assert registry.beats["w1"].pid == os.getpid()
    assert registry.ttls == [Settings().worker_heartbeat_ttl]


@pytest.mark.parametrize(
    ("beat", "recycled"),
    [
        (_beat(warm=True), False),  # a restarted container: the old warm beat must not count
        (_beat(warm=True), True),  # recycled, but the beat is not the hand-over's
        (_beat(rewarming=True), False),  # a rewarming beat of a process that then crashed
    ],
)
def test_any_other_beat_of_this_worker_id_is_removed_at_boot(
    beat: WorkerBeat, recycled: bool
) -> None:
    registry = _Beats(beat)
    assert carry_rewarming_beat(registry, "w1", Settings(), recycled) is None  # type: ignore[arg-type]
    assert registry.beats == {}
