"""Vertical lines found among an engine's boxes and read turned (worker/vertical_lines.py), with
a stand-in line reader that records what it was given; the real engines read real pages in
test_reading_order_engines.py."""

from __future__ import annotations

from PIL import Image

from shared.results import Block
from worker.vertical_lines import read_vertical_lines, vertical_runs

BODY = [
    Block(text="Invoice number 20461", bbox=[120, 100, 500, 130], score=0.97),
    Block(text="Delivery date 2026-03-14", bbox=[120, 150, 540, 180], score=0.96),
    Block(text="Total amount 1284.50 EUR", bbox=[120, 200, 560, 230], score=0.95),
]


class Reader:
    """Reads any line lying flat as `text`, surer one way round than the other."""

    def __init__(self, text: str = "DOC 2026-004517", score: float = 0.95) -> None:
        self.text, self.score = text, score
        self.seen: list[tuple[int, int]] = []

    def __call__(self, line: Image.Image) -> tuple[str, float]:
        self.seen.append(line.size)
        flat = line.width > line.height
        right_way = len(self.seen) % 2 == 0  # the second turn (270) is the right one here
        return (self.text if right_way else "garbled"), (self.score if flat and right_way else 0.3)


def page() -> Image.Image:
    return Image.new("RGB", (700, 400), "white")


def test_a_tall_box_read_sideways_is_read_turned_as_one_line() -> None:
    tall = Block(text="D0C2517", bbox=[20, 90, 50, 330], score=0.79)
    reader = Reader()

    blocks = read_vertical_lines([*BODY, tall], page(), reader)

    assert [b.text for b in blocks] == [b.text for b in BODY] + ["DOC 2026-004517"]
    assert blocks[-1].bbox == tall.bbox and blocks[-1].score == 0.95
    assert len(reader.seen) == 2 and all(w > h for w, h in reader.seen)  # both turns, lying flat


def test_a_run_of_one_character_lines_becomes_one_line_where_it_began() -> None:
    chars = [
        Block(text=ch, bbox=[24, 300 - 24 * n, 44, 320 - 24 * n], score=0.6)
        for n, ch in enumerate("DOC-2026")
    ]
    blocks = read_vertical_lines([BODY[0], *chars, *BODY[1:]], page(), Reader())

    assert [b.text for b in blocks] == [BODY[0].text, "DOC 2026-004517", BODY[1].text, BODY[2].text]
    assert blocks[1].bbox == [24, 300 - 24 * 7, 44, 320]


def test_a_tall_box_the_engine_read_surer_as_it_was_is_kept() -> None:
    # Tesseract turns a clean vertical line itself and reads it right
    own = Block(text="DOC 2026-004517", bbox=[20, 90, 50, 330], score=0.97)

    assert read_vertical_lines([*BODY, own], page(), Reader(score=0.9)) == [*BODY, own]


def test_a_turned_read_nobody_is_sure_of_changes_nothing() -> None:
    tall = Block(text="D0C2517", bbox=[20, 90, 50, 330], score=0.2)

    assert read_vertical_lines([*BODY, tall], page(), Reader(score=0.4)) == [*BODY, tall]


def test_a_page_lying_sideways_is_left_to_page_rotation() -> None:
    sideways = [Block(text=b.text, bbox=[b.bbox[1], b.bbox[0], b.bbox[3], b.bbox[2]]) for b in BODY]
    reader = Reader()

    assert vertical_runs(sideways) == []
    assert read_vertical_lines(sideways, page(), reader) == sideways
    assert reader.seen == []


def test_tall_letters_and_short_words_are_not_vertical_lines() -> None:
    short = [
        Block(text="I", bbox=[600, 100, 608, 130]),  # one tall letter
        Block(text="No", bbox=[120, 250, 150, 280]),  # short words of a column, not a stack
        Block(text="Yes", bbox=[120, 300, 160, 330]),
    ]
    assert vertical_runs([*BODY, *short]) == []


def test_a_table_column_of_short_numbers_is_not_a_vertical_line() -> None:
    cells = [
        Block(text=t, bbox=[600, 100 + 45 * n, 624, 128 + 45 * n]) for n, t in enumerate("4221")
    ]

    assert vertical_runs([*BODY, *cells]) == []
