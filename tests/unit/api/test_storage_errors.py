"""The API with STORAGE_URL=s3://: a bucket that stops answering is 503 storage_unavailable,
and a submission it refuses leaves neither a job nor a spool behind."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from shared.jobs import JobStore, connect_redis
from shared.jobs.usage import utc_today
from shared.settings import Settings
from testkit.pages import encode, render_page
from testkit.s3server import S3Server


def test_a_bucket_gone_answers_503_and_keeps_nothing(
    settings: Settings, s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    in_bucket = s3_server.settings(settings, bucket)
    png = encode(render_page([("Stored in a bucket", 30)], width=400))
    with TestClient(create_app(in_bucket)) as client:
        accepted = client.post("/jobs", files={"file": ("a.png", png)})
        assert accepted.status_code == 202, accepted.text
        assert s3_server.keys(bucket) == [f"jobs/temp/{accepted.json()['job_id']}/input"]

        s3_server.client().delete_object(Bucket=bucket, Key=s3_server.keys(bucket)[0])
        s3_server.client().delete_bucket(Bucket=bucket)
        refused = client.post("/jobs", files={"file": ("a.png", png)})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "storage_unavailable"
        assert "STORAGE_URL" in refused.json()["error"]["message"]

    store = JobStore(connect_redis(settings.redis_url), settings.job_ttl_seconds)
    assert store.queue_depth() == 1  # the first job only
    assert [p for p in Path(settings.temp_dir).rglob("*") if p.is_file()] == []
    # admitted, then not stored: its count in the (anonymous) usage was given back
    [today] = store.usage.days(None, utc_today(), 1)
    assert (today.jobs_submitted, today.pages_submitted) == (1, 1)
    assert store.usage.active(None) == 1
