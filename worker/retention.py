"""Start the retention sweep (worker/retention_sweep.py) in a worker: a thread, after warm-up."""

from __future__ import annotations

import logging

from shared.jobs import JobStore
from shared.settings import Settings
from worker.periodic import Periodic
from worker.retention_sweep import RetentionSweep

log = logging.getLogger(__name__)


def start_retention_sweeps(settings: Settings, store: JobStore) -> Periodic | None:
    """Remove expired jobs' folders now and every RETENTION_SWEEP_SECONDS.

    Every worker sweeps: they share the folders, and a sweep that finds nothing costs one
    directory listing and one Redis round trip per thousand jobs.
    """
    if not settings.retention_sweep_seconds:
        log.info("retention sweep off (RETENTION_SWEEP_SECONDS=0)")
        return None
    sweeper = Periodic(
        "retention-sweep", settings.retention_sweep_seconds, RetentionSweep(settings, store).run
    )
    sweeper.start()
    log.info(
        "retention sweep every %g s (folders without a job record, idle over %g s)",
        settings.retention_sweep_seconds,
        settings.retention_grace_seconds,
    )
    return sweeper
