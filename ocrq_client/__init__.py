"""The Python client and the `ocrq` command of the ocrq OCR service.

Its own package: it talks to the API over HTTP only and imports nothing from `api`, `worker` or
`shared`, so `pip install 'ocrq[client]'` brings httpx, rich and pydantic, not the server's
dependencies (celery, fastapi, redis, ...).

    from ocrq_client import OcrqClient
    with OcrqClient() as ocrq:                     # OCRQ_URL, OCRQ_API_KEY from the env
        job = ocrq.wait(ocrq.submit("scan.pdf").job_id)
"""

from ocrq_client._version import __version__
from ocrq_client.client import (
    ApiError,
    AsyncOcrqClient,
    ClientSettings,
    ConnectionFailed,
    Job,
    OcrqClient,
    OcrqError,
    QuotaExceeded,
    RetryEvent,
    RetryPolicy,
    WaitTimeout,
    file_idempotency_key,
    is_source_url,
    url_idempotency_key,
)
from ocrq_client.models import Document, Page, PageError, Usage

__all__ = [
    "ApiError",
    "AsyncOcrqClient",
    "ClientSettings",
    "ConnectionFailed",
    "Document",
    "Job",
    "OcrqClient",
    "OcrqError",
    "Page",
    "PageError",
    "QuotaExceeded",
    "RetryEvent",
    "RetryPolicy",
    "Usage",
    "WaitTimeout",
    "__version__",
    "file_idempotency_key",
    "is_source_url",
    "url_idempotency_key",
]
