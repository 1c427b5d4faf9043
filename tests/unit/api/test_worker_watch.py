"""Liveness that sees the worker (api/worker_watch.py): the verdict from heartbeats on a fake
clock (start grace, a missing beat past LIVENESS_STALE_SECONDS, a warm-up, Redis down, a beat
left by the previous container), then /health answering it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.worker_watch import WorkerWatch
from shared.jobs import WorkerBeat, WorkerRegistry
from shared.settings import Settings

STALE = 10.0
GRACE = 100.0
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


def watch_on(clock: Clock) -> WorkerWatch:
    registry = WorkerRegistry(redis.Redis.from_url("redis://127.0.0.1:1/0"))  # never read here
    return WorkerWatch(
        registry, "w1", STALE, GRACE, clock=clock, wall_clock=lambda: NOW.timestamp()
    )


def beat(*, warm: bool = False, started: datetime = NOW + timedelta(seconds=2)) -> WorkerBeat:
    return WorkerBeat("w1", "rapidocr", "cpu", warm=warm, pid=7, started_at=started.isoformat())


def test_no_first_beat_is_alive_through_the_start_grace_then_dead() -> None:
    clock = Clock()
    watch = watch_on(clock)
    for _ in range(10):
        clock.tick(GRACE / 10)
        assert watch.observe(None).alive
    clock.tick(1)
    verdict = watch.observe(None)
    assert not verdict.alive
    assert "LIVENESS_START_GRACE_SECONDS" in verdict.message and "'w1'" in verdict.message


def test_a_loading_worker_is_alive_however_long_it_takes() -> None:
    clock = Clock()
    watch = watch_on(clock)
    for _ in range(100):  # 50 minutes of a not-warm beat
        clock.tick(30)
        assert watch.observe(beat(warm=False)).alive
    assert "loading its engine" in watch.verdict.message


def test_a_missing_beat_is_dead_past_the_stale_time_and_alive_again_when_it_returns() -> None:
    clock = Clock()
    watch = watch_on(clock)
    clock.tick(5)
    assert watch.observe(beat(warm=True)).alive
    clock.tick(STALE)
    assert watch.observe(None).alive  # missing for exactly STALE: not yet
    clock.tick(0.5)
    verdict = watch.observe(None)
    assert not verdict.alive
    assert "LIVENESS_STALE_SECONDS=10" in verdict.message
    assert watch.verdict == verdict  # what /health reads
    assert watch.observe(beat(warm=True)).alive


def test_after_its_first_beat_the_start_grace_no_longer_covers_a_hang() -> None:
    clock = Clock()
    watch = watch_on(clock)
    clock.tick(1)
    watch.observe(beat())
    clock.tick(STALE + 1)  # well inside the start grace
    assert not watch.observe(None).alive


def test_redis_down_never_fails_it_and_the_absence_counts_from_its_return() -> None:
    clock = Clock()
    watch = watch_on(clock)
    watch.observe(beat(warm=True))
    for _ in range(20):
        clock.tick(STALE)
        verdict = watch.observe(None, redis_down=True)
        assert verdict.alive and "Redis unreachable" in verdict.message
    clock.tick(STALE - 1)
    assert watch.observe(None).alive  # the worker had STALE to beat again after Redis came back
    clock.tick(2)
    assert not watch.observe(None).alive


def test_a_beat_left_by_the_previous_container_does_not_end_the_start_grace() -> None:
    """Restarted on the same AOF: the old worker's beat lives on for a while. Its absence
    afterwards, while the new worker loads, is no hang."""
    clock = Clock()
    watch = watch_on(clock)
    old = beat(warm=True, started=NOW - timedelta(hours=1))
    assert watch.observe(old).alive
    clock.tick(STALE * 5)
    assert watch.observe(None).alive  # still in the grace
    clock.tick(GRACE)
    assert not watch.observe(None).alive


def test_an_unreadable_start_time_counts_as_not_this_containers() -> None:
    clock = Clock()
    watch = watch_on(clock)
    odd = WorkerBeat("w1", "rapidocr", "cpu", warm=True, pid=7, started_at="now")
    watch.observe(odd)
    clock.tick(STALE + 1)
    assert watch.observe(None).alive


def test_check_reads_redis_and_takes_redis_down_as_alive(redis_client: redis.Redis) -> None:
    clock = Clock()
    down = watch_on(clock)  # nothing listens on port 1
    clock.tick(GRACE * 2)
    assert down.check().alive
    up = WorkerWatch(WorkerRegistry(redis_client), "w1", STALE, GRACE, clock=clock)
    WorkerRegistry(redis_client).beat(beat(started=datetime.now(UTC)), ttl_seconds=30)
    assert up.check().message == "ok: worker 'w1' beats (loading its engine)"


def test_health_answers_503_worker_unresponsive_once_the_watched_worker_is_gone(
    settings: Settings, redis_client: redis.Redis
) -> None:
    watched = settings.model_copy(
        update={
            "liveness_worker": "gone",
            "liveness_stale_seconds": 0.1,
            "liveness_start_grace_seconds": 0.1,
        }
    )
    with TestClient(create_app(watched)) as client:
        deadline = time.monotonic() + 15
        while (response := client.get("/health")).status_code == 200:
            assert time.monotonic() < deadline, "no 503 within 15 s"
            time.sleep(0.1)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "worker_unresponsive"
        assert "'gone'" in error["message"]
        # it comes back once the worker beats again
        back = WorkerBeat("gone", "rapidocr", "cpu", True, pid=8, started_at="x")
        WorkerRegistry(redis_client).beat(back, ttl_seconds=30)
        deadline = time.monotonic() + 15
        while client.get("/health").status_code != 200:
            assert time.monotonic() < deadline, "still 503 15 s after the beat returned"
            time.sleep(0.1)


def test_health_watches_nothing_by_default(settings: Settings) -> None:
    dead_redis = settings.model_copy(update={"redis_url": "redis://127.0.0.1:6399/0"})
    with TestClient(create_app(dead_redis)) as client:
        assert client.app.state.worker_watch is None  # type: ignore[attr-defined]
        assert client.get("/health").json() == {"status": "ok"}
    spec = create_app(settings).openapi()["paths"]["/health"]["get"]
    assert "`worker_unresponsive`" in spec["responses"]["503"]["description"]
    assert "probe" in spec["description"]
