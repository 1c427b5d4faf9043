"""The streaming multipart reader on its own: it stops reading once over the limit."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.errors import (
    HTTP_STATUS,
    BadRequestBody,
    FileAndSourceUrl,
    FormTooLarge,
    RequestTimeout,
    UnsupportedMedia,
    UploadTooLarge,
)
from api.uploads import FormLimits, receive_upload
from shared.settings import Settings
from testkit.pages import encode, render_page

BOUNDARY = "xYzZy"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def _head(name: str = "file", filename: str = "a.png") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{filename}"\r\n\r\n'
    ).encode()


class CountingBody:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.consumed = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.consumed += 1
            yield chunk


def test_stops_reading_as_soon_as_the_limit_is_passed(tmp_path: Path) -> None:
    body = CountingBody([_head(), encode(render_page([("x", 20)], 100))] + [b"\0" * 65536] * 100)

    with pytest.raises(UploadTooLarge):
        asyncio.run(receive_upload(body, CONTENT_TYPE, tmp_path / "input", 200_000))

    assert body.consumed < 10  # 200 KB limit: about 4 chunks of 64 KB, not all 102


def test_rejects_unknown_type_from_first_bytes(tmp_path: Path) -> None:
    body = CountingBody([_head(), b"GIF89a" + b"\0" * 64] + [b"\0" * 65536] * 100)

    with pytest.raises(UnsupportedMedia):
        asyncio.run(receive_upload(body, CONTENT_TYPE, tmp_path / "input", 50_000_000))

    assert body.consumed <= 2


def test_writes_the_file_part_and_keeps_small_fields(tmp_path: Path) -> None:
    png = encode(render_page([("Hello", 30)], 300))
    field = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="language"\r\n\r\nen\r\n'
    body = CountingBody(
        [field.encode(), _head(filename="scan 1.png"), png, f"\r\n--{BOUNDARY}--\r\n".encode()]
    )

    upload = asyncio.run(receive_upload(body, CONTENT_TYPE, tmp_path / "input", 50_000_000))

    assert (tmp_path / "input").read_bytes() == png
    assert (upload.size, upload.media_type) == (len(png), "image/png")
    assert upload.filename == "scan 1.png"
    assert upload.fields == {"language": "en"}


@pytest.mark.parametrize(
    "tail",
    [b"", b"\r\n", f"\r\n--{BOUNDARY}".encode(), f"\r\n--{BOUNDARY}-".encode()],
    ids=["mid-file", "after-file", "boundary-only", "half-closing"],
)
def test_a_body_cut_before_its_closing_boundary_is_refused(tmp_path: Path, tail: bytes) -> None:
    """E.g. a Content-Length smaller than the body: the server reads only that much."""
    png = encode(render_page([("Hello", 30)], 300))
    body = CountingBody([_head(), png[: len(png) // 2] if not tail else png, tail])

    with pytest.raises(BadRequestBody, match="closing boundary"):
        asyncio.run(receive_upload(body, CONTENT_TYPE, tmp_path / "input", 50_000_000))


def test_the_upload_is_group_writable_whatever_the_umask(settings: Settings) -> None:
    previous = os.umask(0o077)
    try:
        with TestClient(create_app(settings)) as client:
            png = encode(render_page([("Mode 664", 20)], 200))
            job_id = client.post("/jobs", files={"file": ("a.png", png)}).json()["job_id"]
    finally:
        os.umask(previous)
    folder = settings.temp_dir / job_id
    assert stat.S_IMODE(folder.stat().st_mode) == 0o2775
    assert stat.S_IMODE((folder / "input").stat().st_mode) == 0o664


@pytest.mark.parametrize("size", [1, 7, 4096, 65536, 1 << 20])
def test_the_file_is_written_byte_for_byte_whatever_the_chunking(tmp_path: Path, size: int) -> None:
    """Chunks are kept as views until written; a boundary split across chunks (the parser's
    own buffer) and bytes that look like a boundary must come out exactly."""
    png = encode(render_page([("Chunks", 30)], 300)) + f"\r\n--{BOUNDARY}x\r\n--".encode() * 50
    raw = _head() + png + f"\r\n--{BOUNDARY}--\r\n".encode()
    body = CountingBody([raw[i : i + size] for i in range(0, len(raw), size)])

    upload = asyncio.run(receive_upload(body, CONTENT_TYPE, tmp_path / "input", 50_000_000))

    assert (tmp_path / "input").read_bytes() == png
    assert upload.size == len(png)


def test_prepare_runs_before_the_file_is_created_and_can_refuse(tmp_path: Path) -> None:
    dest = tmp_path / "job" / "input"
    body = CountingBody([_head(), b"\x89PNG\r\n\x1a\n" + b"\0" * 64])

    with pytest.raises(UnsupportedMedia, match="refused"):
        asyncio.run(
            receive_upload(
                body, CONTENT_TYPE, dest, 50_000_000, prepare=_raise(UnsupportedMedia("refused"))
            )
        )

    assert body.consumed == 0
    assert not dest.parent.exists()
    upload = asyncio.run(
        receive_upload(
            CountingBody([_head(), encode(render_page([("x", 20)], 100)), b"\r\n--xYzZy--\r\n"]),
            CONTENT_TYPE,
            dest,
            50_000_000,
            prepare=lambda: dest.parent.mkdir(),
        )
    )
    assert upload.path.is_file()


def _raise(exc: Exception):
    def prepare() -> None:
        raise exc

    return prepare


def _field(name: str, value: bytes) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value
        + b"\r\n"
    )


def _refusal(body: CountingBody, limits: FormLimits | None = None) -> Exception:
    with pytest.raises((FormTooLarge, BadRequestBody, RequestTimeout)) as caught:
        asyncio.run(
            receive_upload(
                body, CONTENT_TYPE, Path(os.devnull), 50_000_000, limits=limits or FormLimits()
            )
        )
    return caught.value


def test_more_fields_than_the_limit_are_refused_at_the_first_extra_one() -> None:
    fields = [_field(f"f{i}", b"v") for i in range(1000)]
    body = CountingBody(fields)

    error = _refusal(body, FormLimits(max_fields=5))

    assert isinstance(error, FormTooLarge) and HTTP_STATUS[error.code] == 413
    assert error.code == "form_too_large" and "MAX_FORM_FIELDS" in error.message
    assert body.consumed == 6


def test_a_field_over_the_limit_is_refused_with_its_name() -> None:
    error = _refusal(CountingBody([_field("pages", b"1" * 5000)]), FormLimits(max_field_bytes=4096))

    assert isinstance(error, FormTooLarge)
    assert "'pages'" in error.message and "MAX_FIELD_BYTES" in error.message


def test_bytes_beside_the_file_are_bounded_without_a_content_length() -> None:
    """An epilogue after the closing boundary is neither field nor file (the parser skips it):
    the budget beside the file (fields x field size + 64 KB) refuses it long before the body's
    300 MB end."""
    png = encode(render_page([("x", 20)], 100))
    body = CountingBody([_head(), png, f"\r\n--{BOUNDARY}--\r\n".encode()] + [b"e" * 65536] * 4800)

    error = _refusal(body, FormLimits(max_fields=2, max_field_bytes=4096))

    assert isinstance(error, FormTooLarge) and "besides the file" in error.message
    assert body.consumed < 6  # 72 KB allowed: the second 64 KB chunk passes it


@pytest.mark.parametrize(
    "disposition",
    ['form-data; filename="a.png"', 'form-data; name=""; filename="a.png"', None],
    ids=["filename-only", "empty-name", "no-disposition"],
)
def test_a_part_without_a_name_is_refused_saying_so(disposition: str | None) -> None:
    header = f"Content-Disposition: {disposition}\r\n" if disposition else "Content-Type: x/y\r\n"
    body = CountingBody(
        [f"--{BOUNDARY}\r\n{header}\r\n".encode()] + [b"\x89PNG\r\n\x1a\n" * 8192] * 100
    )

    error = _refusal(body)

    assert isinstance(error, BadRequestBody)
    assert "has no name" in error.message and "''" not in error.message
    assert body.consumed <= 2


def test_a_body_that_stops_coming_is_refused_after_the_body_timeout() -> None:
    class Stalled(CountingBody):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield _head()
            await asyncio.sleep(30)
            yield b"never"

    error = _refusal(Stalled([]), FormLimits(body_timeout=0.2))

    assert isinstance(error, RequestTimeout) and HTTP_STATUS[error.code] == 408
    assert error.code == "request_timeout" and "BODY_TIMEOUT_SECONDS" in error.message


def _field(name: str, value: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
    ).encode()


def test_a_source_url_instead_of_a_file_and_never_both(tmp_path: Path) -> None:
    png = encode(render_page([("x", 20)], 100))
    end = f"--{BOUNDARY}--\r\n".encode()
    url = "https://files.example.org/a.png"

    by_reference = CountingBody([_field("source_url", url), _field("pages", "1"), end])
    received = asyncio.run(receive_upload(by_reference, CONTENT_TYPE, tmp_path / "a", 200_000))
    assert (received.source_url, received.option_fields, received.size) == (url, {"pages": "1"}, 0)

    # the URL first: refused at the file part's headers, before a byte of it is read
    first = CountingBody([_field("source_url", url), _head(), png] + [b"\0" * 65536] * 100)
    with pytest.raises(FileAndSourceUrl):
        asyncio.run(receive_upload(first, CONTENT_TYPE, tmp_path / "b", 10_000_000))
    assert first.consumed <= 3
    after = CountingBody([_head(), png, b"\r\n", _field("source_url", url), end])
    with pytest.raises(FileAndSourceUrl):
        asyncio.run(receive_upload(after, CONTENT_TYPE, tmp_path / "c", 10_000_000))

    # an empty source_url (a client that sends every field) is none
    empty = CountingBody([_field("source_url", " "), _head(), png, b"\r\n", end])
    received = asyncio.run(receive_upload(empty, CONTENT_TYPE, tmp_path / "d", 10_000_000))
    assert received.source_url is None and received.size == len(png)
