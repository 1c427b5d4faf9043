"""STORAGE_URL=s3://bucket/prefix: a job's files as objects in an S3-compatible bucket (boto3).

Keys under the prefix mirror the local folders: `temp/<id>/input` (the upload, from its
acceptance until the job ends), `output/<id>/result.{json,md,txt,pdf,hocr,alto.xml}` and
`output/<id>/images/<name>`, `sources/<id>/input` (the kept source). What makes it safe:
- an object appears whole or not at all: a single PUT, or a multipart upload that is completed
  only after its last part (and aborted on any failure, so no part lingers);
- the job is marked succeeded only after every one of its objects is stored (worker/pipeline.py);
- local files are a process's own: the API's spool of an upload (removed when the request ends)
  and a worker's copy of a job's input (removed when the job ends).
boto3 is imported only when a bucket is used, so the local default costs nothing.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.errors import StorageUnavailable
from shared.storage import (
    IMAGES_DIR,
    INPUT_NAME,
    PAGES_DIR,
    RESULT_FILES,
    SOURCES_DIR,
    JobFiles,
    StoredFile,
    create_shared_file,
    is_image_name,
    is_job_id,
    make_shared_dir,
    scratch_path,
)

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)

TEMP_AREA = "temp"  # uploads: TEMP_DIR's counterpart
OUTPUT_AREA = "output"  # results: OUTPUT_DIR's
AREAS = (TEMP_AREA, OUTPUT_AREA, SOURCES_DIR)
_READ_CHUNK = 256 << 10  # bytes per chunk served or downloaded
_DELETE_BATCH = 1000  # DeleteObjects' limit
ATTEMPTS = 3  # tries of one bucket request (botocore's standard retry mode)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or "a/b/" (ends with a slash)

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """`s3://bucket/prefix` (Settings has checked its form)."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")


@dataclass(frozen=True)
class StoredObject:
    key: str
    job_id: str
    area: str
    modified: float  # epoch seconds


class Bucket:
    """One bucket and prefix through one boto3 client (thread-safe: shared by the process)."""

    def __init__(self, client: Any, location: S3Location, part_bytes: int) -> None:
        self.client = client
        self.name = location.bucket
        self.prefix = location.prefix
        self.part_bytes = part_bytes
        from botocore.exceptions import BotoCoreError, ClientError

        self._client_error = ClientError
        self._unavailable = (BotoCoreError, ClientError)

    def key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    # -- errors --
    def _code(self, exc: Exception) -> str:
        """The S3 error code of a ClientError ("" for any other failure)."""
        if not isinstance(exc, self._client_error):
            return ""
        return str(exc.response.get("Error", {}).get("Code", ""))

    def _missing(self, exc: Exception) -> bool:
        return self._code(exc) in ("404", "NoSuchKey", "NotFound")

    @contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        """A missing object becomes FileNotFoundError; any other S3 failure StorageUnavailable."""
        try:
            yield
        except self._unavailable as exc:
            if self._missing(exc):
                raise FileNotFoundError(f"s3://{self.name}/{what}") from exc
            raise StorageUnavailable(
                f"the bucket {self.name!r} (STORAGE_URL) did not answer {what}: {exc}"
            ) from exc

    # -- writes: each object whole or not at all --
    def put_bytes(self, key: str, data: bytes) -> None:
        with self._calls(f"PUT {key}"):
            self.client.put_object(Bucket=self.name, Key=key, Body=data)

    def put_file(self, key: str, path: Path) -> None:
        """Store a local file: one PUT up to a part's size, else a multipart upload read part
        by part from the file (one part in memory), aborted on any failure."""
        size = path.stat().st_size
        with self._calls(f"PUT {key}"), open(path, "rb") as fh:
            if size <= self.part_bytes:
                self.client.put_object(Bucket=self.name, Key=key, Body=fh)
                return
            self._put_parts(key, fh)

    def _put_parts(self, key: str, fh: Any) -> None:
        upload = self.client.create_multipart_upload(Bucket=self.name, Key=key)["UploadId"]
        try:
            parts = []
            while chunk := fh.read(self.part_bytes):
                number = len(parts) + 1
                answer = self.client.upload_part(
                    Bucket=self.name, Key=key, UploadId=upload, PartNumber=number, Body=chunk
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            self.client.complete_multipart_upload(
                Bucket=self.name, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with suppress(*self._unavailable):
                self.client.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload)
            raise

    def copy(self, source: str, target: str) -> None:
        """A server-side copy (multipart above 5 GB, by boto3's managed copy)."""
        with self._calls(f"COPY {source}"):
            self.client.copy({"Bucket": self.name, "Key": source}, self.name, target)

    # -- reads --
    def size(self, key: str) -> int | None:
        """The object's size, None when there is none."""
        try:
            with self._calls(f"HEAD {key}"):
                return int(self.client.head_object(Bucket=self.name, Key=key)["ContentLength"])
        except FileNotFoundError:
            return None

    def get_bytes(self, key: str) -> bytes:
        with self._calls(f"GET {key}"):
            return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def download(self, key: str, dest: Path) -> None:
        """The object into `dest`, streamed (FileNotFoundError when there is none)."""
        with self._calls(f"GET {key}"):
            body = self.client.get_object(Bucket=self.name, Key=key)["Body"]
            try:
                create_shared_file(dest)
                with open(dest, "wb") as out:
                    for chunk in body.iter_chunks(_READ_CHUNK):
                        out.write(chunk)
            except BaseException:
                dest.unlink(missing_ok=True)
                raise
            finally:
                body.close()

    def chunks(self, key: str) -> Iterator[bytes]:
        """The object's bytes, a chunk at a time (for a response)."""
        with self._calls(f"GET {key}"):
            body = self.client.get_object(Bucket=self.name, Key=key)["Body"]
        try:
            yield from body.iter_chunks(_READ_CHUNK)
        finally:
            body.close()

    # -- listing and removal --
    def objects(self, under: str = "") -> Iterator[tuple[str, datetime]]:
        """(key, last modified) of every object whose key starts with prefix + `under`."""
        pages = self.client.get_paginator("list_objects_v2")
        with self._calls(f"LIST {under}"):
            for page in pages.paginate(Bucket=self.name, Prefix=self.prefix + under):
                for item in page.get("Contents", []):
                    yield item["Key"], item["LastModified"]

    def job_objects(self) -> Iterator[StoredObject]:
        """Every object of a job under the prefix, in any area (retention's view)."""
        for area in AREAS:
            for key, modified in self.objects(f"{area}/"):
                job_id = key[len(self.prefix) :].split("/")[1]
                if is_job_id(job_id):
                    yield StoredObject(key, job_id, area, modified.timestamp())

    def delete(self, keys: Iterable[str]) -> None:
        """Remove the objects (a missing one is no error)."""
        batch = list(keys)
        for start in range(0, len(batch), _DELETE_BATCH):
            objects = [{"Key": key} for key in batch[start : start + _DELETE_BATCH]]
            with self._calls("DELETE"):
                self.client.delete_objects(
                    Bucket=self.name, Delete={"Objects": objects, "Quiet": True}
                )

    def delete_under(self, under: str) -> None:
        self.delete(key for key, _ in self.objects(under))

    def abort_stale_uploads(self, started_before: float) -> int:
        """Abort multipart uploads begun before `started_before` (epoch s) that no process
        completed or aborted (its process was killed mid-upload); how many were aborted."""
        aborted = 0
        pages = self.client.get_paginator("list_multipart_uploads")
        with self._calls("LIST uploads"):
            for page in pages.paginate(Bucket=self.name, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].timestamp() < started_before:
                        self.client.abort_multipart_upload(
                            Bucket=self.name, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        return aborted

    def check(self) -> None:
        """Prove the bucket exists and answers to these credentials (StorageUnavailable if not:
        a process that cannot reach its bucket must not start)."""
        try:
            self.client.head_bucket(Bucket=self.name)
        except self._unavailable as exc:
            where = f"the bucket {self.name!r} (STORAGE_URL={_url(self)})"
            if self._missing(exc) or self._code(exc) == "NoSuchBucket":
                reason = "does not exist at this endpoint; create it, or fix STORAGE_URL"
            elif self._code(exc) in _REFUSED:
                reason = "refuses these credentials; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            else:
                reason = f"does not answer: {exc}"
            raise StorageUnavailable(f"{where} {reason}") from None


def _url(bucket: Bucket) -> str:
    return f"s3://{bucket.name}/{bucket.prefix}".rstrip("/")


# what S3-compatible servers answer a wrong key id or secret (or missing permission)
_REFUSED = {"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


_BUCKETS: dict[tuple, Bucket] = {}
_BUCKETS_GUARD = threading.Lock()


def bucket_of(settings: Settings) -> Bucket:
    """The process's Bucket for these settings, its boto3 client made once."""
    secret = settings.aws_secret_access_key.get_secret_value()
    ident = (
        settings.storage_url,
        settings.aws_endpoint_url,
        settings.aws_region,
        settings.aws_access_key_id,
        secret,
        settings.s3_addressing_style,
        settings.s3_part_mb,
        settings.s3_timeout_seconds,
    )
    with _BUCKETS_GUARD:
        if ident not in _BUCKETS:
            _BUCKETS[ident] = Bucket(
                _client(settings, secret),
                S3Location.parse(settings.storage_url),
                settings.s3_part_mb << 20,
            )
        return _BUCKETS[ident]


def _client(settings: Settings, secret: str) -> Any:
    import boto3
    from botocore.config import Config

    # A bucket that stalls must fail a call within seconds, not hold its thread for minutes:
    # each request waits S3_TIMEOUT_SECONDS to connect and for each read, tried 3 times in all
    # (about 3 x timeout + 3 s of backoff), then StorageUnavailable (503 storage_unavailable).
    config = Config(
        connect_timeout=settings.s3_timeout_seconds,
        read_timeout=settings.s3_timeout_seconds,
        retries={"total_max_attempts": ATTEMPTS, "mode": "standard"},
        s3={"addressing_style": settings.s3_addressing_style},
        # S3-compatible servers differ in the checksums they accept: send them only when needed
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=32,
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=settings.aws_endpoint_url or None,
        region_name=settings.aws_region or None,
        aws_access_key_id=settings.aws_access_key_id or None,
        aws_secret_access_key=secret or None,
        config=config,
    )


def check_storage(settings: Settings) -> str:
    """At boot: where job files live, proven reachable (StorageUnavailable if the bucket is not)."""
    if not settings.storage_url:
        return f"TEMP_DIR={settings.temp_dir}, OUTPUT_DIR={settings.output_dir}"
    bucket_of(settings).check()
    return f"STORAGE_URL={settings.storage_url}"


class S3JobFiles(JobFiles):
    """One job's files in the bucket; TEMP_DIR/<id>/ holds only this process's working copy."""

    def __init__(self, temp_dir: Path, output_dir: Path, job_id: str, bucket: Bucket) -> None:
        super().__init__(temp_dir, output_dir, job_id)
        self.bucket = bucket
        self.temp_dir = temp_dir
        self.input_key = bucket.key(TEMP_AREA, job_id, INPUT_NAME)
        self.source_key = bucket.key(SOURCES_DIR, job_id, INPUT_NAME)
        self.output_under = f"{OUTPUT_AREA}/{job_id}/"

    def result_key(self, fmt: str) -> str:
        return self.bucket.key(OUTPUT_AREA, self.job_id, RESULT_FILES[fmt])

    def image_key(self, name: str) -> str:
        if not is_image_name(name):
            raise ValueError(f"not an image name: {name!r}")
        return self.bucket.key(OUTPUT_AREA, self.job_id, IMAGES_DIR, name)

    # -- the upload and the worker's copy --
    def store_input(self) -> None:
        self.bucket.put_file(self.input_key, self.input_path)

    def fetch_input(self) -> Path:
        """Download the input for this run; none stored leaves no file (the job fails
        input_missing, as with local folders)."""
        self.make_input_dir()
        with suppress(FileNotFoundError):
            self.bucket.download(self.input_key, self.input_path)
        return self.input_path

    def drop_local(self) -> None:
        shutil.rmtree(self.input_dir, ignore_errors=True)

    def remove_input(self) -> None:
        self.drop_local()
        with self._left_to_retention("its upload"):
            self.bucket.delete([self.input_key])

    def keep_source(self) -> None:
        if self.bucket.size(self.source_key) is None:
            self.bucket.copy(self.input_key, self.source_key)

    def remove_all(self) -> None:
        self.drop_local()
        with self._left_to_retention("its objects"):
            self.bucket.delete([self.input_key, self.source_key])
            self.bucket.delete_under(self.output_under)

    @contextmanager
    def _left_to_retention(self, what: str) -> Iterator[None]:
        """A removal the bucket refuses now is the retention sweep's to finish: the job's
        state has moved on, and the objects of a job without a record go after the grace."""
        try:
            yield
        except StorageUnavailable as exc:
            log.warning("job=%s: %s stay in the bucket for retention: %s", self.job_id, what, exc)

    # -- results --
    def write_result(self, fmt: str, data: bytes) -> None:  # type: ignore[override]
        self.bucket.put_bytes(self.result_key(fmt), data)

    def write_image(self, name: str, data: bytes) -> None:  # type: ignore[override]
        self.bucket.put_bytes(self.image_key(name), data)

    def page_image_key(self, index: int) -> str:
        return self.bucket.key(OUTPUT_AREA, self.job_id, PAGES_DIR, f"p{int(index)}.jpg")

    def write_page_image(self, index: int, data: bytes) -> None:  # type: ignore[override]
        self.bucket.put_bytes(self.page_image_key(index), data)

    def stored_page_image(self, index: int) -> StoredFile | None:
        return self._stored(self.page_image_key(index))

    def has_result(self, fmt: str) -> bool:
        return self.bucket.size(self.result_key(fmt)) is not None

    def read_result(self, fmt: str) -> bytes:
        return self.bucket.get_bytes(self.result_key(fmt))

    def stored_result(self, fmt: str) -> StoredFile | None:
        return self._stored(self.result_key(fmt))

    def stored_image(self, name: str) -> StoredFile | None:
        return self._stored(self.image_key(name)) if is_image_name(name) else None

    def _stored(self, key: str) -> StoredFile | None:
        size = self.bucket.size(key)
        if size is None:
            return None
        return StoredFile(size=size, chunks=partial(self.bucket.chunks, key))

    # -- archive files --
    def has_source(self) -> bool:
        return self.bucket.size(self.source_key) is not None

    @contextmanager
    def source_copy(self) -> Iterator[Path]:
        path = scratch_path(self.temp_dir, f"source-{self.job_id}")
        try:
            self.bucket.download(self.source_key, path)
            yield path
        finally:
            path.unlink(missing_ok=True)

    @contextmanager
    def archive_target(self, fmt: str) -> Iterator[Path]:
        """Render into a local scratch file, then one upload of the whole file: a reader in any
        pod sees the previous state (none) or the complete file."""
        make_shared_dir(self.temp_dir)
        path = scratch_path(self.temp_dir, f"render-{self.job_id}-{fmt}")
        try:
            create_shared_file(path)
            yield path
            self.bucket.put_file(self.result_key(fmt), path)
        finally:
            path.unlink(missing_ok=True)

    def render_lock_path(self, fmt: str) -> Path:
        # renderers on one host wait for each other; across pods two may render, each
        # storing a whole file (the last PUT wins, both are complete)
        return self.temp_dir / f".{self.job_id}.{fmt}.lock"
