"""Remove the folders of jobs whose record has expired, so TEMP_DIR and OUTPUT_DIR stay bounded;
with STORAGE_URL=s3://, their objects in the bucket too (and multipart uploads left unfinished).

A job record lives JOB_TTL_SECONDS in Redis; its folders on disk do not expire by themselves.
A folder is removed only when its job has no record *and* nothing in it changed for the grace
period: an upload in progress has a folder but no record yet, and must never be swept.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from shared.errors import QueueUnavailable, StorageUnavailable
from shared.jobs import JobStore
from shared.settings import Settings
from shared.storage import SOURCES_DIR, ObjectStore, StoredObject, is_job_id
from shared.storage.layout import AREAS, job_of
from shared.storage.s3 import bucket_of

log = logging.getLogger(__name__)

_BATCH = 1000  # ids per Redis round trip


def last_change(folder: Path) -> float:
    """The newest mtime of the folder and its entries: appending to an upload moves it on."""
    newest = folder.lstat().st_mtime
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
            except FileNotFoundError:
                continue
    return newest


def _job_folders(roots: Iterable[Path]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for root in roots:
        try:
            entries = list(os.scandir(root))
        except FileNotFoundError:
            continue
        for entry in entries:
            if is_job_id(entry.name) and entry.is_dir(follow_symlinks=False):
                found.setdefault(entry.name, []).append(Path(entry.path))
    return found


def sweep_expired_jobs(
    store: JobStore,
    roots: Iterable[Path],
    grace_seconds: float,
    now: float | None = None,
    companions: Iterable[Path] = (),
) -> list[str]:
    """Remove `<root>/<job_id>/` folders that have no job record and are older than the grace.

    A job's folders under `companions` (its kept source) go with its other folders; their own
    age counts only when the job has no other folder left.

    Returns the ids removed. Redis trouble raises QueueUnavailable before anything is removed:
    a job store that cannot answer is never taken for one that says "expired".
    """
    now = time.time() if now is None else now
    folders = _job_folders(roots)
    kept = _job_folders(companions)
    removed = []
    for job_id in _without_record(store, folders.keys() | kept.keys()):
        judged = folders.get(job_id) or kept[job_id]
        try:
            idle = now - max(last_change(folder) for folder in judged)
        except FileNotFoundError:
            idle = 0.0  # removed meanwhile (job ended, canceled): nothing to do
        if idle <= grace_seconds:
            continue
        removing = folders.get(job_id, []) + kept.get(job_id, [])
        for folder in removing:
            shutil.rmtree(folder, ignore_errors=True)
        log.info(
            "job=%s expired: removed %s (idle %.0f s)",
            job_id,
            ", ".join(str(f) for f in removing),
            idle,
        )
        removed.append(job_id)
    return removed


def _without_record(store: JobStore, job_ids: Iterable[str]) -> Iterator[str]:
    """The ids that have no job record, asking Redis about a thousand at a time."""
    ids = sorted(job_ids)
    for start in range(0, len(ids), _BATCH):
        batch = ids[start : start + _BATCH]
        alive = store.exists_many(batch)
        yield from (job_id for job_id in batch if job_id not in alive)


def _job_objects(storage: ObjectStore) -> dict[str, list[tuple[str, StoredObject]]]:
    """Every object of a job in any area, by job id, each with its area."""
    jobs: dict[str, list[tuple[str, StoredObject]]] = {}
    for area in AREAS:
        for stored in storage.objects(f"{area}/"):
            owner = job_of(stored.key)
            if owner is not None:
                jobs.setdefault(owner[1], []).append((area, stored))
    return jobs


def sweep_expired_objects(
    store: JobStore, storage: ObjectStore, grace_seconds: float, now: float | None = None
) -> list[str]:
    """The bucket's counterpart of sweep_expired_jobs: a job's objects go when it has no record
    and none of them changed for the grace period (its kept source counting only alone)."""
    now = time.time() if now is None else now
    jobs = _job_objects(storage)
    removed = []
    for job_id in _without_record(store, jobs):
        objects = [stored for _, stored in jobs[job_id]]
        judged = [stored for area, stored in jobs[job_id] if area != SOURCES_DIR] or objects
        idle = now - max(o.modified for o in judged)
        if idle <= grace_seconds:
            continue
        storage.delete(o.key for o in objects)
        log.info("job=%s expired: removed %d object(s) (idle %.0f s)", job_id, len(objects), idle)
        removed.append(job_id)
    aborted = storage.discard_unfinished(now - grace_seconds)
    if aborted:
        log.info("retention sweep aborted %d unfinished multipart upload(s)", aborted)
    return removed


class RetentionSweep:
    """One sweep of TEMP_DIR and OUTPUT_DIR, run periodically by each worker."""

    def __init__(self, settings: Settings, store: JobStore) -> None:
        self.roots = [settings.temp_dir, settings.output_dir]
        # OUTPUT_DIR/sources/<id>, a succeeded job's kept upload (format=pdf): it follows the
        # job's result folder, whose age (not the source's) says when the job is idle
        self.companions = [settings.output_dir / SOURCES_DIR]
        self.grace = settings.retention_grace_seconds
        self.store = store
        self.bucket: ObjectStore | None = bucket_of(settings) if settings.storage_url else None

    def run(self) -> list[str]:
        try:
            removed = sweep_expired_jobs(
                self.store, self.roots, self.grace, companions=self.companions
            )
        except QueueUnavailable as exc:
            log.warning("retention sweep skipped: %s", exc)
            return []
        if removed:
            log.info("retention sweep removed the folders of %d expired job(s)", len(removed))
        if self.bucket is not None:
            try:
                objects = sweep_expired_objects(self.store, self.bucket, self.grace)
            except (QueueUnavailable, StorageUnavailable) as exc:
                log.warning("retention sweep of the bucket skipped: %s", exc)
                return removed
            if objects:
                log.info("retention sweep removed the objects of %d expired job(s)", len(objects))
            removed += [job_id for job_id in objects if job_id not in removed]
        return removed
