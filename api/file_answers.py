"""Stored files as answers (results, page pictures, crops), and how OpenAPI declares them.

A binary answer (a PDF, ALTO, a picture) is declared under its own media type and under
`application/octet-stream`, which it is sent as when the request's `Accept` asks for that and
not for its own type. Client generators that read only JSON, text and octet-stream
(openapi-python-client) then give bytes, not nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response
from fastapi.responses import FileResponse, StreamingResponse

from api.archives.produce import ARCHIVE_MEDIA_TYPES
from api.storage_calls import StorageCalls
from shared.storage import StoredFile

OCTET_STREAM = "application/octet-stream"

# what GET /jobs/{id}/result sends, per format
RESULT_MEDIA_TYPES = {
    "json": "application/json",
    "markdown": "text/markdown; charset=utf-8",
    "text": "text/plain; charset=utf-8",
    **ARCHIVE_MEDIA_TYPES,
}

_BINARY = {"schema": {"type": "string", "format": "binary"}}


def is_text(media_type: str) -> bool:
    return media_type.startswith("text/")


def content_of(*media_types: str) -> dict[str, Any]:
    """OpenAPI `content` of an answer of one of `media_types` (parameters such as charset
    dropped): text as a string; anything else as binary, and then OCTET_STREAM too."""
    bare = [media.split(";")[0].strip() for media in media_types]
    content = {
        media: {"schema": {"type": "string"}} if is_text(media) else _BINARY for media in bare
    }
    if not all(is_text(media) for media in bare):
        content[OCTET_STREAM] = _BINARY
    return content


def answered_type(media_type: str, accept: str | None) -> str:
    """The type a file of `media_type` is sent as: OCTET_STREAM when `accept` names it and not
    `media_type` itself (nor text, which is always sent as itself)."""
    if accept is None or is_text(media_type):
        return media_type
    asked = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    bare = media_type.split(";")[0].strip().lower()
    return OCTET_STREAM if OCTET_STREAM in asked and bare not in asked else media_type


def result_response(
    stored: StoredFile, fmt: str, storage: StorageCalls, accept: str | None = None
) -> Response:
    """A stored result as GET /jobs/{id}/result answers it in format `fmt`."""
    return file_response(stored, answered_type(RESULT_MEDIA_TYPES[fmt], accept), storage)


def file_response(stored: StoredFile, media_type: str, storage: StorageCalls) -> Response:
    """A local file as FileResponse; an object streamed from the bucket (read on the storage
    pool), its length declared."""
    if stored.path is not None:
        return FileResponse(stored.path, media_type=media_type)
    assert stored.chunks is not None
    headers = {"Content-Length": str(stored.size)}
    body = storage.iterate(stored.chunks())
    return StreamingResponse(body, media_type=media_type, headers=headers)
