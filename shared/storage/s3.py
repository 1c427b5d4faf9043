"""STORAGE_URL=s3://bucket/prefix: a job's files as objects in an S3-compatible bucket (boto3).

`Bucket` is the S3 backend of the storage interface (shared/storage/backend.py). Keys under the
prefix are the layout's (shared/storage/layout.py): `temp/<id>/input` (the upload, from its
acceptance until the job ends), `output/<id>/result.{json,md,txt,pdf,hocr,alto.xml}`,
`output/<id>/images/<name>`, `output/<id>/pages/p<n>.jpg`, `sources/<id>/input` (the kept
source). What makes it safe:
- an object appears whole or not at all: a single PUT, or a multipart upload that is completed
  only after its last part (and aborted on any failure, so no part lingers);
- the job is marked succeeded only after every one of its objects is stored (worker/pipeline.py);
- local files are a process's own: the API's spool of an upload (removed when the request ends)
  and a worker's copy of a job's input (removed when the job ends).
boto3 is imported only when a bucket is used, so the local default costs nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.errors import StorageUnavailable
from shared.storage.backend import StoredObject
from shared.storage.disk import create_shared_file, make_shared_dir, scratch_path

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)

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


class Bucket:
    """The S3 backend (an ObjectStore): one bucket and prefix through one boto3 client
    (thread-safe: shared by the process). Its keys are relative to the prefix."""

    def __init__(
        self,
        client: Any,
        location: S3Location,
        part_bytes: int,
        make_signer: Callable[[], Any] | None = None,
    ) -> None:
        self.client = client
        # the client that signs URLs for clients' side, made on first use (the API's only)
        self._make_signer = make_signer or (lambda: client)
        self._signer: Any = None
        self._signer_guard = threading.Lock()
        self.name = location.bucket
        self.prefix = location.prefix
        self.part_bytes = part_bytes
        from botocore.exceptions import BotoCoreError, ClientError

        self._client_error = ClientError
        self._unavailable = (BotoCoreError, ClientError)

    def full_key(self, key: str) -> str:
        """The object's key in the bucket: the prefix, then `key`."""
        return self.prefix + key

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
    def put(self, key: str, data: bytes | Path) -> None:
        """Bytes in one PUT; a local file in one PUT up to a part's size, else a multipart
        upload read part by part from the file (one part in memory), aborted on any failure."""
        full = self.full_key(key)
        if not isinstance(data, Path):
            with self._calls(f"PUT {full}"):
                self.client.put_object(Bucket=self.name, Key=full, Body=data)
            return
        size = data.stat().st_size
        with self._calls(f"PUT {full}"), open(data, "rb") as fh:
            if size <= self.part_bytes:
                self.client.put_object(Bucket=self.name, Key=full, Body=fh)
                return
            self._put_parts(full, fh)

    def _put_parts(self, key: str, fh: Any) -> None:
        upload = self.client.create_multipart_upload(Bucket=self.name, Key=key)["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
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

    @contextmanager
    def writing(self, key: str, scratch_dir: Path) -> Iterator[Path]:
        """A local scratch file, then one upload of the whole file: a reader in any pod sees
        the previous state (none) or the complete file."""
        make_shared_dir(scratch_dir)
        path = scratch_path(scratch_dir, "write-" + key.replace("/", "-"))
        try:
            create_shared_file(path)
            yield path
            self.put(key, path)
        finally:
            path.unlink(missing_ok=True)

    def copy(self, source: str, target: str) -> None:
        """A server-side copy (multipart above 5 GB, by boto3's managed copy)."""
        with self._calls(f"COPY {self.full_key(source)}"):
            self.client.copy(
                {"Bucket": self.name, "Key": self.full_key(source)},
                self.name,
                self.full_key(target),
            )

    # -- reads --
    def size(self, key: str) -> int | None:
        """The object's size, None when there is none."""
        full = self.full_key(key)
        try:
            with self._calls(f"HEAD {full}"):
                return int(self.client.head_object(Bucket=self.name, Key=full)["ContentLength"])
        except FileNotFoundError:
            return None

    def open(self, key: str) -> Iterator[bytes]:
        """The object's bytes, a chunk at a time (for a response, or a local copy)."""
        full = self.full_key(key)
        with self._calls(f"GET {full}"):
            body = self.client.get_object(Bucket=self.name, Key=full)["Body"]
            try:
                yield from body.iter_chunks(_READ_CHUNK)
            finally:
                body.close()

    def signed_url(self, key: str, seconds: int, media_type: str, disposition: str) -> str:
        """A pre-signed GET (SigV4, no request made: the bucket checks it when it is used),
        for the endpoint clients reach; the bucket answers it with these headers."""
        params = {
            "Bucket": self.name,
            "Key": self.full_key(key),
            "ResponseContentType": media_type,
            "ResponseContentDisposition": disposition,
        }
        with self._signer_guard:
            if self._signer is None:
                self._signer = self._make_signer()
        with self._calls(f"SIGN {self.full_key(key)}"):
            url = self._signer.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=seconds
            )
        return str(url)

    def local_path(self, key: str) -> None:
        """A bucket keeps no files on this machine."""
        return None

    # -- listing and removal --
    def objects(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object whose key starts with `prefix`, with its last change."""
        pages = self.client.get_paginator("list_objects_v2")
        with self._calls(f"LIST {prefix}"):
            for page in pages.paginate(Bucket=self.name, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) :]
                    yield StoredObject(key, item["LastModified"].timestamp())

    def delete(self, keys: Iterable[str]) -> None:
        """Remove the objects (a missing one is no error)."""
        batch = [self.full_key(key) for key in keys]
        for start in range(0, len(batch), _DELETE_BATCH):
            objects = [{"Key": key} for key in batch[start : start + _DELETE_BATCH]]
            with self._calls("DELETE"):
                self.client.delete_objects(
                    Bucket=self.name, Delete={"Objects": objects, "Quiet": True}
                )

    def delete_under(self, prefix: str) -> None:
        self.delete(stored.key for stored in self.objects(prefix))

    def discard_unfinished(self, started_before: float) -> int:
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
_CLIENTS: dict[tuple, Any] = {}
_BUCKETS_GUARD = threading.Lock()


def _client_ident(settings: Settings) -> tuple:
    return (
        settings.aws_endpoint_url,
        settings.aws_region,
        settings.aws_access_key_id,
        settings.aws_secret_access_key.get_secret_value(),
        settings.s3_addressing_style,
        settings.s3_timeout_seconds,
    )


def s3_client(settings: Settings) -> Any:
    """The process's boto3 client for these settings' endpoint and credentials, made once
    (the storage bucket's, and the one s3:// sources are read with: worker/sources.py)."""
    ident = _client_ident(settings)
    with _BUCKETS_GUARD:
        if ident not in _CLIENTS:
            _CLIENTS[ident] = _client(settings, settings.aws_secret_access_key.get_secret_value())
        return _CLIENTS[ident]


def bucket_of(settings: Settings) -> Bucket:
    """The process's Bucket for these settings, its boto3 client made once."""
    secret = settings.aws_secret_access_key.get_secret_value()
    ident = (
        settings.storage_url,
        settings.s3_part_mb,
        settings.s3_public_endpoint_url,
        *_client_ident(settings),
    )
    client = s3_client(settings)
    with _BUCKETS_GUARD:
        if ident not in _BUCKETS:
            _BUCKETS[ident] = Bucket(
                client,
                S3Location.parse(settings.storage_url),
                settings.s3_part_mb << 20,
                make_signer=partial(_client, settings, secret, public=True),
            )
        return _BUCKETS[ident]


def _client(settings: Settings, secret: str, public: bool = False) -> Any:
    """The process's boto3 client; `public`: the one that signs URLs for clients, for
    S3_PUBLIC_ENDPOINT_URL (a signature holds the host) and in SigV4 (X-Amz-Expires: the
    bucket refuses it once expired; SigV2's URLs are refused by newer regions)."""
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
        **({"signature_version": "s3v4"} if public else {}),
    )
    endpoint = (public and settings.s3_public_endpoint_url) or settings.aws_endpoint_url
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint or None,
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
