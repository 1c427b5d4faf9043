# ruff: noqa: RUF001 - Russian test strings
from __future__ import annotations

import random

import pytest

from testkit.scoring import Score, levenshtein, normalize, score_page


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
