"""The repetition check on a VL model's output (worker/engines/vl_loops.py): real-looking
pages that repeat themselves legitimately are not loops; a model stuck repeating is."""

from __future__ import annotations

import pytest

from worker.engines.vl_loops import MIN_REPEATS, MIN_RUN_TOKENS, find_loop, loops, tokens

PARAGRAPH = (
    "The committee met on 4 March to review the budget for the coming year. Members agreed "
    "that the maintenance costs of the east wing had risen by twelve percent, mostly because "
    "of the heating system, and asked the treasurer to prepare two alternative plans."
)


def table(rows: list[list[str]]) -> str:
    """An HTML table as paddlex gives it."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{body}</table>"


# --- legitimate repetition: not a loop ---------------------------------------------------------


def test_ordinary_prose_is_not_a_loop() -> None:
    assert find_loop("\n\n".join([PARAGRAPH] * 1)) is None
    assert find_loop(PARAGRAPH + " " + PARAGRAPH.upper()[::-1]) is None


def test_a_table_with_columns_of_equal_cells_is_not_a_loop() -> None:
    rows = [["Item", "Q1", "Q2", "Q3", "Q4", "Unit"]]
    rows += [[f"Part {n}", "0", "0", "0", "0", "EUR"] for n in range(40)]
    text = table(rows)
    assert len(tokens(text)) > MIN_RUN_TOKENS
    assert find_loop(text) is None


def test_a_row_of_many_empty_or_zero_cells_is_not_a_loop() -> None:
    assert find_loop(table([[""] * 60, ["0"] * 30, ["N/A"] * 12])) is None


def test_dotted_leaders_of_a_table_of_contents_are_not_a_loop() -> None:
    toc = "\n".join(f"{n}. Chapter {n} {'.' * 80} {7 * n + 3}" for n in range(1, 40))
    assert find_loop(toc) is None
    assert find_loop("." * 5000 + " " + "-" * 3000 + " " + "_" * 2000) is None


def test_a_numbered_list_with_repeated_words_is_not_a_loop() -> None:
    items = "\n".join(f"- Step {n}: check the valve and record the reading" for n in range(60))
    assert find_loop(items) is None


def test_a_short_repetition_under_the_thresholds_is_not_a_loop() -> None:
    # a chorus sung a few times, a signature block repeated twice
    text = PARAGRAPH + " " + "la la la la la la la la " + "Yes we can. " * 5 + PARAGRAPH
    assert find_loop(text) is None


def test_a_cjk_page_is_read_character_by_character() -> None:
    page = (
        "第一章 总则 本办法适用于公司所有员工的差旅费用报销\uff0c"
        "包括交通费\u3001住宿费和伙食补助\u3002"
    )
    assert tokens("总则 abc")[:2] == ["总", "则"]
    assert find_loop(page) is None


# --- loops --------------------------------------------------------------------------------------


def test_one_word_repeated_until_the_cap_is_a_loop() -> None:
    loop = find_loop(PARAGRAPH + " " + "the " * 500)
    assert loop is not None
    assert loop.unit == ("the",)
    assert loop.repeats >= 500


def test_a_sentence_repeated_30_times_is_a_loop() -> None:
    sentence = "Total amount due on receipt. "
    loop = find_loop(PARAGRAPH + " " + sentence * 30)
    assert loop is not None
    assert loop.unit == ("total", "amount", "due", "on", "receipt")
    assert loop.repeats == 30
    assert "repeated 30 times in a row" in loop.describe()


def test_a_loop_cut_mid_unit_by_the_token_cap_is_a_loop() -> None:
    text = PARAGRAPH + " " + ("one two three four five six seven " * 40)[:-13]
    assert loops(text)


def test_a_table_row_repeated_until_the_cap_is_a_loop() -> None:
    rows = [["Benzofuran", "271-89-6", "2B"], ["Benzophenone", "119-61-9", "2B"]] * 40
    text = table([["Agent", "CAS No.", "Group"], *rows])[:-20]  # cut: no closing tags
    loop = find_loop(text)
    assert loop is not None
    assert loop.unit[0] == "benzofuran"


def test_a_cjk_phrase_repeated_is_a_loop() -> None:
    assert loops("报销流程如下\uff1a" + "请填写申请表" * 40)


@pytest.mark.parametrize("repeats", [MIN_REPEATS - 1, MIN_REPEATS])
def test_the_repeat_threshold(repeats: int) -> None:
    # a 20-word unit: the run covers the token threshold either way; the copies decide
    unit = " ".join(f"w{n}" for n in range(20)) + " "
    assert loops(unit * repeats) is (repeats >= MIN_REPEATS)
