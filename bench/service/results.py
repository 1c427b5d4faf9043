"""What one `python -m bench.service` run measures: its sizes, the figures each part collects
(pickled to var/bench/last-run.pickle, so `--render` can report them again), and the progress log.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

from bench.procs import load_average
from bench.servicekit import SCRATCH, Batch

LAST_RUN = SCRATCH / "last-run.pickle"
PARTS = ("overhead", "coldstart", "submit", "peer", "scaling")


@dataclass
class Sizes:
    en_pages: int
    ru_pages: int
    steady_jobs: int
    submit_requests: dict[int, int]
    scaling_pages: int
    paced_seconds: float
    paced_rates: tuple[float, ...] = (1.0, 2.0, 3.0)  # uploads a second per paced client

    @classmethod
    def of(cls, args: argparse.Namespace) -> Sizes:
        if args.quick:
            return cls(3, 3, 3, {1: 20, 10: 40, 50: 100}, 3, 3.0)
        return cls(
            args.en_pages,
            args.ru_pages,
            5,
            {1: 100, 10: 300, 50: 500},
            args.en_pages,
            10.0,
        )


@dataclass
class Results:
    direct: dict[str, Batch] = field(default_factory=dict)
    service: dict[str, Batch] = field(default_factory=dict)
    coldstart: dict[str, float] = field(default_factory=dict)
    steady_latencies: list[float] = field(default_factory=list)
    restarts: list[dict] = field(default_factory=list)
    sizes_steady: int = 0
    submit: list[dict] = field(default_factory=list)
    submit_memory: dict[str, float] = field(default_factory=dict)
    peer: Batch | None = None
    peer_version: str = ""
    scaling: dict[tuple[int, str], Batch] = field(default_factory=dict)
    scaling_ru: dict[int, Batch] = field(default_factory=dict)
    checks: list[list[object]] = field(default_factory=list)
    loads: dict[str, float] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load_average():.1f}] {message}", file=sys.stderr)
