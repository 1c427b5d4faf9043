"""Stream a multipart upload straight to TEMP_DIR/<job_id>/input, checking as bytes arrive.

Starlette's own form parser spools files to the system temp dir first; we write to the
configured folder only, stop reading as soon as the size limit is passed, and sniff the type
from the first bytes. Beside the file a body holds only a few small fields (FormLimits), and
its pieces must keep coming: a flood of fields, an endless epilogue or a stalled body is
refused as soon as it is seen, with or without a Content-Length. A full disk is 507.

The file part is never copied in Python: the parser's slices of the body chunks the server
hands over are kept as views and written with one thread hop per `_FLUSH_BYTES` (the file is
opened once, in the first hop, and closed in the last). Copies and hops were most of the API's
own CPU per upload, and the copies most of its memory per upload in flight.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from api.errors import (
    BadRequestBody,
    EmptyUpload,
    FileAndSourceUrl,
    FormTooLarge,
    InsufficientStorage,
    MissingFile,
    RequestTimeout,
    UnsupportedMedia,
    UploadTooLarge,
)
from shared.media import SNIFF_BYTES, SUPPORTED_TYPES, sniff_media_type
from shared.settings import Settings
from shared.storage import is_disk_full, open_shared_file

FILE_FIELD = "file"
SOURCE_FIELD = "source_url"  # the document by reference instead of a file (docs/sources.md)
_FLUSH_BYTES = 128 << 10  # write to disk (in a thread) once this much is held
_IOV_MAX = 1024  # parts per writev (Linux's limit)
T = TypeVar("T")
# boundaries, part headers and a preamble around the file and the fields
FORM_FRAMING_BYTES = 64 * 1024


@dataclass(frozen=True)
class FormLimits:
    """What a body may hold besides the file (MAX_FORM_FIELDS, MAX_FIELD_BYTES) and the
    longest wait for its next piece (BODY_TIMEOUT_SECONDS; None: no limit)."""

    max_fields: int = 16
    max_field_bytes: int = 4096
    body_timeout: float | None = None

    @classmethod
    def of(cls, settings: Settings) -> FormLimits:
        return cls(
            settings.max_form_fields, settings.max_field_bytes, settings.body_timeout_seconds
        )

    @property
    def max_form_bytes(self) -> int:
        """Bytes outside the file part's data: fields, part headers, boundaries, preamble."""
        return self.max_fields * self.max_field_bytes + FORM_FRAMING_BYTES


@dataclass
class ReceivedUpload:
    """The file part written to `path`, and the form's fields; or, for a submission by
    reference, no file (`source_url`: the worker fetches the document)."""

    path: Path
    size: int
    media_type: str
    filename: str | None
    fields: dict[str, str]

    @property
    def source_url(self) -> str | None:
        """The field's URL; an empty field is none (a client that sends every field)."""
        return self.fields.get(SOURCE_FIELD, "").strip() or None

    @property
    def option_fields(self) -> dict[str, str]:
        """The fields that are job options (all but source_url)."""
        return {k: v for k, v in self.fields.items() if k != SOURCE_FIELD}


def _both() -> FileAndSourceUrl:
    return FileAndSourceUrl("send either a file (field 'file') or a source_url, not both")


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary from a Content-Type header, or a 4xx saying what is wrong."""
    if not content_type:
        raise BadRequestBody("send the file as multipart/form-data in the field 'file'")
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise BadRequestBody(
            f"expected multipart/form-data with a boundary, got {content_type!r}; "
            "send the file in the form field 'file'"
        )
    return options[b"boundary"]


class _UploadSink:
    """Multipart callbacks: file part bytes go to disk, small text fields are kept."""

    def __init__(self, path: Path, max_bytes: int, limits: FormLimits) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.limits = limits
        self.size = 0
        self.media_type: str | None = None
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self.file_seen = False
        self._head = b""
        self._pending: list[bytes | memoryview] = []  # file bytes not yet written
        self._pending_bytes = 0
        self._header_field = b""
        self._header_value = b""
        self._part_name: str | None = None
        self._part_is_file = False
        self._field_bytes = bytearray()
        self._field_count = 0
        self.ended = False  # the closing boundary arrived: the body is complete

    # -- python-multipart callbacks (run synchronously inside parser.write) --
    def on_part_begin(self) -> None:
        self._part_name, self._part_is_file = None, False
        self._field_bytes.clear()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            _, options = parse_options_header(self._header_value)
            self._part_name = options.get(b"name", b"").decode("latin-1")
            if b"filename" in options or self._part_name == FILE_FIELD:
                self._part_is_file = self._part_name == FILE_FIELD
                if self._part_is_file:
                    raw = options.get(b"filename", b"")
                    # metadata only: never used in a path
                    self.filename = raw.decode("utf-8", "replace").replace("\x00", "")[:255]
        self._header_field, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        if not self._part_name:
            raise BadRequestBody(
                "a form part has no name: each part needs Content-Disposition: form-data; "
                'name="..." (the file goes in name="file")'
            )
        if self._part_is_file:
            if self.file_seen:
                raise BadRequestBody("send exactly one file in the field 'file'")
            if self.fields.get(SOURCE_FIELD, "").strip():
                raise _both()  # before a byte of the file is read
            self.file_seen = True
            return
        self._field_count += 1
        if self._field_count > self.limits.max_fields:
            raise FormTooLarge(
                f"more than {self.limits.max_fields} form fields besides the file (MAX_FORM_FIELDS)"
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_is_file:
            self._file_data(data, start, end)
        else:
            self._field_bytes += data[start:end]
            if len(self._field_bytes) > self.limits.max_field_bytes:
                raise FormTooLarge(
                    f"form field {self._part_name!r} is longer than "
                    f"{self.limits.max_field_bytes} bytes (MAX_FIELD_BYTES)"
                )

    def on_part_end(self) -> None:
        if self._part_is_file:
            self._check_head(final=True)
        elif self._part_name:
            value = self._field_bytes.decode("utf-8", "replace")
            if self._part_name == SOURCE_FIELD and self.file_seen and value.strip():
                raise _both()
            self.fields[self._part_name] = value

    def on_end(self) -> None:
        self.ended = True

    # -- file handling --
    def _file_data(self, data: bytes, start: int, end: int) -> None:
        self.size += end - start
        if self.size > self.max_bytes:
            raise UploadTooLarge(f"the file is larger than the limit of {self.max_bytes} bytes")
        if self.media_type is None:
            self._head += data[start : min(end, start + SNIFF_BYTES - len(self._head))]
            self._check_head(final=False)
        if end <= start:
            return
        if isinstance(data, bytes):  # immutable: a view is safe to keep until the write
            part: bytes | memoryview = (
                data if (start, end) == (0, len(data)) else (memoryview(data)[start:end])
            )
        else:  # the parser's own reusable buffer (a boundary split across chunks): copy
            part = bytes(data[start:end])
        self._pending.append(part)
        self._pending_bytes += end - start

    def _check_head(self, final: bool) -> None:
        if self.media_type is not None:
            return
        if len(self._head) < SNIFF_BYTES and not final:
            return
        if self.size == 0:
            raise EmptyUpload("the uploaded file is empty")
        media = sniff_media_type(self._head)
        if media is None:
            raise UnsupportedMedia(
                "the file's bytes match no supported type "
                f"({', '.join(SUPPORTED_TYPES)}); the file name is not used to decide"
            )
        self.media_type = media

    def take_pending(self) -> list[bytes | memoryview]:
        parts, self._pending, self._pending_bytes = self._pending, [], 0
        return parts

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes


def _write_all(fd: int, parts: list[bytes | memoryview]) -> None:
    """One writev per IOV_MAX parts (a write call per part costs more than the copy)."""
    for first in range(0, len(parts), _IOV_MAX):
        batch = parts[first : first + _IOV_MAX]
        written = os.writev(fd, batch)
        for part in batch:  # a short write (rare on a regular file): the rest part by part
            view = memoryview(part)[written:]
            written = max(0, written - len(part))
            while view:
                view = view[os.write(fd, view) :]


def _open(
    dest: Path, content_type: str | None, prepare: Callable[[], object] | None
) -> tuple[int, bytes]:
    """`prepare`, then the boundary (a bad Content-Type creates no file), then the file."""
    if prepare is not None:
        prepare()
    boundary = boundary_of(content_type)
    # group-writable whatever the umask: the worker may run as another user
    return open_shared_file(dest), boundary


def _write_and_close(fd: int, parts: list[bytes | memoryview]) -> None:
    try:
        _write_all(fd, parts)
    finally:
        os.close(fd)


async def _on_disk(func: Callable[..., T], *args: object) -> T:
    """`func` in a thread; a full disk (ENOSPC, EDQUOT) becomes 507 insufficient_storage."""
    try:
        return await run_in_threadpool(func, *args)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise InsufficientStorage(
            "no room left to store the upload (the server's upload folder is full); retry later"
        ) from exc


async def _chunks(stream: AsyncIterator[bytes], timeout: float | None) -> AsyncIterator[bytes]:
    """The body's chunks; 408 request_timeout when the next one takes over `timeout` s."""
    chunks = aiter(stream)
    while True:
        try:
            async with asyncio.timeout(timeout):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout(
                f"no part of the body arrived for {timeout:g} s (BODY_TIMEOUT_SECONDS)"
            ) from None
        yield chunk


async def receive_upload(
    stream: AsyncIterator[bytes],
    content_type: str | None,
    dest: Path,
    max_bytes: int,
    prepare: Callable[[], object] | None = None,
    limits: FormLimits = FormLimits(),
) -> ReceivedUpload:
    """Parse the multipart body from `stream`, writing the file part to `dest`.

    `prepare` (e.g. make the job's folder) runs in the same thread hop that creates `dest`,
    before the Content-Type is checked. Besides the file's `max_bytes`, the body may hold
    `limits.max_form_bytes` (fields, part headers, boundaries): with or without a
    Content-Length, a longer one is refused as soon as it is seen.
    """
    fd, boundary = await _on_disk(_open, dest, content_type, prepare)
    open_fd = True
    sink = _UploadSink(dest, max_bytes, limits)
    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": sink.on_part_begin,
            "on_part_data": sink.on_part_data,
            "on_part_end": sink.on_part_end,
            "on_header_field": sink.on_header_field,
            "on_header_value": sink.on_header_value,
            "on_header_end": sink.on_header_end,
            "on_headers_finished": sink.on_headers_finished,
            "on_end": sink.on_end,
        },
    )
    received = 0
    try:
        async for chunk in _chunks(stream, limits.body_timeout):
            parser.write(chunk)
            received += len(chunk)
            if received - sink.size > limits.max_form_bytes:
                raise FormTooLarge(
                    f"the body holds more than {limits.max_form_bytes} bytes besides the file "
                    "(form fields, part headers); send the file in the field 'file'"
                )
            if sink.pending_bytes >= _FLUSH_BYTES:
                await _on_disk(_write_all, fd, sink.take_pending())
        parser.finalize()
        open_fd = False  # closed by the last write, whatever happens there
        await _on_disk(_write_and_close, fd, sink.take_pending())
    except MultipartParseError as exc:
        raise BadRequestBody(f"malformed multipart body: {exc}") from exc
    finally:
        if open_fd:  # refused or failed mid-body: the caller removes the file
            os.close(fd)
    if not sink.ended:
        # python-multipart accepts a body cut anywhere: a cut file must not become a job
        raise BadRequestBody(
            "the multipart body ended before its closing boundary: the upload was cut short"
        )
    if not sink.file_seen:
        if sink.fields.get(SOURCE_FIELD, "").strip():
            # by reference: nothing was written; the caller removes the empty spool
            return ReceivedUpload(dest, 0, "", None, sink.fields)
        raise MissingFile(
            "no file: send it as multipart/form-data in the field 'file', or the document's "
            "URL in the field 'source_url'"
        )
    if sink.media_type is None:  # the part ended before the head check (e.g. unterminated)
        sink._check_head(final=True)
    assert sink.media_type is not None
    return ReceivedUpload(dest, sink.size, sink.media_type, sink.filename, sink.fields)
