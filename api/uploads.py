"""Stream a multipart upload straight to TEMP_DIR/<job_id>/input, checking as bytes arrive.

Starlette's own form parser spools files to the system temp dir first; we write to the
configured folder only, stop reading as soon as the size limit is passed, and sniff the type
from the first bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from shared.errors import (
    BadRequestBody,
    EmptyUpload,
    MissingFile,
    UnsupportedMedia,
    UploadTooLarge,
)
from shared.media import SNIFF_BYTES, SUPPORTED_TYPES, sniff_media_type
from shared.storage import create_shared_file

FILE_FIELD = "file"
_FLUSH_BYTES = 256 << 10  # write to disk (in a thread) once this much is buffered
_MAX_FIELD_BYTES = 4096


@dataclass
class ReceivedUpload:
    path: Path
    size: int
    media_type: str
    filename: str | None
    fields: dict[str, str]


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

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.size = 0
        self.media_type: str | None = None
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self.file_seen = False
        self._fh: BinaryIO | None = None
        self._head = b""
        self._buffer = bytearray()
        self._header_field = b""
        self._header_value = b""
        self._part_name: str | None = None
        self._part_is_file = False
        self._field_bytes = bytearray()
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
        if self._part_is_file:
            if self.file_seen:
                raise BadRequestBody("send exactly one file in the field 'file'")
            self.file_seen = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._part_is_file:
            self._file_data(chunk)
        elif self._part_name is not None:
            self._field_bytes += chunk
            if len(self._field_bytes) > _MAX_FIELD_BYTES:
                raise BadRequestBody(f"form field {self._part_name!r} is too long")

    def on_part_end(self) -> None:
        if self._part_is_file:
            self._check_head(final=True)
        elif self._part_name is not None:
            self.fields[self._part_name] = self._field_bytes.decode("utf-8", "replace")

    def on_end(self) -> None:
        self.ended = True

    # -- file handling --
    def _file_data(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise UploadTooLarge(f"the file is larger than the limit of {self.max_bytes} bytes")
        if self.media_type is None:
            self._head += chunk[: SNIFF_BYTES - len(self._head)]
            self._check_head(final=False)
        self._buffer += chunk

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

    def take_buffer(self) -> bytearray:
        data, self._buffer = self._buffer, bytearray()  # handed over, not copied
        return data

    @property
    def buffered(self) -> int:
        return len(self._buffer)


def _append(path: Path, data: bytes | bytearray) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


async def receive_upload(
    stream: AsyncIterator[bytes], content_type: str | None, dest: Path, max_bytes: int
) -> ReceivedUpload:
    """Parse the multipart body from `stream`, writing the file part to `dest`."""
    sink = _UploadSink(dest, max_bytes)
    parser = MultipartParser(
        boundary_of(content_type),
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
    create_shared_file(dest)  # group-writable whatever the umask: the worker may be another uid
    try:
        async for chunk in stream:
            parser.write(chunk)
            if sink.buffered >= _FLUSH_BYTES:
                await run_in_threadpool(_append, dest, sink.take_buffer())
        parser.finalize()
    except MultipartParseError as exc:
        raise BadRequestBody(f"malformed multipart body: {exc}") from exc
    if sink.buffered:
        await run_in_threadpool(_append, dest, sink.take_buffer())
    if not sink.ended:
        # python-multipart accepts a body cut anywhere: a cut file must not become a job
        raise BadRequestBody(
            "the multipart body ended before its closing boundary: the upload was cut short"
        )
    if not sink.file_seen:
        raise MissingFile("no file: send it as multipart/form-data in the field 'file'")
    if sink.media_type is None:  # the part ended before the head check (e.g. unterminated)
        sink._check_head(final=True)
    assert sink.media_type is not None
    return ReceivedUpload(dest, sink.size, sink.media_type, sink.filename, sink.fields)
