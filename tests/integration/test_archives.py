"""format=pdf|hocr|alto through the real stack: real jobs, real engines, read back by poppler
(pdftotext, pdfinfo), lxml and the ALTO schema (tests/schemas/)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pikepdf
import pytest
from lxml import etree

from testkit.pages import encode, normalize_lines, render_page
from testkit.poppler import page_rotation, page_texts, pdftotext, words_outside
from testkit.stack import Stack, wait_terminal
from tests.integration.test_batch_cli import run_ocrq, write_pdf
from tests.schemas import alto_schema

pytestmark = pytest.mark.integration

RUSSIAN = [("Счёт номер 4821 от марта", 40), ("Итого к оплате тысяча рублей", 40)]
LETTER = [("Archive of the city council", 40), ("Minutes of the meeting in May", 40)]


def submit(api: httpx.Client, data: bytes, name: str, **fields: str) -> str:
    response = api.post("/jobs", files={"file": (name, data)}, data=fields)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert wait_terminal(api, job_id, timeout=180)["status"] == "succeeded"
    return job_id


def hocr_spec_findings(hocr: bytes, tmp_path: Path) -> list[str]:
    """What the `hocr-spec` command says of the file: one `LEVEL message` a line, but its DEBUG
    notes (it knows no ocr-system but tesseract 3.03 and OCRopus)."""
    path = tmp_path / "result.hocr"
    path.write_bytes(hocr)
    command = Path(sys.executable).with_name("hocr-spec")
    out = subprocess.run([command, path], capture_output=True, text=True, timeout=60).stdout
    findings = [re.sub(r"^\[(\w+)\] \S+ ", r"\1 ", line) for line in out.splitlines()]
    return [line for line in findings if not line.startswith("DEBUG ")]


def archive(api: httpx.Client, job_id: str, fmt: str, tmp_path: Path) -> Path:
    response = api.get(f"/jobs/{job_id}/result", params={"format": fmt}, timeout=120)
    assert response.status_code == 200, response.text
    path = tmp_path / f"{job_id}.{fmt}"
    path.write_bytes(response.content)
    return path


def source_boxes(result: dict) -> list[list[tuple[str, list[float]]]]:
    return [[(b["text"], b["bbox"]) for b in page["blocks"]] for page in result["pages"]]


def test_a_png_job_answers_a_searchable_pdf_hocr_and_valid_alto(
    api: httpx.Client, stack: Stack, tmp_path: Path
) -> None:
    job_id = submit(api, encode(render_page(LETTER), dpi=(200, 200)), "letter.png")
    result = api.get(f"/jobs/{job_id}/result").json()
    assert result["engine"] == "rapidocr"

    pdf = archive(api, job_id, "pdf", tmp_path)
    hocr = api.get(f"/jobs/{job_id}/result", params={"format": "hocr"})
    alto = api.get(f"/jobs/{job_id}/result", params={"format": "alto"})

    assert normalize_lines(pdftotext(pdf)) == [t for t, _ in LETTER]
    count, outside = words_outside(pdf, source_boxes(result), 72 / 200, slack=1)
    assert count == sum(len(t.split()) for t, _ in LETTER) and not outside, outside
    assert hocr.headers["content-type"] == "text/vnd.hocr+html; charset=utf-8"
    words = etree.fromstring(hocr.content).iterfind(".//{*}span[@class='ocrx_word']")
    assert " ".join(w.text for w in words) == " ".join(t for t, _ in LETTER)
    assert hocr_spec_findings(hocr.content, tmp_path) == ["OK Document is valid"]
    assert b'<meta name="ocr-langs" content="en"/>' in hocr.content  # what rapidocr read
    assert alto.headers["content-type"] == "application/xml"
    document = etree.fromstring(alto.content)
    alto_schema().assertValid(document)
    strings = document.iterfind(".//{*}String")
    assert " ".join(s.get("CONTENT") for s in strings) == " ".join(t for t, _ in LETTER)
    # rendered once, then served from the job's folder
    stored = stack.base / "output" / job_id / "result.pdf"
    first = stored.stat().st_mtime_ns
    again = api.get(f"/jobs/{job_id}/result", params={"format": "pdf"})
    assert again.content == pdf.read_bytes() and stored.stat().st_mtime_ns == first


def test_every_archive_carries_the_words_of_the_text_result_angle_brackets_too(
    api: httpx.Client, tmp_path: Path
) -> None:
    # "< 5 and y >" looks like a tag: the archives once dropped it ("if x 3 then stop")
    lines = [("if x < 5 and y > 3 then stop", 44), ("a <b> & c", 44)]
    job_id = submit(api, encode(render_page(lines), dpi=(200, 200)), "rule.png")
    text = api.get(f"/jobs/{job_id}/result", params={"format": "text"}).text
    assert "< 5 and y >" in text, text  # the engine read it whole
    words = text.split()

    pdf = archive(api, job_id, "pdf", tmp_path)
    hocr = etree.fromstring(api.get(f"/jobs/{job_id}/result", params={"format": "hocr"}).content)
    alto = etree.fromstring(api.get(f"/jobs/{job_id}/result", params={"format": "alto"}).content)

    assert pdftotext(pdf).split() == words
    assert [w.text for w in hocr.iterfind(".//{*}span[@class='ocrx_word']")] == words
    assert [s.get("CONTENT") for s in alto.iterfind(".//{*}String")] == words


def test_a_russian_page_round_trips_its_cyrillic_through_the_pdf_text_layer(
    api: httpx.Client, tmp_path: Path
) -> None:
    page = render_page(RUSSIAN, width=1300)
    job_id = submit(api, encode(page, dpi=(200, 200)), "счёт.png", language="ru")
    result = api.get(f"/jobs/{job_id}/result").json()
    assert result["pages"][0]["engine"] == "tesseract"

    pdf = archive(api, job_id, "pdf", tmp_path)

    assert normalize_lines(pdftotext(pdf)) == normalize_lines(result["text"])
    assert "Итого" in pdftotext(pdf) and "рублей" in pdftotext(pdf)
    count, outside = words_outside(pdf, source_boxes(result), 72 / 200, slack=1)
    assert count and not outside, outside


def test_a_rotated_scan_comes_out_upright_with_its_words_in_place(
    api: httpx.Client, tmp_path: Path
) -> None:
    upright = render_page(LETTER)
    job_id = submit(api, encode(upright.rotate(90, expand=True), dpi=(200, 200)), "turned.png")
    result = api.get(f"/jobs/{job_id}/result").json()
    assert result["pages"][0]["rotation"] == 270  # turned back a quarter clockwise to read it

    pdf = archive(api, job_id, "pdf", tmp_path)

    assert page_rotation(pdf) == 90  # the scan's pixels kept; viewers turn it upright
    with pikepdf.open(pdf) as doc:  # the page as shown is the upright page
        box = doc.pages[0].mediabox
        shown = (float(box[3]) - float(box[1]), float(box[2]) - float(box[0]))
    assert shown == pytest.approx((upright.width * 72 / 200, upright.height * 72 / 200), abs=0.01)
    assert normalize_lines(pdftotext(pdf)) == [t for t, _ in LETTER]
    count, outside = words_outside(pdf, source_boxes(result), 72 / 200, slack=1)
    assert count and not outside, outside


def test_a_multi_page_pdf_keeps_its_pages_and_the_cli_writes_the_file(
    stack: Stack, tmp_path: Path
) -> None:
    source = tmp_path / "in" / "minutes.pdf"
    write_pdf(source, [["Minutes of the first meeting"], ["Minutes of the second meeting"]])
    out = tmp_path / "out"

    run = run_ocrq(stack.url, "submit", str(source), "--out", str(out), "--format", "pdf")

    assert run.returncode == 0, run.stderr
    written = out / "minutes.pdf.pdf"
    with pikepdf.open(written) as pdf, pikepdf.open(source) as original:
        assert len(pdf.pages) == 2
        assert [p.mediabox for p in pdf.pages] == [p.mediabox for p in original.pages]
    assert page_texts(written) == ["Minutes of the first meeting", "Minutes of the second meeting"]


def test_archive_formats_answer_like_the_result_when_there_is_none(api: httpx.Client) -> None:
    broken = api.post("/jobs", files={"file": ("cut.png", encode(render_page(LETTER))[:300])})
    job_id = broken.json()["job_id"]
    assert wait_terminal(api, job_id)["status"] == "failed"
    for job in (job_id, "0" * 32):
        expected = api.get(f"/jobs/{job}/result")
        assert expected.status_code in (404, 409)
        for fmt in ("pdf", "hocr", "alto"):
            response = api.get(f"/jobs/{job}/result", params={"format": fmt})
            assert response.status_code == expected.status_code
            assert response.json()["error"]["code"] == expected.json()["error"]["code"]
    bad = api.get(f"/jobs/{'0' * 32}/result", params={"format": "docx"})
    assert bad.status_code == 422
