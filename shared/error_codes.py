"""Every error code a client can see: one closed set, listed in OpenAPI as an enum.

Two kinds share it because a client reads both the same way (`code`, then `message`):
- an HTTP error body's `error.code` (the API maps each of these to its status in ONE place,
  api/errors.py's HTTP_STATUS);
- a failed job's `error.code` in its record (written by the worker and the job package).

It lives in shared/ (not in the job package, not in api/) because both processes write codes
of it and the job package stores them: the API answers with one, the worker fails a job with
one. Nothing writes a code that is not a member; tests/unit/test_error_codes.py checks it.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """Every code a client can see: an error body's `error.code`, a failed job's `error.code`."""

    # -- answered by the API (an HTTP error body) --
    internal_error = "internal_error"  # also a job failure: the worker crashed on the job
    invalid_request = "invalid_request"
    validation_error = "validation_error"
    unauthorized = "unauthorized"
    not_found = "not_found"  # no route at that path
    method_not_allowed = "method_not_allowed"
    http_400 = "http_400"  # a status Starlette or FastAPI raised itself, without a code of ours
    http_403 = "http_403"
    http_413 = "http_413"
    http_error = "http_error"  # any other such status (none is raised today)
    request_timeout = "request_timeout"
    headers_too_large = "headers_too_large"
    empty_file = "empty_file"
    file_missing = "file_missing"
    file_too_large = "file_too_large"
    form_too_large = "form_too_large"
    unsupported_media_type = "unsupported_media_type"
    invalid_option = "invalid_option"
    invalid_callback_url = "invalid_callback_url"
    invalid_source_url = "invalid_source_url"  # malformed, or pointing where reads may not go
    file_and_source_url = "file_and_source_url"  # a submission carries both: which one?
    too_many_pages = "too_many_pages"
    idempotency_key_in_use = "idempotency_key_in_use"
    idempotency_key_reused = "idempotency_key_reused"
    queue_full = "queue_full"
    quota_exceeded = "quota_exceeded"  # the API key's pages_per_day, max_queued, ...
    queue_unavailable = "queue_unavailable"
    engine_not_served = "engine_not_served"  # workers live, none serves the job's engine
    job_not_found = "job_not_found"
    image_not_found = "image_not_found"
    page_not_found = "page_not_found"  # GET /jobs/{id}/pages/{n}/image: no page n in the result
    result_not_ready = "result_not_ready"
    result_gone = "result_gone"  # succeeded, but its result is no longer stored (410)
    job_failed = "job_failed"
    job_canceled = "job_canceled"
    job_finished = "job_finished"
    insufficient_storage = "insufficient_storage"  # also a job failure: no room for the result
    storage_unavailable = (
        "storage_unavailable"  # the bucket (STORAGE_URL) fails; also a job failure
    )
    worker_unresponsive = "worker_unresponsive"  # GET /health: the watched worker is gone

    # -- a failed job's record (written by the worker or the job package) --
    timeout = "timeout"  # a page or the job overran its time limit
    worker_lost = "worker_lost"  # the job's worker died JOB_MAX_ATTEMPTS times
    input_missing = "input_missing"
    source_unreachable = "source_unreachable"  # the source_url could not be fetched (in time)
    source_too_large = "source_too_large"  # the source_url's document is over MAX_UPLOAD_MB
    invalid_image = "invalid_image"
    image_too_large = "image_too_large"
    pdf_encrypted = "pdf_encrypted"
    pdf_corrupt = "pdf_corrupt"
    invalid_pages = "invalid_pages"
    language_unsupported = "language_unsupported"
    recognition_failed = "recognition_failed"
    vl_server_error = "vl_server_error"
    vl_output_repetitive = "vl_output_repetitive"  # the VL model looped on a page, twice
    # the engine could not run (also why a worker refuses to start, and /ready's engine_error)
    engine_unavailable = "engine_unavailable"
    engine_not_installed = "engine_not_installed"
    engine_init_failed = "engine_init_failed"
    unknown_engine = "unknown_engine"
    config_error = "config_error"
    gpu_unavailable = "gpu_unavailable"
    model_missing = "model_missing"
    warmup_failed = "warmup_failed"
