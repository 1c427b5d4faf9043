"""Counting a document's pages without rendering it (the API's cheap check before queueing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.page_count import count_pages
from testkit.pages import bare_pdf, encode, render_page


def write(tmp_path: Path, data: bytes, name: str = "doc") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("pages", [1, 3])
def test_pdf_pages_are_counted(tmp_path: Path, pages: int) -> None:
    assert count_pages(write(tmp_path, bare_pdf(pages)), "application/pdf") == pages


@pytest.mark.parametrize("pages", [1, 4])
def test_tiff_frames_are_counted(tmp_path: Path, pages: int) -> None:
    frames = [render_page([(f"Page {n}", 20)], 200) for n in range(pages)]
    tiff = encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    assert count_pages(write(tmp_path, tiff), "image/tiff") == pages


def test_big_endian_tiff_is_counted(tmp_path: Path) -> None:
    # Pillow writes little-endian TIFFs; a hand-made big-endian one: header, two 1-entry IFDs.
    ifd_two = b"\x00\x01" + bytes(12) + b"\x00\x00\x00\x00"
    ifd_one = b"\x00\x01" + bytes(12) + (8 + 18).to_bytes(4, "big")
    tiff = b"MM\x00\x2a" + (8).to_bytes(4, "big") + ifd_one + ifd_two
    assert count_pages(write(tmp_path, tiff), "image/tiff") == 2


def test_other_images_are_one_page(tmp_path: Path) -> None:
    png = encode(render_page([("One", 20)], 200), "PNG")
    assert count_pages(write(tmp_path, png), "image/png") == 1


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (b"%PDF-1.7\nnot really a pdf", "application/pdf"),
        (b"II*\x00", "image/tiff"),  # header cut short
        (b"II*\x00\x08\x00\x00\x00\x01", "image/tiff"),  # IFD cut short
        (b"II*\x00\x08\x00\x00\x00\x00\x00\x08\x00\x00\x00", "image/tiff"),  # IFD points to itself
    ],
)
def test_what_cannot_be_counted_is_left_to_the_worker(
    tmp_path: Path, data: bytes, media_type: str
) -> None:
    assert count_pages(write(tmp_path, data), media_type) is None
