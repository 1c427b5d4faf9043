"""A process whose bucket it cannot use does not start: `python -m api` and `python -m worker`
exit 2 with one line naming STORAGE_URL (no traceback, no restart loop), for a bucket that does
not exist and for a secret the server refuses (moto on loopback, checking credentials)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from testkit.s3server import REGION, S3Server, running_s3_server
from testkit.stack import ROOT, free_port
from tests.conftest import UNIT_REDIS_URL

pytestmark = pytest.mark.integration

# moto answers the first three requests without credentials (the bucket, an IAM user and its
# key are made by them), then checks every request's signature against IAM
_OPEN_REQUESTS = 3


@pytest.fixture(scope="module")
def checking_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, str, str]]:
    """A moto server that checks credentials, its one bucket, and a real access key id."""
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": str(_OPEN_REQUESTS)}
    with running_s3_server(tmp_path_factory.mktemp("moto-auth"), env=env) as server:
        bucket = server.new_bucket()
        iam = boto3.client(
            "iam",
            endpoint_url=server.endpoint,
            region_name=REGION,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="ocrq")
        key_id = iam.create_access_key(UserName="ocrq")["AccessKey"]["AccessKeyId"]
        yield server, bucket, key_id


def _start(module: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    full = {
        **os.environ,
        "REDIS_URL": UNIT_REDIS_URL,
        "TEMP_DIR": str(tmp_path / "temp"),
        "OUTPUT_DIR": str(tmp_path / "output"),
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=90,  # exits at once; a restart loop or a started server would run past this
    )


@pytest.mark.parametrize("module", ["api", "worker"])
def test_missing_bucket_exits_2_naming_storage_url(
    s3_server: S3Server, module: str, tmp_path: Path
) -> None:
    result = _start(module, s3_server.env("ocrq-no-such-bucket"), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "STORAGE_URL=s3://ocrq-no-such-bucket/jobs" in output and "does not exist" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("module", ["api", "worker"])
def test_refused_secret_exits_2_naming_storage_url(
    checking_s3: tuple[S3Server, str, str], module: str, tmp_path: Path
) -> None:
    server, bucket, key_id = checking_s3
    env = {
        **server.env(bucket),
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": "not-the-secret",
    }
    result = _start(module, env, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"STORAGE_URL=s3://{bucket}/jobs" in output and "refuses these credentials" in output
    assert "Traceback" not in output
