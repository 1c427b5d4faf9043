from __future__ import annotations

import pytest

from shared.media import sniff_media_type
from testkit.pages import encode, render_page


@pytest.mark.parametrize(
    ("fmt", "media"),
    [
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("TIFF", "image/tiff"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("PDF", "application/pdf"),
    ],
)
def test_sniffs_real_files_by_content(fmt: str, media: str) -> None:
    data = encode(render_page([("x", 20)], width=64), fmt)
    assert sniff_media_type(data[:16]) == media


@pytest.mark.parametrize("head", [b"", b"hello world", b"PK\x03\x04", b"GIF89a", b"<svg "])
def test_unsupported_bytes_are_none(head: bytes) -> None:
    assert sniff_media_type(head) is None
