"""Page pictures for the web page: rendered from the kept source, upright as the engine read
it, bounded, kept beside the result; GET /jobs/{id}/pages/{n}/image with the result's rules."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.errors import PageNotFound, PageTooLarge
from api.page_images import MAX_SIDE, page_image, render_page_image
from shared.errors import JobNotFound
from shared.jobs import Claim, JobStore, connect_redis
from shared.page_limits import MAX_IMAGE_PIXELS
from shared.results import Block, DocumentResult, PageResult
from shared.settings import Settings
from shared.storage import JobFiles
from testkit.page_pictures import many_pixels_png
from testkit.pages import encode, render_page, text_pdf
from tests.unit.api.owners import ALICE, BOB

JOB = "ab" * 16


def _page(index: int, width: int, height: int, **fields: object) -> PageResult:
    return PageResult(index=index, width=width, height=height, **fields)


def _picture(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


def _half_black(width: int, height: int) -> Image.Image:
    """White page whose left half is black: tells which way a picture was turned."""
    image = Image.new("RGB", (width, height), "white")
    image.paste((0, 0, 0), (0, 0, width // 2, height))
    return image


def test_an_image_page_is_turned_as_the_engine_turned_it(tmp_path: Path) -> None:
    source = tmp_path / "input"
    source.write_bytes(encode(_half_black(300, 200)))

    upright = _picture(render_page_image(source, "image/png", _page(1, 300, 200)))
    turned = _picture(render_page_image(source, "image/png", _page(1, 200, 300, rotation=90)))

    assert upright.size == (300, 200)
    assert upright.getpixel((10, 100))[0] < 60 and upright.getpixel((290, 100))[0] > 200
    # counter-clockwise by 90: the black left half becomes the bottom half
    assert turned.size == (200, 300)
    assert turned.getpixel((100, 290))[0] < 60 and turned.getpixel((100, 10))[0] > 200


def test_a_tiff_frame_and_a_pdf_page_are_the_pages_asked_for(tmp_path: Path) -> None:
    tiff = tmp_path / "scan.tiff"
    frames = [Image.new("RGB", (120, 80), "white"), _half_black(160, 90)]
    tiff.write_bytes(encode(frames[0], "TIFF", save_all=True, append_images=frames[1:]))
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(text_pdf([["first page"], ["second page"]]))

    second = _picture(render_page_image(tiff, "image/tiff", _page(2, 160, 90)))
    pdf_page = _picture(render_page_image(pdf, "application/pdf", _page(2, 1654, 2339, dpi=200)))

    assert second.size == (160, 90)
    # A4 at 200 dpi is 1654x2339: bounded to MAX_SIDE on the longer side, same shape
    assert max(pdf_page.size) == MAX_SIDE
    assert abs(pdf_page.width / pdf_page.height - 1654 / 2339) < 0.01
    with pytest.raises(PageNotFound):
        render_page_image(tiff, "image/tiff", _page(3, 10, 10))


def test_a_big_photo_is_bounded(tmp_path: Path) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(encode(Image.new("RGB", (4800, 3000), "grey"), "JPEG"))
    picture = _picture(render_page_image(source, "image/jpeg", _page(1, 4800, 3000)))
    assert picture.size == (MAX_SIDE, MAX_SIDE * 3000 // 4800)


def _stored_job(tmp_path: Path, pages: list[PageResult], source: bytes | None) -> JobFiles:
    files = JobFiles(tmp_path / "temp", tmp_path / "output", JOB)
    document = DocumentResult(job_id=JOB, engine="rapidocr", pages=pages, text="", markdown="")
    files.write_result("json", document.model_dump_json().encode())
    if source is not None:
        files.make_input_dir()
        files.input_path.write_bytes(source)
        files.keep_source()
    return files


def test_rendered_once_then_kept_beside_the_result(tmp_path: Path) -> None:
    files = _stored_job(tmp_path, [_page(1, 300, 200)], encode(_half_black(300, 200)))

    path = page_image(files, 1, "image/png").path
    files.source_path.unlink()  # a second request reads the kept picture, not the source

    assert path == files.page_image_path(1) and path.parent.parent == files.output_dir
    assert page_image(files, 1, "image/png").path == path
    assert _picture(path.read_bytes()).size == (300, 200)


def test_a_page_not_in_the_result_or_a_source_gone_is_said(tmp_path: Path) -> None:
    files = _stored_job(tmp_path, [_page(2, 300, 200)], None)
    with pytest.raises(PageNotFound, match=r"no page 1 in its result \(read: 2\)"):
        page_image(files, 1, "image/png")
    with pytest.raises(JobNotFound, match="no longer stored"):
        page_image(files, 2, "image/png")


# -- the route: the result's rules (owner only, 409 until succeeded) -----------------------


@pytest.fixture
def store(secured: Settings) -> JobStore:
    return JobStore(connect_redis(secured.redis_url), secured.job_ttl_seconds)


def test_the_owner_gets_the_picture_others_get_404(owner_client: TestClient, secured, store):
    png = encode(render_page([("Picture me", 30)], width=400))
    response = owner_client.post("/jobs", files={"file": ("a.png", png)}, headers=ALICE)
    job_id = response.json()["job_id"]
    url = f"/jobs/{job_id}/pages/1/image"

    early = owner_client.get(url, headers=ALICE)

    assert (early.status_code, early.json()["error"]["code"]) == (409, "result_not_ready")
    # play the worker: keep the source, write the result, succeed
    assert store.claim(job_id, "w1:1", 30) is Claim.claimed
    files = JobFiles(secured.temp_dir, secured.output_dir, job_id)
    files.keep_source()
    page = _page(1, 400, 137, blocks=[Block(text="Picture me", bbox=[40, 40, 200, 80])])
    document = DocumentResult(job_id=job_id, engine="rapidocr", pages=[page], text="", markdown="")
    files.write_result("json", document.model_dump_json().encode())
    assert store.succeed(job_id)

    ok = owner_client.get(url, headers=ALICE)
    other = owner_client.get(url, headers=BOB)
    missing = owner_client.get(f"/jobs/{job_id}/pages/2/image", headers=ALICE)
    bad = owner_client.get(f"/jobs/{job_id}/pages/0/image", headers=ALICE)

    assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg"
    assert _picture(ok.content).size == Image.open(io.BytesIO(png)).size
    assert (other.status_code, other.json()["error"]["code"]) == (404, "job_not_found")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "page_not_found")
    assert bad.status_code == 422
    assert owner_client.get(url).status_code == 401


def test_a_big_bilevel_scan_is_reduced_with_its_ink_where_it_was(tmp_path: Path) -> None:
    source = tmp_path / "scan.png"
    source.write_bytes(encode(_half_black(6001, 3000).convert("1")))

    picture = _picture(render_page_image(source, "image/png", _page(1, 6001, 3000)))

    assert picture.size == (MAX_SIDE, 1000)
    assert picture.getpixel((10, 500)) < 60 and picture.getpixel((1990, 500)) > 200


def test_a_page_past_the_workers_pixel_limit_gets_no_picture(tmp_path: Path) -> None:
    side = math.isqrt(MAX_IMAGE_PIXELS) + 1  # the worker refused it: image_too_large
    source = tmp_path / "huge.png"
    source.write_bytes(many_pixels_png(side))

    with pytest.raises(PageTooLarge, match=f"pictures are drawn of pages up to {MAX_IMAGE_PIXELS}"):
        render_page_image(source, "image/png", _page(1, side, side))
