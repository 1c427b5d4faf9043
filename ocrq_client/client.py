"""HTTP client of the ocrq API, sync and async (httpx): submit, get, wait, result, cancel.

Transient trouble is retried with exponential backoff and full jitter, honouring Retry-After:
connection refused, 429 `queue_full` (back-pressure: retried for as long as `busy_timeout`),
409 `idempotency_key_in_use`, 502/503/504 and broken connections. Every upload carries an
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
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ocrq_client._version import __version__

# pdf (searchable PDF), hocr, alto: rendered by the service on their first request
ResultFormat = Literal["json", "markdown", "text", "pdf", "hocr", "alto"]
FORMATS: tuple[ResultFormat, ...] = ("json", "markdown", "text", "pdf", "hocr", "alto")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})
Source = str | os.PathLike[str] | bytes


class ClientSettings(BaseSettings):
    """Defaults of a client, from OCRQ_* env vars; arguments to the client win over them."""

    model_config = SettingsConfigDict(env_prefix="OCRQ_", extra="ignore", frozen=True)

    url: str = Field("http://127.0.0.1:8081", description="Base URL of the API")
    api_key: str | None = Field(None, description="Bearer key, when the API sets API_KEYS")
    timeout: float = Field(60.0, gt=0, description="Seconds for each read or write of a request")
    connect_timeout: float = Field(5.0, gt=0)
    max_attempts: int = Field(6, ge=1, description="Tries of a request that keeps failing")


# -- what the API answers --
class Progress(BaseModel):
    pages_done: int = 0
    pages_total: int | None = None


class JobError(BaseModel):
    code: str
    message: str


class Callback(BaseModel):
    """A job's latest webhook delivery, for a job with a callback_url."""

    url: str
    delivery_id: str | None = None
    event: str | None = None
    attempts: int = 0
    last_attempt_at: datetime | None = None
    last_outcome: str | None = None  # delivered, retrying, gave_up
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None


class Job(BaseModel):
    """A job as GET /jobs/{id} shows it; `replayed` when a repeated Idempotency-Key found it."""

    job_id: str
    status: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: Progress = Progress()
    error: JobError | None = None
    callback: Callback | None = None
    replayed: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


# -- errors --
class OcrqError(Exception):
    """Base of every error this client raises."""


class ApiError(OcrqError):
    """The API answered with an error; `code` is its stable code (e.g. `job_not_found`)."""

    def __init__(
        self, status_code: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.retry_after = retry_after


class ConnectionFailed(OcrqError):
    """The API could not be reached (or kept dropping the connection) after every retry."""


class WaitTimeout(OcrqError):
    """wait() gave up before the job finished."""


# -- retries --
@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; Retry-After from the server is the floor."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    # 429 queue_full is the service asking us to slow down, not failing: keep at it this long
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


def _error_of(response: httpx.Response) -> ApiError:
    code, message = f"http_{response.status_code}", response.reason_phrase
    try:
        body = response.json()
        code, message = body["error"]["code"], body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        pass
    return ApiError(response.status_code, code, message, _retry_after(response))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


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
        busy = status in _BUSY_STATUSES or (
            status == 409 and _error_of(response).code == "idempotency_key_in_use"
        )
        if busy and time.monotonic() - self.started < self.policy.busy_timeout:
            return self._next(_error_of(response).code, _retry_after(response))
        if status in _TRANSIENT_STATUSES and self.failures < self.policy.max_attempts:
            self.failures += 1
            return self._next(f"http {status}", _retry_after(response))
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


def _read_source(source: Source, filename: str | None) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, filename or "upload"
    path = Path(source)
    return path.read_bytes(), filename or path.name


def _job_of(response: httpx.Response) -> Job:
    if response.is_error:
        raise _error_of(response)
    return Job.model_validate({**response.json(), "replayed": response.status_code == 200})


def _content_of(response: httpx.Response) -> bytes:
    if response.is_error:
        raise _error_of(response)
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


class _Polling:
    """One wait()'s pace: 1.5x longer between polls up to 2 s; WaitTimeout past the deadline."""

    def __init__(self, job_id: str, timeout: float | None, interval: float) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.interval = interval

    def next_delay(self, job: Job) -> float:
        """How long to sleep before polling the unfinished `job` again."""
        delay = self.interval
        if self.deadline is not None and time.monotonic() + delay > self.deadline:
            raise WaitTimeout(f"job {self.job_id} still {job.status} after {self.timeout} s")
        self.interval = min(delay * 1.5, 2.0)
        return delay


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

    def __enter__(self) -> OcrqClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        attempts = _Attempts(self.retry, method, path)
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

    def get(self, job_id: str) -> Job:
        return _job_of(self._request("GET", f"/jobs/{job_id}"))

    def wait(
        self, job_id: str, *, timeout: float | None = None, poll_interval: float = 0.25
    ) -> Job:
        """Poll until the job succeeds, fails or is canceled; WaitTimeout after `timeout` s."""
        polling = _Polling(job_id, timeout, poll_interval)
        while not (job := self.get(job_id)).terminal:
            self._sleep(polling.next_delay(job))
        return job

    def result(self, job_id: str, format: ResultFormat = "json") -> bytes:  # noqa: A002
        """The stored result as bytes (UTF-8 JSON, Markdown, text, hOCR or ALTO; or a PDF)."""
        _check_format(format)
        response = self._request("GET", f"/jobs/{job_id}/result", params={"format": format})
        return _content_of(response)

    def cancel(self, job_id: str) -> Job:
        return _job_of(self._request("DELETE", f"/jobs/{job_id}"))


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

    async def __aenter__(self) -> AsyncOcrqClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        attempts = _Attempts(self.retry, method, path)
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

    async def get(self, job_id: str) -> Job:
        return _job_of(await self._request("GET", f"/jobs/{job_id}"))

    async def wait(
        self, job_id: str, *, timeout: float | None = None, poll_interval: float = 0.25
    ) -> Job:
        polling = _Polling(job_id, timeout, poll_interval)
        while not (job := await self.get(job_id)).terminal:
            await self._sleep(polling.next_delay(job))
        return job

    async def result(self, job_id: str, format: ResultFormat = "json") -> bytes:  # noqa: A002
        _check_format(format)
        response = await self._request("GET", f"/jobs/{job_id}/result", params={"format": format})
        return _content_of(response)

    async def cancel(self, job_id: str) -> Job:
        return _job_of(await self._request("DELETE", f"/jobs/{job_id}"))
