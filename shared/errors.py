"""Domain errors with stable codes; the API maps each to its HTTP status and JSON body."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error a client may see. `code` is stable; `message` is for people."""

    code = "internal_error"
    status_code = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class EmptyUpload(ServiceError):
    code, status_code = "empty_file", 400


class MissingFile(ServiceError):
    code, status_code = "file_missing", 422


class BadRequestBody(ServiceError):
    code, status_code = "invalid_request", 400


class Unauthorized(ServiceError):
    code, status_code = "unauthorized", 401


class InvalidOption(ServiceError):
    code, status_code = "invalid_option", 422


class TooManyPages(ServiceError):
    code, status_code = "too_many_pages", 422


class JobNotFound(ServiceError):
    code, status_code = "job_not_found", 404


class ImageNotFound(ServiceError):
    """GET /jobs/{id}/images/{name}: no stored crop of that name in the job's result."""

    code, status_code = "image_not_found", 404


class ResultNotReady(ServiceError):
    code, status_code = "result_not_ready", 409


class JobFailed(ServiceError):
    code, status_code = "job_failed", 409


class UploadTooLarge(ServiceError):
    code, status_code = "file_too_large", 413


class UnsupportedMedia(ServiceError):
    code, status_code = "unsupported_media_type", 415


class QueueUnavailable(ServiceError):
    code, status_code = "queue_unavailable", 503


class JobCanceled(ServiceError):
    code, status_code = "job_canceled", 409


class JobAlreadyFinished(ServiceError):
    code, status_code = "job_finished", 409


class IdempotencyKeyInUse(ServiceError):
    """Another request with the same Idempotency-Key is still uploading: retry shortly."""

    code, status_code = "idempotency_key_in_use", 409


class QueueFull(ServiceError):
    """More than MAX_QUEUED_JOBS wait: back-pressure, the client retries after Retry-After."""

    code, status_code = "queue_full", 429


class IdempotencyKeyReused(ServiceError):
    """The Idempotency-Key is known, but the upload (file or form fields) differs."""

    code, status_code = "idempotency_key_reused", 422


class FormTooLarge(ServiceError):
    """Too many form fields, one too long, or too much of the body outside the file part."""

    code, status_code = "form_too_large", 413


class InsufficientStorage(ServiceError):
    """No room left on disk (TEMP_DIR for an upload, OUTPUT_DIR for a result)."""

    code, status_code = "insufficient_storage", 507


class RequestTimeout(ServiceError):
    """The request's head, or the next piece of its body, did not arrive in time."""

    code, status_code = "request_timeout", 408


class HeadersTooLarge(ServiceError):
    """The request line and headers together pass MAX_HEADER_BYTES."""

    code, status_code = "headers_too_large", 431
