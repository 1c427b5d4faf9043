"""S3-compatible servers on loopback, each in its own process, for tests and benchmarks: moto's
(the default), and s3rver's (scripts/ensure-s3rver.sh), which checks a pre-signed URL's
signature and expiry as S3 does where moto serves any pre-signed GET."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.settings import Settings
from testkit.stack import free_port

START_TIMEOUT = 30.0  # seconds for the server to answer (a loaded machine imports slowly)
# moto accepts any credentials; these only have to be present and the same everywhere
ACCESS_KEY = "ocrq-test"
SECRET_KEY = "ocrq-test-secret"
REGION = "us-east-1"


# s3rver's fixed credentials
S3RVER_KEY = "S3RVER"
S3RVER_DIR = Path(__file__).resolve().parent.parent / "var" / "s3rver"  # ensure-s3rver.sh


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    def env(self, bucket: str, prefix: str = "jobs") -> dict[str, str]:
        """The settings a process needs to keep its job files in `bucket` under `prefix`."""
        return {
            "STORAGE_URL": f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def settings(self, base: Settings, bucket: str, prefix: str = "jobs") -> Settings:
        """`base` (its Redis and folders) with its job files in `bucket` under `prefix`."""
        return Settings(
            redis_url=base.redis_url,
            temp_dir=base.temp_dir,
            output_dir=base.output_dir,
            **{k.lower(): v for k, v in self.env(bucket, prefix).items()},
        )

    def client(self):
        """A boto3 client of the server, for a test to look at the bucket itself."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def new_bucket(self) -> str:
        name = f"ocrq-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def open_uploads(self, bucket: str) -> list[str]:
        """Keys of multipart uploads neither completed nor aborted."""
        answer = self.client().list_multipart_uploads(Bucket=bucket)
        return [upload["Key"] for upload in answer.get("Uploads", [])]


@contextmanager
def running_s3_server(log_dir: Path, env: dict[str, str] | None = None) -> Iterator[S3Server]:
    """`moto_server` on 127.0.0.1 on a free port, stopped when the block ends. `env` adds to
    its environment (INITIAL_NO_AUTH_ACTION_COUNT=N: credentials checked after N requests)."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "moto.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    with _serving(
        # moto's own page, not an S3 call: INITIAL_NO_AUTH_ACTION_COUNT counts those
        S3Server(f"http://127.0.0.1:{port}", process),
        "moto_server",
        log_dir,
        "/moto-api/",
    ) as server:
        yield server


def s3rver_installed() -> bool:
    return (S3RVER_DIR / "node_modules" / "s3rver" / "bin" / "s3rver.js").is_file()


@contextmanager
def running_s3rver(data_dir: Path) -> Iterator[S3Server]:
    """s3rver (scripts/ensure-s3rver.sh) on 127.0.0.1 on a free port, its objects and log in
    `data_dir`, stopped when the block ends. Its credentials are S3RVER/S3RVER."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    script = S3RVER_DIR / "node_modules" / "s3rver" / "bin" / "s3rver.js"
    with open(data_dir / "s3rver.log", "ab") as log:
        process = subprocess.Popen(
            [*("node", str(script), "-d", str(data_dir / "objects")), *_loopback(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = S3Server(f"http://127.0.0.1:{port}", process, S3RVER_KEY, S3RVER_KEY)
    with _serving(server, "s3rver", data_dir) as serving:
        yield serving


def _loopback(port: int) -> list[str]:
    """s3rver's arguments to serve path-style buckets on 127.0.0.1:`port`."""
    return ["-a", "127.0.0.1", "-p", str(port), "--no-vhost-buckets"]


@contextmanager
def _serving(server: S3Server, name: str, log_dir: Path, probe: str = "/") -> Iterator[S3Server]:
    """`server` once it answers HTTP at `probe`; stopped when the block ends."""
    process = server.process
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited {process.returncode}; see {log_dir}")
            try:
                httpx.get(f"{server.endpoint}{probe}", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not answering after {START_TIMEOUT} s") from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
