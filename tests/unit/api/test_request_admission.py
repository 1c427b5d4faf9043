"""Requests start a few per event-loop turn, in arrival order; /health starts at once."""

from __future__ import annotations

import asyncio

from api.request_admission import RequestAdmission


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)  # one turn of the loop


def test_a_flood_starts_a_few_per_turn_in_arrival_order() -> None:
    async def flood() -> list[list[int]]:
        loop = asyncio.get_running_loop()
        admission = RequestAdmission(per_turn=3)
        turns: list[list[int]] = [[]]
        for n in range(8):
            admission.start(loop, "/jobs/x/events", lambda n=n: turns[-1].append(n))
        for _ in range(4):
            turns.append([])
            await _turns(1)
        assert admission.waiting == 0
        return [t for t in turns if t]

    assert asyncio.run(flood()) == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_health_starts_at_once_past_a_waiting_flood() -> None:
    async def flood() -> tuple[list[str], int]:
        loop = asyncio.get_running_loop()
        admission = RequestAdmission(per_turn=2)
        started: list[str] = []
        for n in range(100):
            admission.start(loop, "/jobs/x/events", lambda n=n: started.append(f"stream {n}"))
        admission.start(loop, "/health", lambda: started.append("health"))
        waiting = admission.waiting
        await _turns(60)
        return started, waiting

    started, waiting = asyncio.run(flood())
    assert started[2] == "health"  # right after the two of the first turn
    assert waiting == 98
    assert started.count("health") == 1 and len(started) == 101


def test_without_a_flood_every_request_starts_at_once() -> None:
    async def calm() -> int:
        loop = asyncio.get_running_loop()
        admission = RequestAdmission(per_turn=2)
        started = 0
        for _ in range(5):
            admission.start(loop, "/jobs", lambda: None)
            started += 1
            await _turns(2)
            assert admission.waiting == 0
        return started

    assert asyncio.run(calm()) == 5
