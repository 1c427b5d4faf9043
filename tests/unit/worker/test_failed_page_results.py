"""A result with a failed page: the JSON keeps its number and error, markdown and text say so in
words in its place (pages still a form feed apart), and what is written reads back."""

from __future__ import annotations

from pathlib import Path

from shared.error_codes import ErrorCode
from shared.results import Block, DocumentResult, PageError, PageResult
from shared.storage import JobFiles
from worker.results import (
    PAGE_SEPARATOR_TEXT,
    build_document,
    write_results,
    write_results_streamed,
)


def _read(index: int, text: str) -> PageResult:
    block = Block(text=text, bbox=[10, 10, 200, 40], score=0.99)
    return PageResult(index=index, width=800, height=600, blocks=[block], markdown=text, text=text)


def _failed(index: int, code: ErrorCode, message: str) -> PageResult:
    return PageResult(index=index, width=0, height=0, error=PageError(code=code, message=message))


PAGES = [
    _read(1, "First page"),
    _failed(2, ErrorCode.image_too_large, "image has more than 120000000 pixels"),
    _read(3, "Third page"),
]


def test_text_keeps_one_part_per_page_and_names_the_failed_one() -> None:
    document = build_document("a" * 32, "rapidocr", PAGES)

    parts = document.text.split(PAGE_SEPARATOR_TEXT)
    assert parts == ["First page", "[page 2 could not be read: image_too_large]", "Third page"]


def test_markdown_marks_the_failed_page_under_its_marker() -> None:
    document = build_document("a" * 32, "rapidocr", PAGES)

    assert document.markdown == (
        "<!-- page 1 -->\n\nFirst page\n\n"
        "<!-- page 2 -->\n\n"
        "> Page 2 could not be read: `image_too_large`: image has more than 120000000 pixels"
        "\n\n<!-- page 3 -->\n\nThird page"
    )


def test_a_multiline_message_stays_one_quoted_line() -> None:
    page = _failed(1, ErrorCode.recognition_failed, "engine said:\n  out of memory\n")

    document = build_document("a" * 32, "rapidocr", [page])

    assert document.markdown.splitlines()[-1] == (
        "> Page 1 could not be read: `recognition_failed`: engine said: out of memory"
    )


def test_json_keeps_the_page_number_and_error_with_no_blocks(tmp_path: Path) -> None:
    files = JobFiles(tmp_path / "tmp", tmp_path / "out", "b" * 32)
    write_results(files, build_document("b" * 32, "rapidocr", PAGES))

    stored = DocumentResult.model_validate_json(files.read_result("json"))

    assert [p.index for p in stored.pages] == [1, 2, 3]
    failed = stored.pages[1]
    assert failed.error == PageError(
        code=ErrorCode.image_too_large, message="image has more than 120000000 pixels"
    )
    assert (failed.blocks, failed.text, failed.markdown) == ([], "", "")
    assert stored.pages[0].error is None
    assert files.read_result("text").decode().count("\f") == 2


def test_a_result_assembled_from_ranges_is_the_same_bytes_as_one_built_in_memory(
    tmp_path: Path,
) -> None:
    """The last range writes the result page by page from the stored ranges (memory: one page);
    every file must be what build_document + write_results give, quotes, Cyrillic, form feeds
    and a failed page included."""
    pages = [
        *PAGES,
        _read(4, 'Счёт № 7 "quoted" \\ back\tslash\u2028line'),
        _failed(5, ErrorCode.pdf_corrupt, "page 5: object 12 0 R is broken"),
    ]
    whole = JobFiles(tmp_path / "tmp", tmp_path / "whole", "c" * 32)
    write_results(whole, build_document("c" * 32, "rapidocr", pages))
    streamed = JobFiles(tmp_path / "tmp", tmp_path / "streamed", "c" * 32)
    write_results_streamed(streamed, "c" * 32, "rapidocr", lambda: iter(pages))

    for fmt in ("json", "markdown", "text"):
        assert streamed.read_result(fmt) == whole.read_result(fmt), fmt
