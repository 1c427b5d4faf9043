"""JobRunner with the real rapidocr engine: text read back, failures recorded, reruns safe."""

from __future__ import annotations

import json
import time

import pytest

from shared.jobs import JobStatus
from shared.storage import JobFiles
from testkit.pages import INVOICE_LINES, encode, normalize_lines, render_page, text_pdf
from worker.pipeline import JobRunner


def test_recognizes_rendered_page_and_writes_three_results(runner, submit) -> None:
    job_id = submit(encode(render_page(INVOICE_LINES)), "image/png")

    assert runner.run(job_id) is JobStatus.succeeded

    files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)
    document = json.loads(files.result_path("json").read_text())
    assert normalize_lines(document["text"]) == [text for text, _ in INVOICE_LINES]
    page = document["pages"][0]
    assert (page["index"], page["width"]) == (1, 1200)
    assert all(0.5 < b["score"] <= 1 and len(b["bbox"]) == 4 for b in page["blocks"])
    assert "Invoice number 20461" in files.result_path("markdown").read_text()
    assert files.result_path("text").read_text().strip() == document["text"]
    record = runner.store.require(job_id)
    assert (record.status, record.pages_done, record.pages_total) == ("succeeded", 1, 1)
    assert not files.input_dir.exists()  # upload removed once the result is safe


def test_broken_image_fails_the_job_with_a_code(runner, submit) -> None:
    png = encode(render_page(INVOICE_LINES))
    job_id = submit(png[: len(png) // 2], "image/png")  # truncated

    assert runner.run(job_id) is JobStatus.failed

    record = runner.store.require(job_id)
    assert record.error is not None and record.error.code == "invalid_image"


def test_decompression_bomb_fails_with_image_too_large(runner, submit) -> None:
    from PIL import Image

    bomb = encode(Image.new("1", (30000, 30000)), "PNG", optimize=True)
    assert len(bomb) < 200_000
    job_id = submit(bomb, "image/png")

    assert runner.run(job_id) is JobStatus.failed
    assert runner.store.require(job_id).error.code == "image_too_large"  # type: ignore[union-attr]


def test_rerun_of_finished_job_does_nothing(runner, submit) -> None:
    job_id = submit(encode(render_page([("Once only", 30)], 400)), "image/png")
    assert runner.run(job_id) is JobStatus.succeeded
    attempts = runner.store.require(job_id).attempts

    assert runner.run(job_id) is JobStatus.succeeded
    assert runner.store.require(job_id).attempts == attempts


def test_redelivered_running_job_runs_again_with_same_outputs(runner, submit) -> None:
    job_id = submit(encode(render_page([("Crash safe 42", 30)], 400)), "image/png")
    runner.store.claim(job_id, "dead:1", 1)  # as if a worker died mid-job: its lease lapses
    time.sleep(1.2)

    assert runner.run(job_id) is JobStatus.succeeded
    files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)
    assert files.result_path("text").read_text().strip() == "Crash safe 42"
    assert runner.store.require(job_id).attempts == 2


def test_multipage_tiff_gives_one_result_page_per_frame(runner, submit) -> None:
    first = render_page([("Page one 111", 30)], 500)
    second = render_page([("Page two 222", 30)], 500)
    tiff = encode(first, "TIFF", save_all=True, append_images=[second])
    job_id = submit(tiff, "image/tiff")

    assert runner.run(job_id) is JobStatus.succeeded

    files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)
    document = json.loads(files.result_path("json").read_text())
    assert [p["text"] for p in document["pages"]] == ["Page one 111", "Page two 222"]
    assert "<!-- page 2 -->" in document["markdown"]


def _document(runner: JobRunner, job_id: str) -> dict:
    files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)
    return json.loads(files.result_path("json").read_text())


PDF_PAGES = [
    [("Contract 7781 page one", 36), ("Signed on 2026-01-05", 28)],
    [("Annex B page two", 36), ("Clause 14.2 applies", 28)],
    [("Invoice 3390 page three", 36), ("Amount due 450.00", 28)],
]


def _pdf(pages: list[list[tuple[str, int]]]) -> bytes:
    images = [render_page(lines, width=1000) for lines in pages]
    return encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=100)


def test_multipage_pdf_gives_known_text_per_page(runner, submit) -> None:
    job_id = submit(_pdf(PDF_PAGES), "application/pdf")

    assert runner.run(job_id) is JobStatus.succeeded

    document = _document(runner, job_id)
    assert [normalize_lines(p["text"]) for p in document["pages"]] == [
        [t for t, _ in page] for page in PDF_PAGES
    ]
    first = document["pages"][0]
    assert (first["index"], first["dpi"], first["source"]) == (1, 200, "ocr")
    assert first["width"] == 2000  # 1000 px at 100 dpi is 10 in; rendered at 200 dpi
    record = runner.store.require(job_id)
    assert (record.pages_done, record.pages_total) == (3, 3)


def test_page_range_and_dpi_are_honoured(runner, submit) -> None:
    job_id = submit(_pdf(PDF_PAGES), "application/pdf", pages="1,3", dpi="150")

    assert runner.run(job_id) is JobStatus.succeeded

    document = _document(runner, job_id)
    assert [p["index"] for p in document["pages"]] == [1, 3]
    assert document["pages"][1]["text"].splitlines()[0] == "Invoice 3390 page three"
    assert {p["dpi"] for p in document["pages"]} == {150}
    assert "<!-- page 3 -->" in document["markdown"]
    assert runner.store.require(job_id).pages_total == 2


def test_page_range_beyond_the_end_fails_with_invalid_pages(runner, submit) -> None:
    job_id = submit(_pdf(PDF_PAGES[:1]), "application/pdf", pages="2-4")

    assert runner.run(job_id) is JobStatus.failed
    assert runner.store.require(job_id).error.code == "invalid_pages"  # type: ignore[union-attr]


def test_encrypted_pdf_fails_with_pdf_encrypted(runner, submit) -> None:
    import io

    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(_pdf(PDF_PAGES[:1])))
    writer = pypdf.PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    writer.encrypt("secret", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    job_id = submit(buffer.getvalue(), "application/pdf")

    assert runner.run(job_id) is JobStatus.failed
    assert runner.store.require(job_id).error.code == "pdf_encrypted"  # type: ignore[union-attr]


def test_truncated_pdf_fails_with_pdf_corrupt(runner, submit) -> None:
    data = _pdf(PDF_PAGES)
    job_id = submit(data[: len(data) // 2], "application/pdf")

    assert runner.run(job_id) is JobStatus.failed
    assert runner.store.require(job_id).error.code == "pdf_corrupt"  # type: ignore[union-attr]


def test_text_layer_use_takes_embedded_text_and_ocr_reads_it_by_default(runner, submit) -> None:
    lines = ["Born digital 2026", "Exact text (no OCR)"]
    data = text_pdf([lines, []])  # page 2 has no text layer: it is OCRed

    used = submit(data, "application/pdf", text_layer="use")
    default = submit(data, "application/pdf")
    assert runner.run(used) is runner.run(default) is JobStatus.succeeded

    first, second = _document(runner, used)["pages"]
    assert (first["source"], first["engine"]) == ("text_layer", None)
    assert normalize_lines(first["text"]) == lines
    assert first["blocks"][0]["bbox"][1] < first["blocks"][1]["bbox"][1]
    assert second["source"] == "ocr"
    ocr_first = _document(runner, default)["pages"][0]
    assert (ocr_first["source"], ocr_first["engine"]) == ("ocr", "rapidocr")
    assert normalize_lines(ocr_first["text"]) == lines


@pytest.mark.parametrize("angle", [90, 180, 270])
def test_rotated_scans_are_turned_upright(runner, submit, angle: int) -> None:
    page = render_page(INVOICE_LINES)
    job_id = submit(encode(page.rotate(angle, expand=True)), "image/png")

    assert runner.run(job_id) is JobStatus.succeeded

    result = _document(runner, job_id)["pages"][0]
    assert normalize_lines(result["text"]) == [t for t, _ in INVOICE_LINES]  # in reading order
    assert result["rotation"] == (360 - angle) % 360
    assert (result["width"], result["height"]) == page.size  # the upright page


def test_cyrillic_request_never_goes_to_a_latin_only_engine(runner, submit) -> None:
    job_id = submit(encode(render_page([("Привет мир 2026", 36)], 600)), "image/png", language="ru")

    assert runner.run(job_id) is JobStatus.failed
    error = runner.store.require(job_id).error
    assert error is not None and error.code == "language_unsupported"


def _error(runner: JobRunner, job_id: str) -> tuple[str, str]:
    error = runner.store.require(job_id).error
    assert error is not None
    return error.code, error.message


def test_an_unreadable_image_fails_without_naming_the_servers_folders(runner, submit) -> None:
    job_id = submit(b"II*\x00" + b"\xff" * 20, "image/tiff")  # Pillow: "cannot identify '/…'"

    assert runner.run(job_id) is JobStatus.failed

    code, message = _error(runner, job_id)
    assert code == "invalid_image"
    assert str(runner.settings.temp_dir) not in message and job_id not in message


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_images_over_the_pixel_limit_are_refused_below_pillows_own_bomb_limit(
    runner, submit
) -> None:
    """Pillow only warns between MAX_IMAGE_PIXELS and twice that, and would decode it."""
    from PIL import Image

    big = encode(Image.new("1", (12_000, 11_000), 1), "PNG")  # 132 MP
    job_id = submit(big, "image/png")

    assert runner.run(job_id) is JobStatus.failed
    assert _error(runner, job_id)[0] == "image_too_large"


def test_a_huge_pdf_page_fails_before_it_is_rendered(runner, submit) -> None:
    from testkit.pages import bare_pdf

    job_id = submit(bare_pdf(1, (14_400, 14_400)), "application/pdf")  # 200 x 200 inches

    assert runner.run(job_id) is JobStatus.failed

    code, message = _error(runner, job_id)
    assert code == "image_too_large" and "40000x40000" in message
    # the limit is on pixels, not points: a big page at a low dpi is fine
    small = submit(bare_pdf(1, (5_000, 5_000)), "application/pdf", dpi="72")
    assert runner.run(small) is JobStatus.succeeded


def test_a_pdf_claiming_more_pages_than_it_has_fails_those_pages_alone(runner, submit) -> None:
    from testkit.pages import bare_pdf

    job_id = submit(bare_pdf(count=3), "application/pdf")

    assert runner.run(job_id) is JobStatus.succeeded
    record = runner.store.require(job_id)
    assert (record.pages_done, record.pages_failed) == (3, 2)
    files = JobFiles(runner.settings.temp_dir, runner.settings.output_dir, job_id)
    pages = json.loads(files.result_path("json").read_text())["pages"]
    assert [(p["index"], p["error"]) for p in pages] == [
        (1, None),
        (2, {"code": "pdf_corrupt", "message": "page 2 cannot be rendered: Failed to load page."}),
        (3, {"code": "pdf_corrupt", "message": "page 3 cannot be rendered: Failed to load page."}),
    ]
    assert all(p["blocks"] == [] for p in pages)


def test_on_page_error_fail_fails_the_job_with_the_first_failed_page(runner, submit) -> None:
    from testkit.pages import bare_pdf

    job_id = submit(bare_pdf(count=3), "application/pdf", on_page_error="fail")

    assert runner.run(job_id) is JobStatus.failed
    assert _error(runner, job_id) == (
        "pdf_corrupt",
        "page 2 cannot be rendered: Failed to load page.",
    )


def test_a_job_whose_every_page_failed_fails_with_the_first_pages_code(runner, submit) -> None:
    from testkit.pages import bare_pdf

    job_id = submit(bare_pdf(1, (40_000, 40_000)), "application/pdf")

    assert runner.run(job_id) is JobStatus.failed
    assert _error(runner, job_id)[0] == "image_too_large"
    assert runner.store.require(job_id).pages_failed == 1
