"""Has a VL model's output looped? The known failure of VLM OCR: the model repeats a word,
a phrase or a table row until its token cap (PaddleOCR #16710, #17903; GLM-OCR #220).

The check reads the text as tokens: HTML tags dropped (tables come as HTML), then every run of
letters or digits is a token and every CJK/kana/hangul character is one on its own; spaces,
punctuation and symbols (dotted leaders `......`, `|`, `---`, `$`) are not tokens, so only
words count. Lowercased.

The text loops when a unit of 1 to MAX_UNIT tokens is repeated back to back at least
MIN_REPEATS times, the repeated run covering at least MIN_RUN_TOKENS tokens (a partial copy at
the end counts towards the run: a loop cut by the token cap ends mid-unit). So "the the the..."
120 times, or a 5-word sentence 30 times, loops; a table with a column of equal cells, a list,
a row of 20 `0` cells, or a table of contents with dotted leaders does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_UNIT = 64  # longest repeated unit looked for, in tokens (a sentence, a table row)
MIN_REPEATS = 10  # copies of the unit back to back, at least
MIN_RUN_TOKENS = 120  # tokens the repeated run covers, at least

_TAG = re.compile(r"<[^<>]{0,200}>")
_TOKEN = re.compile(
    r"[\u2e80-\u2fdf\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\uac00-\ud7af\uf900-\ufaff]|[^\W_]+"
)
_CJK = re.compile(
    r"[\u2e80-\u2fdf\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\uac00-\ud7af\uf900-\ufaff]"
)


@dataclass(frozen=True)
class Loop:
    """A repeated run found in a text."""

    unit: tuple[str, ...]  # the repeated tokens
    repeats: int  # whole copies back to back
    start: int  # token index where the run starts

    def describe(self) -> str:
        sep = "" if all(_CJK.fullmatch(t) for t in self.unit) else " "
        shown = sep.join(self.unit)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return f'"{shown}" repeated {self.repeats} times in a row'


def tokens(text: str) -> list[str]:
    """The words of `text` the check compares (tags, punctuation and spaces dropped)."""
    return [t.lower() for t in _TOKEN.findall(_TAG.sub(" ", text))]


def find_loop(
    text: str,
    *,
    max_unit: int = MAX_UNIT,
    min_repeats: int = MIN_REPEATS,
    min_run_tokens: int = MIN_RUN_TOKENS,
) -> Loop | None:
    """The longest-covering repeated run of `text` that counts as a loop, or None."""
    words = tokens(text)
    n = len(words)
    if n < min_run_tokens:
        return None
    best: Loop | None = None
    best_cover = 0
    for unit in range(1, min(max_unit, n // min_repeats) + 1):
        # `run`: how many tokens in a row equal the token `unit` places before them; a run of
        # r such tokens after a first copy covers unit + r tokens.
        run = 0
        for i in range(unit, n + 1):
            if i < n and words[i] == words[i - unit]:
                run += 1
                continue
            cover = unit + run
            # the smallest unit wins a tie (strictly more cover to replace it): "a b a b" is
            # "a b" twice, not "a b a b" once
            if (
                run
                and cover >= min_run_tokens
                and cover // unit >= min_repeats
                and cover > best_cover
            ):
                start = i - cover
                best = Loop(tuple(words[start : start + unit]), cover // unit, start)
                best_cover = cover
            run = 0
    return best


def loops(text: str) -> bool:
    return find_loop(text) is not None
