# ruff: noqa: RUF001, RUF002 (Cyrillic letters are the point here)
"""Small fixes of what the CPU engines read, by the script around a word (OCR_WORD_FIXES).

- `000 «...»` / `000 "..."` in a line with Cyrillic letters is the company form `ООО` (the
  recognizers read the round capitals as zeros);
- inside a word of letters, a 0 between two letters is the letter O and a 1 is I (capitals)
  or l, in the word's own script (Cyrillic `О`; Cyrillic has no I/l, so 1 stays there).

Words that are mostly digits (numbers, dates, codes such as `INV-20461`) are left alone.
"""

from __future__ import annotations

import re

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_COMPANY_ZEROS = re.compile(r"(?<![\w\d])[0OО]{3}(?=\s*[«\"„“])")
_WORD = re.compile(r"\w+")


def _is_cyrillic(text: str) -> bool:
    return bool(_CYRILLIC.search(text))


def _fix_word(match: re.Match[str]) -> str:
    word = match.group(0)
    letters = sum(ch.isalpha() for ch in word)
    digits = [ch for ch in word if ch.isdigit()]
    if letters < 2 or not digits or len(digits) > letters or set(digits) - {"0", "1"}:
        return word
    cyrillic = _is_cyrillic(word)
    upper = sum(ch.isupper() for ch in word) * 2 > letters
    chars = list(word)
    for i, ch in enumerate(chars):
        if not (0 < i < len(word) - 1 and word[i - 1].isalpha() and word[i + 1].isalpha()):
            continue
        if ch == "0":
            chars[i] = ("О" if cyrillic else "O") if upper else ("о" if cyrillic else "o")
        elif ch == "1" and not cyrillic:
            chars[i] = "I" if upper else "l"
    return "".join(chars)


def fix_line(text: str) -> str:
    if _is_cyrillic(text):
        text = _COMPANY_ZEROS.sub("ООО", text)
    return _WORD.sub(_fix_word, text)
