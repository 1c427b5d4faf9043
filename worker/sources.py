"""Input by reference: the worker that runs a job fetches its `source_url` into the job's input.

Bounded in every way a source could stretch it: the target checked again before each connect
(shared/source_urls.py: a name may resolve elsewhere than at submit) and the request sent to the
very address checked; redirects followed by hand, at most SOURCE_MAX_REDIRECTS, each target
checked like the first; MAX_UPLOAD_MB enforced while reading (a Content-Length over it is
refused unread, a missing or lying one cut at the limit); SOURCE_TIMEOUT_SECONDS over the
whole fetch, the socket cut when it passes. Bytes are sniffed as an upload's are. A fetch that
fails raises SourceFailed (source_unreachable, source_too_large, unsupported_media_type) and
leaves no file; the job then fails with that code.

Then, once the document is open: its pages counted against MAX_PAGES and the job's API key's
max_pages_per_job and pages_per_day (a job by reference was admitted as one page at submit).
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from shared import __version__
from shared.callback_urls import CallbackTarget
from shared.error_codes import ErrorCode
from shared.jobs import JobRecord, JobStore
from shared.media import SNIFF_BYTES, SUPPORTED_TYPES, sniff_media_type
from shared.settings import Settings
from shared.source_urls import S3Source, SourcePolicy, SourceRefused, shown_source
from shared.storage.disk import open_shared_file
from shared.storage.s3 import s3_client
from worker.socket_deadline import SocketDeadline

log = logging.getLogger(__name__)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 256 << 10
_CONNECT_TIMEOUT = 10.0  # at most, of SOURCE_TIMEOUT_SECONDS
# a connection that failed to open: the host's next address is tried
_NEXT_ADDRESS = (httpx.ConnectError, httpx.ConnectTimeout)


class SourceFailed(Exception):
    """The source could not be fetched or is not a document; `code` goes into the failed job."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message


@dataclass(frozen=True)
class Fetched:
    path: Path
    media_type: str
    size: int


class _Sink:
    """Bytes of the source into `dest`: counted against the cap, sniffed from the head, the
    whole fetch against its deadline."""

    def __init__(self, dest: Path, max_bytes: int, deadline: float, limit: float) -> None:
        self.dest = dest
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.limit = limit
        self.size = 0
        self.head = b""
        self._fd = open_shared_file(dest)

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise too_large(self.max_bytes, "more bytes came")
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view) :]
        if time.monotonic() > self.deadline:
            raise timed_out(self.limit)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def media_type(self) -> str:
        if self.size == 0:
            raise SourceFailed(ErrorCode.unsupported_media_type, "the source is empty")
        media = sniff_media_type(self.head)
        if media is None:
            raise SourceFailed(
                ErrorCode.unsupported_media_type,
                f"the source's bytes match no supported type ({', '.join(SUPPORTED_TYPES)})",
            )
        return media


def too_large(limit: int, how: str) -> SourceFailed:
    return SourceFailed(
        ErrorCode.source_too_large,
        f"the source is larger than the limit of {limit} bytes (MAX_UPLOAD_MB): {how}",
    )


def timed_out(limit: float) -> SourceFailed:
    return SourceFailed(
        ErrorCode.source_unreachable,
        f"the source did not arrive within {limit:g} s (SOURCE_TIMEOUT_SECONDS)",
    )


def unreachable(message: str) -> SourceFailed:
    return SourceFailed(ErrorCode.source_unreachable, message)


class SourceFetcher:
    """Fetches sources for one worker process: one HTTP client (no pooled connections, no
    proxy from the environment, no redirects of its own) and the S3 client of the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy: SourcePolicy = settings.source_policy
        self.max_bytes = settings.max_upload_bytes
        self.limit = settings.source_timeout_seconds
        self.client = httpx.Client(
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would undo the address check
            limits=httpx.Limits(max_keepalive_connections=0),
            verify=ssl.create_default_context(),
            headers={"User-Agent": f"ocrq-source/{__version__}", "Accept-Encoding": "identity"},
        )

    def close(self) -> None:
        self.client.close()

    def fetch(self, url: str, dest: Path, tenant: str | None = None) -> Fetched:
        """The source's bytes into `dest` (left nowhere on failure: SourceFailed)."""
        deadline = time.monotonic() + self.limit
        sink: _Sink | None = None
        try:
            try:
                target = self.policy.check(url, tenant=tenant)  # again: DNS may answer otherwise
            except SourceRefused as exc:
                raise unreachable(f"refused: {exc}") from None
            sink = _Sink(dest, self.max_bytes, deadline, self.limit)
            if isinstance(target, S3Source):
                self._from_s3(target, sink)
            else:
                self._from_http(target, sink, deadline, tenant)
            sink.close()
            return Fetched(dest, sink.media_type(), sink.size)
        except BaseException:
            if sink is not None:
                sink.close()
            dest.unlink(missing_ok=True)
            raise

    # -- http(s) --
    def _from_http(
        self, target: CallbackTarget, sink: _Sink, deadline: float, tenant: str | None
    ) -> None:
        for hop in range(self.settings.source_max_redirects + 1):
            location = self._get(target, sink, deadline)
            if location is None:
                return
            if hop == self.settings.source_max_redirects:
                break
            try:
                following = self.policy.check(urljoin(target.url, location), tenant=tenant)
            except SourceRefused as exc:
                raise unreachable(f"a redirect was refused: {exc}") from None
            if isinstance(following, S3Source):
                raise unreachable("a redirect to s3:// is not followed")
            target = following
        raise unreachable(
            f"more than {self.settings.source_max_redirects} redirects (SOURCE_MAX_REDIRECTS)"
        )

    def _get(self, target: CallbackTarget, sink: _Sink, deadline: float) -> str | None:
        """GET the target from its checked addresses in turn (the next only when one does not
        connect); the body into `sink`, or the Location of a redirect."""
        failure = "no address"
        for address in target.addresses:
            left = deadline - time.monotonic()
            if left <= 0:
                raise timed_out(self.limit)
            try:
                return self._get_from(target, str(address), sink, left)
            except _NEXT_ADDRESS as exc:
                failure = f"could not connect to {target.host} ({type(exc).__name__})"
        raise unreachable(failure)

    def _get_from(
        self, target: CallbackTarget, address: str, sink: _Sink, left: float
    ) -> str | None:
        url = httpx.URL(target.url).copy_with(host=address)  # the checked address, no lookup
        cut = SocketDeadline(left)
        extensions: dict[str, Any] = {"trace": cut.trace}
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host  # TLS checks the name, not the address
        timeout = httpx.Timeout(left, connect=min(left, _CONNECT_TIMEOUT))
        try:
            with self.client.stream(
                "GET",
                url,
                headers={"Host": target.netloc},
                extensions=extensions,
                timeout=timeout,
            ) as response:
                code = response.status_code
                if code in _REDIRECTS and "location" in response.headers:
                    return response.headers["location"]
                if not 200 <= code < 300:
                    raise unreachable(f"{target.host} answered {code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise too_large(self.max_bytes, f"its Content-Length says {declared}")
                for chunk in response.iter_raw(_CHUNK):
                    sink.write(chunk)
                return None
        except _NEXT_ADDRESS:
            raise
        except httpx.TimeoutException:
            raise timed_out(self.limit) from None
        except httpx.HTTPError as exc:
            if cut.fired:
                raise timed_out(self.limit) from None
            raise unreachable(f"{target.host}: {type(exc).__name__}") from None
        finally:
            cut.cancel()

    # -- s3 --
    def _from_s3(self, source: S3Source, sink: _Sink) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = s3_client(self.settings)
        try:
            answer = client.get_object(Bucket=source.bucket, Key=source.key)
            body = answer["Body"]
            try:
                if int(answer.get("ContentLength") or 0) > self.max_bytes:
                    raise too_large(self.max_bytes, f"it holds {answer['ContentLength']} bytes")
                for chunk in _chunks(body):
                    sink.write(chunk)
            finally:
                body.close()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise unreachable(f"{source.url}: the bucket answered {code or 'an error'}") from None
        except BotoCoreError as exc:
            raise unreachable(f"{source.url}: {type(exc).__name__}") from None


def _chunks(body: Any) -> Iterator[bytes]:
    yield from body.iter_chunks(_CHUNK)


def count_pages(
    settings: Settings, store: JobStore, record: JobRecord, pages: int, total: int
) -> None:
    """A job by reference, its document open: `total` pages in it, `pages` of them selected.
    Refused (SourceFailed, the job fails) over MAX_PAGES or the API key's max_pages_per_job or
    pages_per_day; else its pages are counted in the key's usage of the job's day."""
    if total > settings.max_pages:
        raise SourceFailed(
            ErrorCode.too_many_pages,
            f"the document has {total} pages; the limit is MAX_PAGES={settings.max_pages}",
        )
    quotas = settings.key_ring.quotas(record.owner)
    name = settings.key_ring.label(record.owner)
    if quotas.max_pages_per_job is not None and pages > quotas.max_pages_per_job:
        raise SourceFailed(
            ErrorCode.quota_exceeded,
            f"the job has {pages} pages; the API key {name} allows max_pages_per_job="
            f"{quotas.max_pages_per_job}",
        )
    refusal = store.usage.count_fetched(
        record.owner,
        record.job_id,
        pages,
        record.created_at.date(),
        pages_per_day=quotas.pages_per_day,
    )
    if refusal is not None:
        raise SourceFailed(
            ErrorCode.quota_exceeded,
            f"the job has {pages} pages and the API key {name} submitted {refusal.used} "
            f"today (UTC); its pages_per_day={quotas.pages_per_day}",
        )


def fetch_into(fetcher: SourceFetcher, record: JobRecord, dest: Path) -> Fetched:
    """Fetch the job's source into `dest`, logged by its shown URL (never a query)."""
    assert record.source_url is not None
    started = time.perf_counter()
    with suppress(FileNotFoundError):
        dest.unlink()
    fetched = fetcher.fetch(record.source_url, dest, tenant=record.owner)
    log.info(
        "job=%s fetched %s: %s, %d bytes in %.2f s",
        record.job_id,
        shown_source(record.source_url),
        fetched.media_type,
        fetched.size,
        time.perf_counter() - started,
    )
    return fetched
