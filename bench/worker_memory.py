"""Worker processes' resident memory over a run, sampled from /proc in a thread.

A supervisor (`python -m worker`) keeps one worker process as its child; a recycled one is
replaced by a new pid, so each sample records which pids were alive, and the summary counts the
processes each supervisor went through.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

from bench.procs import children, memory_mb


@dataclass
class Sample:
    at: float  # seconds since the sampler started
    rss_mb: dict[int, float]  # worker process pid -> VmRSS


@dataclass
class WorkerMemorySampler:
    """Every `interval` s, the RSS of each supervisor's worker process (its child)."""

    supervisors: list[int]
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._started = time.monotonic()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            rss: dict[int, float] = {}
            for supervisor in self.supervisors:
                for pid in children(supervisor):
                    with contextlib.suppress(OSError, KeyError):
                        rss[pid] = memory_mb(pid)[0]
            self.samples.append(Sample(round(time.monotonic() - self._started, 1), rss))

    def __enter__(self) -> WorkerMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def pids(self) -> set[int]:
        return {pid for s in self.samples for pid in s.rss_mb}

    def timeline(self, rows: int = 12) -> list[list[object]]:
        """About `rows` evenly spaced samples: time, worker processes alive, RSS min/max MB,
        and worker processes seen so far (each recycle adds one)."""
        if not self.samples:
            return []
        step = max(1, len(self.samples) // rows)
        picked = self.samples[::step]
        if picked[-1] is not self.samples[-1]:
            picked.append(self.samples[-1])
        out: list[list[object]] = []
        for sample in picked:
            seen = {p for s in self.samples if s.at <= sample.at for p in s.rss_mb}
            sizes = list(sample.rss_mb.values()) or [0.0]
            out.append(
                [
                    f"{sample.at:.0f}",
                    len(sample.rss_mb),
                    f"{min(sizes):.0f} / {max(sizes):.0f}",
                    len(seen),
                ]
            )
        return out

    def peak_mb(self) -> float:
        return max((max(s.rss_mb.values(), default=0.0) for s in self.samples), default=0.0)
