"""format=pdf|hocr|alto through the real stack: real jobs, real engines, read back by poppler."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pikepdf
import pytest
from lxml import etree

from tests.integration.conftest import wait_terminal
from tests.integration.stack import Stack
from tests.integration.test_batch_cli import run_ocrq, write_pdf
from tests.textimages import encode, normalize_lines, render_page

pytestmark = pytest.mark.integration

RUSSIAN = [("Счёт номер 4821 от марта", 40), ("Итого к оплате тысяча рублей", 40)]


def submit(api: httpx.Client, data: bytes, name: str, **fields: str) -> str:
    response = api.post("/jobs", files={"file": (name, data)}, data=fields)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert wait_terminal(api, job_id, timeout=120)["status"] == "succeeded"
    return job_id


def pdftotext(path: Path, *args: str) -> str:
    return subprocess.run(
        ["pdftotext", *args, str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def test_a_russian_page_round_trips_its_cyrillic_through_the_pdf_text_layer(
    api: httpx.Client, stack: Stack, tmp_path: Path
) -> None:
    page = render_page(RUSSIAN, width=1300)
    job_id = submit(api, encode(page, dpi=(200, 200)), "счёт.png", language="ru")
    result = api.get(f"/jobs/{job_id}/result").json()
    assert result["pages"][0]["engine"] == "tesseract"

    response = api.get(f"/jobs/{job_id}/result", params={"format": "pdf"}, timeout=60)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(response.content)
    assert normalize_lines(pdftotext(pdf)) == normalize_lines(result["text"])
    assert "Итого" in pdftotext(pdf) and "рублей" in pdftotext(pdf)
    scale = 72 / 200
    boxes = [b["bbox"] for b in result["pages"][0]["blocks"]]
    for match in re.finditer(
        r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)"', pdftotext(pdf, "-bbox")
    ):
        x0, y0, x1, y1 = (float(v) / scale for v in match.groups())
        assert any(
            b[0] - 2 <= x0 < x1 <= b[2] + 2 and b[1] - 2 <= y0 < y1 <= b[3] + 2 for b in boxes
        ), (x0, y0, x1, y1)
    # rendered once, then served from the job's folder
    stored = stack.base / "output" / job_id / "result.pdf"
    first = stored.stat().st_mtime_ns
    again = api.get(f"/jobs/{job_id}/result", params={"format": "pdf"})
    assert again.content == response.content and stored.stat().st_mtime_ns == first


def test_hocr_and_alto_of_a_job_parse_with_their_media_types(api: httpx.Client) -> None:
    job_id = submit(api, encode(render_page([("Archive of the city council", 36)])), "a.png")

    hocr = api.get(f"/jobs/{job_id}/result", params={"format": "hocr"})
    alto = api.get(f"/jobs/{job_id}/result", params={"format": "alto"})

    assert hocr.headers["content-type"] == "text/html; charset=utf-8"
    assert alto.headers["content-type"] == "application/xml"
    words = etree.fromstring(hocr.content).iterfind(".//{*}span[@class='ocrx_word']")
    assert " ".join(w.text for w in words) == "Archive of the city council"
    strings = etree.fromstring(alto.content).iterfind(".//{*}String")
    assert " ".join(s.get("CONTENT") for s in strings) == "Archive of the city council"


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
    pages = [" ".join(t.split()) for t in pdftotext(written).split("\f") if t.strip()]
    assert pages == ["Minutes of the first meeting", "Minutes of the second meeting"]


def test_archive_formats_answer_like_the_result_for_unknown_jobs(api: httpx.Client) -> None:
    for fmt in ("pdf", "hocr", "alto"):
        response = api.get(f"/jobs/{'0' * 32}/result", params={"format": fmt})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "job_not_found"
    bad = api.get(f"/jobs/{'0' * 32}/result", params={"format": "docx"})
    assert bad.status_code == 422
