"""Recognize supported file types from their first bytes, never from the client's name."""

from __future__ import annotations

SNIFF_BYTES = 16

_SIGNATURES: list[tuple[bytes, int, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
    (b"BM", 0, "image/bmp"),
    (b"%PDF-", 0, "application/pdf"),
]

SUPPORTED_TYPES = sorted({media for _, _, media in _SIGNATURES} | {"image/webp"})


def sniff_media_type(head: bytes) -> str | None:
    """The media type whose signature `head` starts with, or None if unsupported."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for signature, offset, media in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return media
    return None
