"""Per-job options as the API parses them and the worker reads them (no Redis, no app)."""

from __future__ import annotations

import pytest

from shared.errors import InvalidOption
from shared.options import Language, TextLayer, parse_options, parse_page_spec


@pytest.mark.parametrize(
    ("spec", "pages"),
    [("1", [1]), ("1-3,7", [1, 2, 3, 7]), (" 3 - 4 , 1 ", [1, 3, 4]), ("2,2,1-2", [1, 2])],
)
def test_page_lists_are_sorted_without_duplicates(spec: str, pages: list[int]) -> None:
    assert parse_page_spec(spec) == pages


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("a", "'a' is not a page or range like 1-3"),
        ("1,,2", "'' is not a page or range"),
        ("0", "pages start at 1"),
        ("5-2", "ranges go upwards"),
        ("1-200000", "range too large"),
        ("1," * 150, "page list is too long"),
    ],
)
def test_bad_page_lists_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_page_spec(spec)


def test_defaults_and_spaces_in_pages() -> None:
    options = parse_options({})
    assert (options.pages, options.dpi) == (None, None)
    assert (options.language, options.text_layer) == (Language.auto, TextLayer.ocr)
    assert parse_options({"pages": " "}).pages is None
    assert parse_options({"pages": "1 - 3, 7"}).pages == "1-3,7"


def test_selected_pages_are_checked_against_the_document() -> None:
    assert parse_options({}).selected_pages(3) == [1, 2, 3]
    options = parse_options({"pages": "2-3"})
    assert options.selected_pages(5) == [2, 3]
    with pytest.raises(ValueError, match="asks for page 3 but the document has 2 page"):
        options.selected_pages(2)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dpi": "50"}, "dpi: Input should be greater than or equal to 72"),
        ({"language": "de"}, "language: Input should be 'auto', 'ru' or 'en'"),
        ({"pages": "x"}, "pages: 'x' is not a page or range like 1-3"),
        ({"colour": "red"}, "colour: unknown field (accepted: file, pages, dpi, language, "),
    ],
)
def test_invalid_options_name_the_field(fields: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidOption) as info:
        parse_options(fields)
    assert str(info.value).startswith(message)
    assert info.value.code == "invalid_option"  # answered 422: tests/unit/test_error_codes.py


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(InvalidOption) as info:
        parse_options({"dpi": "9000", "text_layer": "maybe"})
    assert str(info.value).count("; ") == 1
    assert "dpi:" in str(info.value) and "text_layer:" in str(info.value)
