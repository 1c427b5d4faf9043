"""`?delivery=url`: a stored file answered as a pre-signed URL of the bucket (307 to it), so
its bytes go from the bucket to the client and never through the API.

Every check of a stored file's route runs first (the job's owner, its status, the file there or
rendered now); only then is a URL signed, for RESULT_URL_EXPIRY_SECONDS, with the file's
Content-Type and a Content-Disposition naming it. On local storage (STORAGE_URL empty) there
is no bucket to send a client to: the route streams the file as `delivery=stream` does, so a
link written for one deployment works on every other (docs/results.md says why).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Query, Response
from fastapi.responses import JSONResponse

from api.schemas import FileLink
from api.storage_calls import StorageCalls
from shared.settings import Settings
from shared.storage import RESULT_FILES, StoredFile, storage_of


class Delivery(StrEnum):
    """Where a stored file's bytes come from (one schema in OpenAPI: a generated client's
    `Delivery.URL`)."""

    stream = "stream"
    url = "url"


_DELIVERY_DOC = (
    "`stream` (default): the file in this answer. `url`: with a bucket (STORAGE_URL=s3://...), "
    "**307** to a pre-signed URL of the bucket (`Location`; the body says it as JSON with its "
    "expiry), valid RESULT_URL_EXPIRY_SECONDS: a browser or `curl -L` follows it, a client "
    "fetches it without its API key. On local storage `url` streams the file as `stream` does "
    "(200): the status tells which was answered."
)
DeliveryQuery = Annotated[Delivery, Query(description=_DELIVERY_DOC)]

# OpenAPI of the 307 answer of each route that takes `delivery`
LINK_RESPONSES: dict[int | str, dict[str, Any]] = {
    307: {
        "model": FileLink,
        "description": "`delivery=url` with a bucket: the file is at `Location`, a pre-signed "
        "URL of the bucket (no API key: it carries its own signature)",
        "headers": {
            "Location": {"description": "The pre-signed URL", "schema": {"type": "string"}}
        },
    }
}


class FileLinks:
    """Signs URLs of stored files for clients (API side), on the storage pool."""

    def __init__(self, settings: Settings, storage: StorageCalls) -> None:
        self.settings = settings
        self.storage = storage

    async def link(self, stored: StoredFile, media_type: str, filename: str) -> FileLink | None:
        """A pre-signed URL of `stored` (its route's checks passed), answered as
        `media_type` and `filename`; None where files have no URLs of their own (local)."""
        if stored.key is None:
            return None
        seconds = self.settings.result_url_expiry_seconds
        disposition = f'inline; filename="{filename}"'
        store = storage_of(self.settings)
        url = await self.storage.run(store.signed_url, stored.key, seconds, media_type, disposition)
        if url is None:
            return None
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
        return FileLink(url=url, expires_at=expires, media_type=media_type, size=stored.size)


def link_response(link: FileLink) -> JSONResponse:
    """307 to the bucket, the link in the body too (a client that does not follow reads it)."""
    return JSONResponse(
        link.model_dump(mode="json"),
        status_code=307,
        headers={"Location": link.url, "Cache-Control": "no-store"},
    )


async def delivered(
    links: FileLinks,
    stored: StoredFile,
    delivery: Delivery,
    media_type: str,
    filename: str,
    streamed: Callable[[], Response],
) -> Response:
    """A stored file's answer: 307 to its pre-signed URL when `delivery=url` and it has one,
    else `streamed()` (the file in the answer)."""
    if delivery is Delivery.url and (link := await links.link(stored, media_type, filename)):
        return link_response(link)
    return streamed()


def result_filename(job_id: str, fmt: str) -> str:
    """The name a downloaded result is saved as: `<job id>.json`, `.md`, ..., `.alto.xml`."""
    return job_id + RESULT_FILES[fmt].removeprefix("result")
