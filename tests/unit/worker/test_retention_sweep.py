"""The retention sweep against the real Redis and real folders."""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import pytest

from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, utcnow
from shared.settings import Settings
from shared.storage import JobFiles, job_files
from shared.storage.s3 import bucket_of
from testkit.s3server import S3Server
from worker.retention_sweep import RetentionSweep, sweep_expired_jobs, sweep_expired_objects

GRACE = 60.0


def _store(settings: Settings) -> JobStore:
    return JobStore(connect_redis(settings.redis_url), settings.job_ttl_seconds)


def _job_folders(settings: Settings, age: float, *, upload: bool = True) -> JobFiles:
    """A job's upload and result folders, last changed `age` seconds ago."""
    files = JobFiles(settings.temp_dir, settings.output_dir, uuid.uuid4().hex)
    files.write_result("json", b"{}")
    if upload:
        files.make_input_dir()
        files.input_path.write_bytes(b"\x89PNG")
    _age(files.input_dir, age)
    _age(files.output_dir, age)
    return files


def _age(folder: Path, age: float) -> None:
    if not folder.exists():
        return
    stamp = time.time() - age
    for path in [*folder.iterdir(), folder]:
        os.utime(path, (stamp, stamp))


def test_removes_old_folders_of_expired_jobs_only(settings: Settings) -> None:
    store = _store(settings)
    expired = _job_folders(settings, age=GRACE * 3)
    result_only = _job_folders(settings, age=GRACE * 3, upload=False)
    recorded = _job_folders(settings, age=GRACE * 3)
    store.create(JobRecord(job_id=recorded.job_id, status=JobStatus.succeeded, created_at=utcnow()))
    fresh = _job_folders(settings, age=GRACE / 2)  # e.g. an upload whose record is not written yet
    strangers = [settings.temp_dir / "lost+found", settings.output_dir / "README"]
    strangers[0].mkdir()
    strangers[1].write_text("not a job")
    _age(settings.temp_dir, GRACE * 3)

    removed = sweep_expired_jobs(store, [settings.temp_dir, settings.output_dir], GRACE)

    assert sorted(removed) == sorted([expired.job_id, result_only.job_id])
    for gone in (expired, result_only):
        assert not gone.input_dir.exists() and not gone.output_dir.exists()
    for kept in (recorded, fresh):
        assert kept.input_path.is_file() and kept.result_path("json").is_file()
    assert all(p.exists() for p in strangers)


def test_an_upload_still_being_written_is_kept(settings: Settings) -> None:
    """The folder was made long ago, but bytes keep arriving: its file's mtime moves on."""
    files = _job_folders(settings, age=GRACE * 3)
    with open(files.input_path, "ab") as fh:
        fh.write(b"more bytes")
    os.utime(files.input_dir, (time.time() - GRACE * 3,) * 2)

    assert sweep_expired_jobs(_store(settings), [settings.temp_dir], GRACE) == []
    assert files.input_path.is_file()


def test_nothing_is_removed_when_redis_cannot_answer(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    files = _job_folders(settings, age=GRACE * 3)
    dead = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    sweep = RetentionSweep(
        dead.model_copy(update={"retention_grace_seconds": GRACE}),
        JobStore(connect_redis(dead.redis_url), 60),
    )

    with caplog.at_level(logging.WARNING):
        assert sweep.run() == []

    assert files.input_path.is_file() and files.result_path("json").is_file()
    assert "retention sweep skipped" in caplog.text


def test_the_sweep_logs_each_removed_job(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    files = _job_folders(settings, age=GRACE * 3)
    sweep = RetentionSweep(
        settings.model_copy(update={"retention_grace_seconds": GRACE}), _store(settings)
    )

    with caplog.at_level(logging.INFO):
        assert sweep.run() == [files.job_id]

    assert f"job={files.job_id} expired: removed" in caplog.text
    assert sweep.run() == []  # nothing left to do


def test_exists_many_answers_in_one_round_trip(settings: Settings) -> None:
    store = _store(settings)
    known = [uuid.uuid4().hex for _ in range(3)]
    for job_id in known:
        store.create(JobRecord(job_id=job_id, status=JobStatus.queued, created_at=utcnow()))
    unknown = [uuid.uuid4().hex for _ in range(2)]

    assert store.exists_many([*unknown, *known]) == set(known)
    assert store.exists_many([]) == set()


def test_a_kept_source_is_swept_with_its_jobs_result(settings: Settings) -> None:
    store = _store(settings)
    old = settings.retention_grace_seconds * 3  # RetentionSweep takes the setting's grace
    expired = _job_folders(settings, age=old, upload=False)
    recorded = _job_folders(settings, age=old, upload=False)
    store.create(JobRecord(job_id=recorded.job_id, status=JobStatus.succeeded, created_at=utcnow()))
    for files in (expired, recorded):
        files.make_input_dir()
        files.input_path.write_bytes(b"\x89PNG")
        files.keep_source()  # fresh: the result folder's age decides, the source follows
        files.remove_input()

    removed = RetentionSweep(settings, store).run()

    assert removed == [expired.job_id]
    assert not expired.source_dir.exists() and not expired.output_dir.exists()
    assert recorded.source_path.is_file()


def test_sweeps_the_objects_of_expired_jobs_in_the_bucket(
    settings: Settings, s3_server: S3Server
) -> None:
    bucket_name = s3_server.new_bucket()
    in_bucket = s3_server.settings(settings, bucket_name)
    store = _store(in_bucket)
    jobs = []
    for _ in range(2):
        files = job_files(in_bucket, uuid.uuid4().hex)
        files.make_input_dir()
        files.input_path.write_bytes(b"\x89PNG")
        files.store_input()
        files.write_result("json", b"{}")
        files.keep_source()
        files.drop_local()
        jobs.append(files)
    expired, recorded = jobs
    store.create(JobRecord(job_id=recorded.job_id, status=JobStatus.succeeded, created_at=utcnow()))
    bucket = bucket_of(in_bucket)
    unfinished = bucket.client.create_multipart_upload(
        Bucket=bucket_name, Key=bucket.full_key(f"temp/{uuid.uuid4().hex}/input")
    )

    assert s3_server.open_uploads(bucket_name) == [unfinished["Key"]]
    assert sweep_expired_objects(store, bucket, GRACE) == []  # all younger than the grace
    # (moto dates every multipart upload 2010-11-10, so that one is stale already: a real
    # bucket dates it now, and it is kept until the grace has passed)

    later = time.time() + GRACE * 3
    assert sweep_expired_objects(store, bucket, GRACE, now=later) == [expired.job_id]
    assert {key.split("/")[2] for key in s3_server.keys(bucket_name)} == {recorded.job_id}
    assert s3_server.open_uploads(bucket_name) == []
