# ruff: noqa: RUF001 - Russian test strings
from __future__ import annotations

import random

import pytest

from testkit.scoring import (
    Score,
    best_match,
    kendall_tau,
    levenshtein,
    normalize,
    order_score,
    score_page,
)


def table_levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("", "", 0),
        ("", "abc", 3),
        ("abc", "", 3),
        ("kitten", "sitting", 3),
        ("Привет", "Првиет", 2),
        ("flaw", "lawn", 2),
        ("same", "same", 0),
    ],
)
def test_levenshtein_known_pairs(a: str, b: str, expected: int) -> None:
    assert levenshtein(a, b) == expected
    assert levenshtein(b, a) == expected


def test_levenshtein_matches_the_textbook_table_on_random_strings() -> None:
    rng = random.Random(3)
    for _ in range(300):
        # small alphabet: many matches, so every branch of the bit-parallel step runs
        a = "".join(rng.choice("abcЖ ") for _ in range(rng.randint(0, 90)))
        b = "".join(rng.choice("abcЖ ") for _ in range(rng.randint(0, 90)))
        assert levenshtein(a, b) == table_levenshtein(a, b), (a, b)


def test_levenshtein_handles_page_length_text_quickly() -> None:
    a = "Руководство начинающего разработчика Debian " * 80
    b = a.replace("Debian", "Debain")
    assert levenshtein(a, b) == 160


def test_normalize_uses_nfc_and_collapses_whitespace() -> None:
    decomposed = "и\u0306 e\u0301"  # й and é as base letter + combining mark
    assert normalize(f"  {decomposed}\n\n\tx  ") == "й é x"


def test_score_page_cer_and_word_bag_f1() -> None:
    score = score_page("один два\nтри", "один  два три")
    assert (score.cer, score.word_f1) == (0.0, 1.0)

    score = score_page("a b c d", "b a c x")  # order ignored, one word wrong
    assert score.words_matched == 3
    assert score.word_f1 == pytest.approx(0.75)
    assert score.edits == levenshtein("a b c d", "b a c x")


def test_scores_add_up_before_dividing() -> None:
    total = score_page("abcd", "abcd") + score_page("ab", "xy")
    assert total == Score(edits=2, ref_chars=6, words_matched=1, ref_words=2, hyp_words=2)
    assert total.cer == pytest.approx(2 / 6)


def test_empty_hypothesis_is_all_errors() -> None:
    score = score_page("текст страницы", "")
    assert score.cer == 1.0
    assert score.word_f1 == 0.0


def table_search(pattern: str, text: str) -> int:
    """Fewest edits turning `pattern` into some substring of `text` (free start and end)."""
    row = list(range(len(pattern) + 1))
    best = row[-1]
    for char in text:
        prev, row[0] = row[0], 0
        for i, cp in enumerate(pattern, 1):
            prev, row[i] = row[i], min(row[i] + 1, row[i - 1] + 1, prev + (cp != char))
        best = min(best, row[-1])
    return best


def test_best_match_agrees_with_the_table_on_random_strings() -> None:
    rng = random.Random(26)
    for _ in range(500):
        pattern = "".join(rng.choice("abcд") for _ in range(rng.randint(1, 9)))
        text = "".join(rng.choice("abcdд ") for _ in range(rng.randint(0, 30)))
        assert best_match(pattern, text)[0] == table_search(pattern, text)


def test_best_match_ends_where_the_line_ends_in_the_text() -> None:
    text = "first line second lime third line"

    edits, end = best_match("second line", text)

    assert edits == 1
    assert text[:end].endswith("second lime")


def test_kendall_tau() -> None:
    assert kendall_tau([1, 2, 3, 4]) == 1.0
    assert kendall_tau([4, 3, 2, 1]) == -1.0
    assert kendall_tau([2, 1, 3, 4]) == pytest.approx(4 / 6)
    assert kendall_tau([5]) == 1.0


def test_order_score_of_a_page_read_in_order_shuffled_and_column_by_column() -> None:
    cells = [
        "Company:",
        "Northfield Timber",
        "Invoice number:",
        "INV-20461",
        "Customer:",
        "Oakridge",
    ]
    rows = "Company: Northfield Timber\nInvoice number: INV-20461\nCustomer: Oakridge"
    by_column = "Company:\nInvoice number:\nCustomer:\nNorthfield Timber\nINV-20461\nOakridge"

    in_order, column_wise = order_score(cells, rows), order_score(cells, by_column)

    assert in_order.tau == 1.0 and in_order.right and in_order.found == 6
    assert column_wise.tau == pytest.approx(0.6) and not column_wise.right  # 3 of 15 pairs swapped
    missing = order_score(cells, "Company: Northfield Timber")
    assert missing.found == 2 and not missing.right  # in order, but most of the page lost


def test_order_score_leaves_out_cells_the_ground_truth_holds_twice() -> None:
    # A table's last row repeats a word of the title and its own amount: read exactly right,
    # those cells' best places in the output are their first occurrences, which would count
    # as out of order. They tell nothing about the order, so they are not scored.
    cells = ["Delivery Notice", "Oak boards", "95.00", "95.00", "Delivery", "Claims in writing"]
    text = "Delivery Notice\nOak boards 95.00\n95.00 Delivery\nClaims in writing"

    score = order_score(cells, text)

    assert (score.tau, score.found, score.units) == (1.0, 3, 3) and score.right
    swapped = order_score(
        cells, "Oak boards 95.00\nDelivery Notice\n95.00 Delivery\nClaims in writing"
    )
    assert swapped.tau == pytest.approx(1 / 3)  # the cells that are scored still are
