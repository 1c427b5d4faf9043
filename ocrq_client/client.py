"""HTTP client of the ocrq API, sync and async (httpx): submit, get, wait, result, cancel,
usage.

Transient trouble is retried with exponential backoff and full jitter, honouring Retry-After:
connection refused, 429 `queue_full` (back-pressure: retried for as long as `busy_timeout`),
409 `idempotency_key_in_use`, 502/503/504 and broken connections; never 429 `quota_exceeded`
(the API key's limit: QuotaExceeded at once). Every upload carries an
Idempotency-Key (random unless given), so retrying one never makes a second job. A permanent
error raises ApiError with the service's stable code.

    with OcrqClient() as ocrq:                     # OCRQ_URL, OCRQ_API_KEY from the env
        job = ocrq.wait(ocrq.submit("scan.pdf").job_id)
        text = ocrq.result(job.job_id, "text").decode()
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ocrq_client._version import __version__
from ocrq_client.errors import QUOTA_EXCEEDED, ConnectionFailed, error_of, retry_after_of

# the errors and the job model live in their own modules; importable from here as before
from ocrq_client.errors import ApiError as ApiError
from ocrq_client.errors import OcrqError as OcrqError
from ocrq_client.errors import QuotaExceeded as QuotaExceeded
from ocrq_client.errors import WaitTimeout as WaitTimeout
from ocrq_client.following import JobFollow, OnUpdate, Polling, StreamBroke
from ocrq_client.models import Document, Job, Usage

# pdf (searchable PDF), hocr, alto: rendered by the service on their first request
ResultFormat = Literal["json", "markdown", "text", "pdf", "hocr", "alto"]
FORMATS: tuple[ResultFormat, ...] = ("json", "markdown", "text", "pdf", "hocr", "alto")
Source = str | os.PathLike[str] | bytes


class ClientSettings(BaseSettings):
    """Defaults of a client, from OCRQ_* env vars; arguments to the client win over them."""

    model_config = SettingsConfigDict(env_prefix="OCRQ_", extra="ignore", frozen=True)

    url: str = Field("http://127.0.0.1:8081", description="Base URL of the API")
    api_key: str | None = Field(None, description="Bearer key, when the API sets API_KEYS")
    timeout: float = Field(60.0, gt=0, description="Seconds for each read or write of a request")
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect to the API")
    max_attempts: int = Field(6, ge=1, description="Tries of a request that keeps failing")


# -- retries --
@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; Retry-After from the server is the floor."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    # 429 queue_full is the service asking us to slow down, not failing: keep at it this long
    # (429 quota_exceeded is the key's limit: never retried, QuotaExceeded at once)
    busy_timeout: float = 3600.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** min(attempt, 32))
        jitter = random.uniform(0, ceiling)
        return (retry_after or 0.0) + jitter


@dataclass(frozen=True)
class RetryEvent:
    """Told to `on_retry` before each backoff sleep (progress displays count these)."""

    method: str
    path: str
    attempt: int
    delay: float
    reason: str


_BUSY_STATUSES = {429}
_TRANSIENT_STATUSES = {502, 503, 504}


class _Attempts:
    """One logical request's retry budget: decides whether and how long to wait next."""

    def __init__(self, policy: RetryPolicy, method: str, path: str) -> None:
        self.policy = policy
        self.method = method
        self.path = path
        self.attempt = 0  # retries so far, of any kind: the backoff exponent
        self.failures = 1  # tries that failed (bounded by max_attempts); busy answers are not
        self.started = time.monotonic()

    def after_response(self, response: httpx.Response) -> RetryEvent | None:
        status = response.status_code
        code = error_of(response).code if status in (409, *_BUSY_STATUSES) else ""
        busy = (status in _BUSY_STATUSES and code != QUOTA_EXCEEDED) or (
            status == 409 and code == "idempotency_key_in_use"
        )
        if busy and time.monotonic() - self.started < self.policy.busy_timeout:
            return self._next(error_of(response).code, retry_after_of(response))
        if status in _TRANSIENT_STATUSES and self.failures < self.policy.max_attempts:
            self.failures += 1
            return self._next(f"http {status}", retry_after_of(response))
        return None

    def after_error(self, exc: httpx.TransportError) -> RetryEvent:
        if self.failures >= self.policy.max_attempts:
            raise ConnectionFailed(
                f"{self.method} {self.path}: {type(exc).__name__}: {exc} "
                f"(gave up after {self.failures} attempts)"
            ) from exc
        self.failures += 1
        return self._next(type(exc).__name__, None)

    def _next(self, reason: str, retry_after: float | None) -> RetryEvent:
        delay = self.policy.delay(self.attempt, retry_after)
        self.attempt += 1
        return RetryEvent(self.method, self.path, self.attempt, delay, reason)


def file_idempotency_key(data: bytes) -> str:
    """The key `ocrq submit` sends: the same bytes are the same job, whatever the file name."""
    return "sha256-" + hashlib.sha256(data).hexdigest()


def url_idempotency_key(url: str) -> str:
    """The key `ocrq submit` sends for a URL: the same URL is the same job."""
    return "url-sha256-" + hashlib.sha256(url.encode()).hexdigest()


# what the service fetches itself (POST /jobs source_url): https, http (allowed networks only), s3
URL_SCHEMES = ("https://", "http://", "s3://")


def is_source_url(text: str) -> bool:
    """Does `text` name a document by URL (for the service to fetch) rather than a file?"""
    return text.startswith(URL_SCHEMES)


def _read_source(source: Source, filename: str | None) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, filename or "upload"
    path = Path(source)
    return path.read_bytes(), filename or path.name


def _job_of(response: httpx.Response) -> Job:
    if response.is_error:
        raise error_of(response)
    return Job.model_validate({**response.json(), "replayed": response.status_code == 200})


def _usage_of(response: httpx.Response) -> Usage:
    if response.is_error:
        raise error_of(response)
    return Usage.model_validate(response.json())


def _content_of(response: httpx.Response) -> bytes:
    if response.is_error:
        raise error_of(response)
    return response.content


PRIORITIES = ("high", "normal", "batch")


def _upload(
    data: bytes, filename: str, idempotency_key: str | None, priority: str | None = None
) -> dict[str, object]:
    """POST /jobs arguments; without a key a random one, so a retried upload is still one job.
    `priority` (high, normal, batch) is sent when given; the service's default is normal."""
    key = idempotency_key or f"random-{uuid.uuid4().hex}"
    upload: dict[str, object] = {
        "files": {"file": (filename, data)},
        "headers": {"Idempotency-Key": key},
    }
    if priority is not None:
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, not {priority!r}")
        upload["data"] = {"priority": priority}
    return upload


def _result_params(fmt: str, direct: bool) -> dict[str, str]:
    """GET /jobs/{id}/result's query; `direct` asks for the bucket's URL (`delivery=url`): a
    server with a bucket answers 307 to it, one without (or older) the bytes as before."""
    return {"format": fmt, "delivery": "url"} if direct else {"format": fmt}


def _bucket_request(
    http: httpx.Client | httpx.AsyncClient, answer: httpx.Response
) -> httpx.Request | None:
    """The GET of the pre-signed URL a `delivery=url` answer sent us to (None: the answer
    holds the bytes or an error), without the API key: the URL carries its own signature,
    and the bucket is no place for the key."""
    location = answer.headers.get("location")
    if answer.status_code != 307 or not location:
        return None
    request = http.build_request("GET", location)
    request.headers.pop("Authorization", None)
    return request


def _by_reference(
    url: str, idempotency_key: str | None, priority: str | None = None
) -> dict[str, object]:
    """POST /jobs arguments for a document the service fetches (multipart, no file part)."""
    fields = _upload(b"", "", idempotency_key, priority)
    fields["files"] = {"source_url": (None, url)}
    return fields


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def _client_options(
    url: str | None, api_key: str | None, timeout: float | None, config: ClientSettings
) -> dict:
    headers = {"User-Agent": f"ocrq-client/{__version__}"}
    key = api_key if api_key is not None else config.api_key
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return {
        "base_url": (url or config.url).rstrip("/"),
        "headers": headers,
        "timeout": httpx.Timeout(timeout or config.timeout, connect=config.connect_timeout),
    }


class OcrqClient:
    """Blocking client. Thread-safe as httpx.Client is; use one per process and close it."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        settings: ClientSettings | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        config = settings or ClientSettings()
        self._http = httpx.Client(
            **_client_options(url, api_key, timeout, config), transport=transport
        )
        self.url = str(self._http.base_url).rstrip("/")
        self.retry = retry or RetryPolicy(max_attempts=config.max_attempts)
        self.on_retry = on_retry
        self._sleep = sleep
        # False once the server answered that it has no /jobs/{id}/events: wait() polls
        self.streams_events = True

    def __enter__(self) -> OcrqClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        attempts = _Attempts(self.retry, method, path)
        event: RetryEvent | None
        while True:
            try:
                response = self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
            except httpx.TransportError as exc:
                event = attempts.after_error(exc)
            else:
                event = attempts.after_response(response)
                if event is None:
                    return response
                response.close()
            if self.on_retry:
                self.on_retry(event)
            self._sleep(event.delay)

    def submit(
        self,
        source: Source,
        *,
        filename: str | None = None,
        idempotency_key: str | None = None,
        priority: str | None = None,
    ) -> Job:
        """Upload a file (path or bytes) as a new job, or get the job its key made before.
        `priority`: high, normal (the service's default) or batch."""
        data, name = _read_source(source, filename)
        return self.submit_bytes(data, name, idempotency_key=idempotency_key, priority=priority)

    def submit_bytes(
        self,
        data: bytes,
        filename: str,
        *,
        idempotency_key: str | None = None,
        priority: str | None = None,
    ) -> Job:
        upload = _upload(data, filename, idempotency_key, priority)
        return _job_of(self._request("POST", "/jobs", **upload))

    def submit_url(
        self, url: str, *, idempotency_key: str | None = None, priority: str | None = None
    ) -> Job:
        """A job whose document the service fetches itself (`source_url`: https://, http://
        to networks the server allows, or s3://bucket/key of a bucket it allows): nothing is
        uploaded. The same key and URL again answer the same job."""
        upload = _by_reference(url, idempotency_key, priority)
        return _job_of(self._request("POST", "/jobs", **upload))

    def get(self, job_id: str) -> Job:
        return _job_of(self._request("GET", f"/jobs/{job_id}"))

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 0.25,
        on_update: OnUpdate | None = None,
    ) -> Job:
        """Follow the job's events until it succeeds, fails or is canceled; WaitTimeout after
        `timeout` s. Polls GET /jobs/{id} instead when the server has no event stream or it
        keeps breaking (following.py). `on_update` is told every state seen on the way."""
        polling = Polling(job_id, timeout, poll_interval)
        follow = JobFollow(job_id, polling, on_update, stream=self.streams_events)
        while follow.streaming:
            try:
                options = follow.stream_options(self._http.timeout)
                with self._http.stream("GET", follow.path, **options) as response:  # type: ignore[arg-type]
                    if response.is_error:
                        response.read()
                    if follow.opened(response):
                        for chunk in response.iter_bytes():
                            if (job := follow.feed(chunk)) is not None:
                                return job
                        raise StreamBroke("the stream ended before the job did")
            except (httpx.TransportError, StreamBroke) as exc:
                self._sleep(follow.broke(exc))
        if follow.route_missing:
            self.streams_events = False
        while not (job := follow.seen(self.get(job_id))).terminal:
            self._sleep(polling.next_delay(job))
        return job

    def result(
        self,
        job_id: str,
        format: ResultFormat = "json",  # noqa: A002
        *,
        direct: bool = True,
    ) -> bytes:
        """The stored result as bytes (UTF-8 JSON, Markdown, text, hOCR or ALTO; or a PDF).
        `direct`: straight from the bucket when the server offers a pre-signed URL (through
        the API when it does not, or the bucket does not serve the URL)."""
        _check_format(format)
        params = _result_params(format, direct)
        response = self._request("GET", f"/jobs/{job_id}/result", params=params)
        if (request := _bucket_request(self._http, response)) is None:
            return _content_of(response)
        try:
            fetched = self._http.send(request)
        except httpx.TransportError:
            fetched = None
        if fetched is not None and fetched.is_success:
            return fetched.content
        return self.result(job_id, format, direct=False)

    def document(self, job_id: str) -> Document:
        """The JSON result parsed: its pages, a failed page with its `error`."""
        return Document.model_validate_json(self.result(job_id, "json"))

    def cancel(self, job_id: str) -> Job:
        return _job_of(self._request("DELETE", f"/jobs/{job_id}"))

    def usage(self) -> Usage:
        """The API key's usage per UTC day (today and the last 31 days) and its quotas."""
        return _usage_of(self._request("GET", "/usage"))


class AsyncOcrqClient:
    """The same client for asyncio; one instance serves many concurrent calls."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        settings: ClientSettings | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_connections: int = 100,
    ) -> None:
        config = settings or ClientSettings()
        self._http = httpx.AsyncClient(
            **_client_options(url, api_key, timeout, config),
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections),
        )
        self.url = str(self._http.base_url).rstrip("/")
        self.retry = retry or RetryPolicy(max_attempts=config.max_attempts)
        self.on_retry = on_retry
        self._sleep = sleep
        # False once the server answered that it has no /jobs/{id}/events: wait() polls
        self.streams_events = True

    async def __aenter__(self) -> AsyncOcrqClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        attempts = _Attempts(self.retry, method, path)
        event: RetryEvent | None
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
            except httpx.TransportError as exc:
                event = attempts.after_error(exc)
            else:
                event = attempts.after_response(response)
                if event is None:
                    return response
                await response.aclose()
            if self.on_retry:
                self.on_retry(event)
            await self._sleep(event.delay)

    async def submit(
        self,
        source: Source,
        *,
        filename: str | None = None,
        idempotency_key: str | None = None,
        priority: str | None = None,
    ) -> Job:
        data, name = await asyncio.to_thread(_read_source, source, filename)
        return await self.submit_bytes(
            data, name, idempotency_key=idempotency_key, priority=priority
        )

    async def submit_bytes(
        self,
        data: bytes,
        filename: str,
        *,
        idempotency_key: str | None = None,
        priority: str | None = None,
    ) -> Job:
        upload = _upload(data, filename, idempotency_key, priority)
        return _job_of(await self._request("POST", "/jobs", **upload))

    async def submit_url(
        self, url: str, *, idempotency_key: str | None = None, priority: str | None = None
    ) -> Job:
        """As OcrqClient.submit_url."""
        upload = _by_reference(url, idempotency_key, priority)
        return _job_of(await self._request("POST", "/jobs", **upload))

    async def get(self, job_id: str) -> Job:
        return _job_of(await self._request("GET", f"/jobs/{job_id}"))

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 0.25,
        on_update: OnUpdate | None = None,
    ) -> Job:
        polling = Polling(job_id, timeout, poll_interval)
        follow = JobFollow(job_id, polling, on_update, stream=self.streams_events)
        while follow.streaming:
            try:
                options = follow.stream_options(self._http.timeout)
                async with self._http.stream("GET", follow.path, **options) as response:  # type: ignore[arg-type]
                    if response.is_error:
                        await response.aread()
                    if follow.opened(response):
                        async for chunk in response.aiter_bytes():
                            if (job := follow.feed(chunk)) is not None:
                                return job
                        raise StreamBroke("the stream ended before the job did")
            except (httpx.TransportError, StreamBroke) as exc:
                await self._sleep(follow.broke(exc))
        if follow.route_missing:
            self.streams_events = False
        while not (job := follow.seen(await self.get(job_id))).terminal:
            await self._sleep(polling.next_delay(job))
        return job

    async def result(
        self,
        job_id: str,
        format: ResultFormat = "json",  # noqa: A002
        *,
        direct: bool = True,
    ) -> bytes:
        _check_format(format)
        params = _result_params(format, direct)
        response = await self._request("GET", f"/jobs/{job_id}/result", params=params)
        if (request := _bucket_request(self._http, response)) is None:
            return _content_of(response)
        try:
            fetched = await self._http.send(request)
        except httpx.TransportError:
            fetched = None
        if fetched is not None and fetched.is_success:
            return fetched.content
        return await self.result(job_id, format, direct=False)

    async def document(self, job_id: str) -> Document:
        return Document.model_validate_json(await self.result(job_id, "json"))

    async def cancel(self, job_id: str) -> Job:
        return _job_of(await self._request("DELETE", f"/jobs/{job_id}"))

    async def usage(self) -> Usage:
        return _usage_of(await self._request("GET", "/usage"))
