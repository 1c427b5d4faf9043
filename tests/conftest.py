"""Shared fixtures: settings on a test Redis database and temporary folders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.settings import Settings

# Test databases are settable so parallel runs on one Redis do not flush each other's data.
UNIT_REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('OCRQ_TEST_UNIT_DB', '14')}"


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(UNIT_REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("no Redis at 127.0.0.1:6379: run scripts/ensure-redis.sh (make test does)")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings(tmp_path: Path, redis_client: redis.Redis) -> Settings:
    return Settings(
        redis_url=UNIT_REDIS_URL,
        temp_dir=tmp_path / "temp",
        output_dir=tmp_path / "output",
        max_upload_mb=1,
    )
