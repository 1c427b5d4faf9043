"""OCR accuracy scores: character error rate and word-bag F1 on normalized text.

Normalization is Unicode NFC plus whitespace collapsed to single spaces, so line breaks and
indentation never count as errors; everything else (case, punctuation, hyphens) does.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass


def normalize(text: str) -> str:
    """NFC, every run of whitespace (line breaks included) as one space, trimmed."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute = 1), bit-parallel (Myers/Hyyrö) on Python ints.

    One pass over `b` with |a|-bit integers: a 3000-character page pair takes milliseconds in pure
    Python, where the textbook table would take seconds.
    """
    if not a or not b:
        return len(a) + len(b)
    *_, last = _column_scores(a, b, free_start=False)
    return last


def _column_scores(pattern: str, text: str, free_start: bool) -> Iterator[int]:
    """The edit distance of all of `pattern` against `text` up to each of its characters: from
    `text`'s start (free_start False), or from anywhere in it (approximate search)."""
    peq: dict[str, int] = {}
    for i, char in enumerate(pattern):
        peq[char] = peq.get(char, 0) | (1 << i)
    mask = (1 << len(pattern)) - 1
    high = 1 << (len(pattern) - 1)
    carry = 0 if free_start else 1  # row 0 costs nothing (search) or one per text character
    vp, vn, score = mask, 0, len(pattern)
    for char in text:
        eq = peq.get(char, 0)
        xv = eq | vn
        xh = ((((eq & vp) + vp) & mask) ^ vp) | eq
        hp = (vn | ~(xh | vp)) & mask
        hn = vp & xh
        if hp & high:
            score += 1
        elif hn & high:
            score -= 1
        hp = ((hp << 1) | carry) & mask
        hn = (hn << 1) & mask
        vp = (hn | ~(xv | hp)) & mask
        vn = hp & xv
        yield score


@dataclass(frozen=True)
class Score:
    """Scores of one page (or of a set of pages, summed before dividing)."""

    edits: int  # edit distance between normalized reference and hypothesis
    ref_chars: int
    words_matched: int  # size of the multiset intersection of the two word bags
    ref_words: int
    hyp_words: int

    @property
    def cer(self) -> float:
        """Edits per reference character; can exceed 1 when the hypothesis is much longer."""
        return self.edits / self.ref_chars if self.ref_chars else float(self.edits > 0)

    @property
    def word_f1(self) -> float:
        """Harmonic mean of word-bag precision and recall (order-insensitive)."""
        if not self.ref_words and not self.hyp_words:
            return 1.0
        return 2 * self.words_matched / (self.ref_words + self.hyp_words)

    def __add__(self, other: Score) -> Score:
        return Score(
            self.edits + other.edits,
            self.ref_chars + other.ref_chars,
            self.words_matched + other.words_matched,
            self.ref_words + other.ref_words,
            self.hyp_words + other.hyp_words,
        )


def score_page(reference: str, hypothesis: str) -> Score:
    """Compare one page's OCR text to its ground truth, both normalized first."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    ref_bag, hyp_bag = Counter(ref.split()), Counter(hyp.split())
    return Score(
        edits=levenshtein(ref, hyp),
        ref_chars=len(ref),
        words_matched=sum((ref_bag & hyp_bag).values()),
        ref_words=sum(ref_bag.values()),
        hyp_words=sum(hyp_bag.values()),
    )


# -- reading order -----------------------------------------------------------------------------

# A ground-truth cell counts as found when its best match in the output is within this share of
# its length in edits; shorter cells than MIN_UNIT_CHARS are left out (they match anywhere).
MATCH_SHARE = 0.3
MIN_UNIT_CHARS = 4
# A page's line order is "right" when Kendall's tau over its found cells is at least this and
# at least half of its cells were found.
ORDER_RIGHT_TAU = 0.95


def best_match(pattern: str, text: str) -> tuple[int, int]:
    """(edits, end) of the substring of `text` closest to `pattern`: approximate search, the
    same bit-parallel recurrence as `levenshtein` with a free start anywhere in `text`."""
    best, best_end = len(pattern), 0
    if not pattern:
        return 0, 0
    for end, score in enumerate(_column_scores(pattern, text, free_start=True), start=1):
        if score < best:
            best, best_end = score, end
    return best, best_end


@dataclass(frozen=True)
class OrderScore:
    """How the ground truth's cells (lines, or cells of form and table rows) are ordered in the
    output: Kendall's tau over the cells found, from -1 (reversed) to 1 (all in order)."""

    tau: float
    found: int
    units: int

    @property
    def right(self) -> bool:
        return self.tau >= ORDER_RIGHT_TAU and 2 * self.found >= self.units


def kendall_tau(positions: list[int]) -> float:
    """Tau-a of `positions` against their index order; ties count neither way; 1.0 if < 2."""
    concordant = discordant = 0
    for i, first in enumerate(positions):
        for second in positions[i + 1 :]:
            concordant += second > first
            discordant += second < first
    pairs = concordant + discordant
    return (concordant - discordant) / pairs if pairs else 1.0


def order_score(cells: list[str], hypothesis: str) -> OrderScore:
    """Each cell (in reading order) matched to its best place in the normalized output.

    A cell whose text the ground truth holds elsewhere too (a table's `95.00` twice, a cell
    `Delivery` and a title `Delivery Notice`, a cell's line `установка` inside another's
    `одновременная установка`) is left out: its best place in the output is the first of
    those, whichever of them it is, so it would count as out of order in a page read right.
    """
    text = normalize(hypothesis)
    units = _unambiguous([normalize(cell) for cell in cells])
    positions = []
    for unit in units:
        edits, end = best_match(unit, text)
        if edits <= MATCH_SHARE * len(unit):
            positions.append(end)
    return OrderScore(kendall_tau(positions), len(positions), len(units))


def _unambiguous(cells: list[str]) -> list[str]:
    """The cells (normalized) long enough to match whose text the ground truth (the cells
    joined) holds nowhere but in their own place."""
    kept = []
    for n, unit in enumerate(cells):
        rest = " ".join([*cells[:n], "\x00", *cells[n + 1 :]])  # its own place blanked out
        if len(unit) >= MIN_UNIT_CHARS and unit not in rest:
            kept.append(unit)
    return kept
