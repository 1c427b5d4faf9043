"""The errors the client raises, and the API's error body read into one."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import httpx

QUOTA_EXCEEDED = "quota_exceeded"


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


class QuotaExceeded(ApiError):
    """429 `quota_exceeded`: the job would pass one of the API key's quotas (its message names
    it). Never retried: `retry_after` says when it may pass (None: never, or not known)."""


class ConnectionFailed(OcrqError):
    """The API could not be reached (or kept dropping the connection) after every retry."""


class WaitTimeout(OcrqError):
    """wait() gave up before the job finished."""


def error_of(response: httpx.Response) -> ApiError:
    code, message = f"http_{response.status_code}", response.reason_phrase
    try:
        body = response.json()
        code, message = body["error"]["code"], body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        pass
    kind = QuotaExceeded if code == QUOTA_EXCEEDED else ApiError
    return kind(response.status_code, code, message, retry_after_of(response))


def retry_after_of(response: httpx.Response) -> float | None:
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
