"""Domain errors that shared code raises, with a stable code and no HTTP status.

The API answers each with the status api/errors.py's HTTP_STATUS maps its code to; the errors
only the API raises (uploads, auth, results) live there too, as subclasses of ServiceError.
"""

from __future__ import annotations

from shared.error_codes import ErrorCode


class ServiceError(Exception):
    """Base of every error a client may see. `code` is stable; `message` is for people.

    `headers` are what the answer should carry besides the body (Retry-After, Connection):
    hints the API applies; a process without HTTP ignores them.
    """

    code: ErrorCode = ErrorCode.internal_error

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidOption(ServiceError):
    code = ErrorCode.invalid_option


class InvalidCallbackUrl(ServiceError):
    """callback_url is malformed, or points where callbacks may not go (SSRF guard)."""

    code = ErrorCode.invalid_callback_url


class InvalidSourceUrl(ServiceError):
    """source_url is malformed, or points where the service may not read (SSRF guard)."""

    code = ErrorCode.invalid_source_url


class JobNotFound(ServiceError):
    code = ErrorCode.job_not_found


class StorageUnavailable(ServiceError):
    """The bucket STORAGE_URL names does not answer (or refuses this service's credentials)."""

    code = ErrorCode.storage_unavailable


class QueueUnavailable(ServiceError):
    """Redis (the job store and the queue) does not answer."""

    code = ErrorCode.queue_unavailable
