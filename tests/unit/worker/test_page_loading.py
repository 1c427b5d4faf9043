"""Image pages as worker/pages.py loads them: a fax's pixels, twice as tall as wide, squared by
its x and y dpi (Pillow only: fast tier)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from testkit.pages import render_page
from worker.pages import MAX_PIXEL_ASPECT, Document, Page, square_pixels


def load(path: Path) -> Page:
    document = Document(path, "image/tiff", dpi=200)
    try:
        return next(document.pages([1]))
    finally:
        document.close()


def test_a_fax_tiff_at_204_by_98_dpi_is_stretched_to_square_pixels(tmp_path: Path) -> None:
    upright = render_page([("Pages transmitted: 3", 40)], width=800).convert("1")
    fax = upright.resize((upright.width, upright.height * 98 // 204))  # sent at 98 dpi down
    fax.save(tmp_path / "fax.tif", compression="group4", dpi=(204, 98))

    page = load(tmp_path / "fax.tif")

    assert page.image is not None and page.dpi == 204
    assert (page.width, page.height) == (800, round(fax.height * 204 / 98))
    assert abs(page.height - upright.height) <= 3  # back to its true height
    assert page.image.info["dpi"] == (204, 204) and page.image.mode == "RGB"
    assert set(page.image.convert("L").get_flattened_data()) <= {0, 255}  # still black and white


def test_square_or_unknown_resolutions_leave_the_image_as_it_came() -> None:
    image = Image.new("RGB", (300, 200), "white")

    assert square_pixels(image, (300, 300)) == (image, 300)
    assert square_pixels(image, (300.0, 299.0)) == (image, 300)  # close enough
    assert square_pixels(image, None) == (image, None)
    assert square_pixels(image, (0, 0)) == (image, None)


def test_a_resolution_no_scanner_makes_is_not_followed() -> None:
    image = Image.new("RGB", (300, 200), "white")

    assert square_pixels(image, (300, 300 / (MAX_PIXEL_ASPECT + 1))) == (image, 300)
