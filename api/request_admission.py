"""Requests start a few per event-loop turn, so a flood of them never starves /health.

A request's first step (middleware, routing, dependencies, up to its first real wait) takes
the event loop about a millisecond, and asyncio runs every step that is ready in one turn of
the loop. When thousands of connections send their request at once (3,000 status streams
opening), uvicorn started them all at once, so one turn of the loop held thousands of first
steps, several seconds of work during which nothing else, /health included, could run: it
answered after 4-8 s. Here at most `per_turn` requests start per turn, the rest wait in
arrival order (a parked request costs no task and no loop time), and /health starts at once:
the loop's turns stay short and the liveness probe is answered within a turn or two. The work
and its order are unchanged, only spread over more turns.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

PER_TURN = 16  # requests started per loop turn (a turn then takes some 16-30 ms of their work)
PRIORITY_PATHS = frozenset({"/health"})  # the liveness probe jumps the line


class RequestAdmission:
    """One per process (event loop): `start` runs a request's starter now or in a later turn."""

    def __init__(self, per_turn: int = PER_TURN) -> None:
        self.per_turn = per_turn
        self._waiting: deque[Callable[[], None]] = deque()
        self._started = 0  # in this turn
        self._turn_scheduled = False

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def start(
        self, loop: asyncio.AbstractEventLoop, path: str, starter: Callable[[], None]
    ) -> None:
        """Call `starter` now if this turn has room (or `path` is a priority), else later, in
        arrival order."""
        self._next_turn_later(loop)
        if path in PRIORITY_PATHS or (not self._waiting and self._started < self.per_turn):
            self._started += 1
            starter()
        else:
            self._waiting.append(starter)

    def _next_turn_later(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._turn_scheduled:
            self._turn_scheduled = True
            loop.call_soon(self._next_turn, loop)

    def _next_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        self._turn_scheduled = False
        self._started = 0
        while self._waiting and self._started < self.per_turn:
            self._started += 1
            self._waiting.popleft()()
        if self._waiting:
            self._next_turn_later(loop)
