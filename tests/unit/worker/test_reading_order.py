"""Reading order from line boxes alone (worker/reading_order.py), on synthetic pages whose true
order is known: the engine's order is shuffled away first, so only the geometry can restore it."""

from __future__ import annotations

import random

from shared.results import Block
from worker.reading_order import arrange_blocks
from worker.results import page_markdown, page_text

LEFT = [
    "The committee met on Monday to review",
    "the annual budget and the plans for",
    "the new library building downtown.",
    "Members asked for more details about",
]
RIGHT = [
    "After a long discussion the members",
    "agreed to publish the full report in",
    "the spring, together with a summary",
    "for readers who have little time.",
]


def box(text: str, x0: float, y0: float, height: float = 28, per_char: float = 12) -> Block:
    return Block(text=text, bbox=[x0, y0, x0 + per_char * len(text), y0 + height])


def shuffled(blocks: list[Block], seed: int = 7) -> list[Block]:
    copy = list(blocks)
    random.Random(seed).shuffle(copy)
    return copy


def texts(blocks: list[Block]) -> list[str]:
    return [b.text for b in blocks]


def test_two_columns_under_a_heading_read_column_by_column() -> None:
    page = [box("Minutes of the Library Committee", 60, 20, height=40, per_char=18)]
    for n, (left, right) in enumerate(zip(LEFT, RIGHT, strict=True)):
        y = 100 + 40 * n  # both columns on one grid: every row lines up across the gutter
        page += [box(left, 60, y), box(right, 560, y)]

    ordered = arrange_blocks(shuffled(page))

    assert texts(ordered) == ["Minutes of the Library Committee", *LEFT, *RIGHT]
    assert [b.block for b in ordered] == [0] + [1] * 4 + [2] * 4
    assert [b.line for b in ordered] == list(range(9))  # one box per line, numbered in order
    assert page_markdown(ordered).split("\n\n") == [
        "Minutes of the Library Committee",
        "\n".join(LEFT),
        "\n".join(RIGHT),
    ]


def test_columns_whose_lines_do_not_line_up_are_read_one_after_the_other() -> None:
    left = [box(text, 60, 100 + 40 * n) for n, text in enumerate(LEFT)]
    right = [box(text, 560, 118 + 40 * n) for n, text in enumerate(RIGHT[:3])]  # half a row off

    ordered = arrange_blocks(shuffled(left + right))

    assert texts(ordered) == LEFT + RIGHT[:3]


def test_a_ragged_left_aligned_paragraph_keeps_its_lines_in_vertical_order() -> None:
    # Tight leading and uneven boxes (ascenders, descenders): neighbouring tops are under 10 px
    # apart in places, where rapidocr's fixed row gap re-sorted lines by their left edges.
    lines = [
        ("Thank you for your order of twelve", 50, 100, 30),
        ("boxes; they leave our store today", 44, 108, 26),
        ("by the morning train and reach you", 52, 131, 24),
        ("within three days of this letter", 47, 139, 26),
    ]
    page = [box(text, x, y, height=h) for text, x, y, h in lines]

    ordered = arrange_blocks(shuffled(page, seed=3))

    assert texts(ordered) == [text for text, *_ in lines]
    assert len({b.line for b in ordered}) == 4
    assert len({b.paragraph for b in ordered}) == 1  # one paragraph, its lines joined
    assert page_markdown(ordered) == "\n".join(text for text, *_ in lines)


def test_key_value_rows_stay_rows() -> None:
    rows = [
        ("Invoice number", "20461"),
        ("Delivery date of the goods", "2026-03-14"),
        ("Total amount", "1284.50 EUR"),
        ("Customer", "Northwind Traders Limited"),
    ]
    page = []
    for n, (key, value) in enumerate(rows):
        y = 100 + 50 * n
        page += [box(key, 60, y), box(value, 600, y + 3, height=25)]

    ordered = arrange_blocks(shuffled(page))

    assert page_text(ordered).splitlines() == [f"{key} {value}" for key, value in rows]
    assert [b.line for b in ordered] == [0, 0, 1, 1, 2, 2, 3, 3]  # key and value share a line


def test_a_table_is_read_row_by_row() -> None:
    table = [
        ["Item", "Qty", "Price", "Total"],
        ["Paper A4", "10", "4.20", "42.00"],
        ["Toner", "2", "61.00", "122.00"],
        ["Stapler", "1", "9.90", "9.90"],
    ]
    page = [
        box(cell, 80 + 260 * col, 200 + 45 * row)
        for row, cells in enumerate(table)
        for col, cell in enumerate(cells)
    ]

    ordered = arrange_blocks(shuffled(page))

    assert page_text(ordered).splitlines() == [" ".join(cells) for cells in table]


def test_a_vertical_margin_number_is_its_own_block_beside_its_lines() -> None:
    body = [box(text, 120, 100 + 40 * n) for n, text in enumerate(LEFT)]
    left_number = Block(text="DOC 2026-004517", bbox=[20, 90, 48, 300])
    right_number = Block(text="Page 1 of 2", bbox=[700, 120, 726, 280])

    ordered = arrange_blocks(shuffled([*body, left_number, right_number]))

    assert texts(ordered) == ["DOC 2026-004517", *LEFT, "Page 1 of 2"]
    assert ordered[0].block != ordered[1].block != ordered[-1].block
    assert page_markdown(ordered).split("\n\n") == [
        "DOC 2026-004517",
        "\n".join(LEFT),
        "Page 1 of 2",
    ]


def test_a_wide_gap_and_a_change_of_type_size_start_paragraphs() -> None:
    page = [
        box("Invoice number 20461", 40, 40, height=50, per_char=24),
        box("Delivery date 2026-03-14", 40, 120),
        box("Total amount 1284.50 EUR", 40, 160),
        box("Thank you for your order", 40, 260),  # a blank line's gap above it
        box("and see you again soon", 40, 300),
    ]

    ordered = arrange_blocks(shuffled(page))

    assert [b.paragraph for b in ordered] == [0, 1, 1, 2, 2]
    assert page_markdown(ordered).count("\n\n") == 2


def test_blocks_without_ids_keep_the_engine_markdown_and_text() -> None:
    # READING_ORDER=engine, a PDF's text layer, results made before the ids: as before
    page = [box("Total 12", 300, 10), box("Name", 10, 12), box("", 10, 60)]

    assert page_markdown(page) == "Total 12\n\nName"
    assert page_text(page) == "Total 12\nName\n"


def test_nothing_to_order_is_nothing() -> None:
    assert arrange_blocks([]) == []


def test_rows_of_a_page_scanned_askew_are_read_along_its_slope() -> None:
    slope = 0.026  # 1.5 degrees: a value 700 px right of its key sits 18 px lower
    rows = [("Invoice number", "20461"), ("Delivery date", "2026-03-14"), ("Total", "12.50")]
    page = []
    for n, (key, value) in enumerate(rows):
        y = 100 + 40 * n
        page += [box(key, 60, y + 60 * slope), box(value, 760, y + 800 * slope)]

    assert page_text(arrange_blocks(shuffled(page), slope)).splitlines() == [
        f"{key} {value}" for key, value in rows
    ]
    assert len(page_text(arrange_blocks(shuffled(page))).splitlines()) == 6  # level: apart


def test_two_columns_of_a_page_photographed_askew_are_read_column_by_column() -> None:
    # A phone photo, turned 2 degrees: its lines slope down to the right and its gutter leans
    # right as it goes down, by more than its width. Boxes as rapidocr draws them, taller than
    # the line pitch; the gutter is half a box high.
    slope = 0.035
    lines = [*LEFT, *RIGHT] * 5  # 40 lines a side, each told apart by its number
    page = []
    for n, text in enumerate(lines):
        y = 100 + 16 * n
        for x, side in ((60, "L"), (382, "R")):
            page.append(box(f"{side}{n} {text}", x - slope * y, y + slope * x, per_char=7.5))
    left = [b.text for b in page if b.text.startswith("L")]
    right = [b.text for b in page if b.text.startswith("R")]
    gutter = 382 - 60 - max(b.bbox[2] - b.bbox[0] for b in page)
    assert 0.4 * 28 <= gutter < 0.6 * 28 and 16 * len(lines) * slope > gutter

    assert texts(arrange_blocks(shuffled(page), slope)) == [*left, *right]


def test_a_vertical_number_in_a_margin_of_its_own_is_the_first_or_last_column() -> None:
    # The prose ends high on the page; the numbers run up the margins below it, beside no line:
    # nothing else above or below them, so each is a column of the page, as an XY-cut finds it.
    body = [box(text, 120, 100 + 40 * n) for n, text in enumerate(LEFT)]
    left_number = Block(text="DOC 2026-004517", bbox=[20, 500, 48, 760])
    right_number = Block(text="Page 1 of 2", bbox=[700, 600, 726, 760])

    ordered = arrange_blocks(shuffled([*body, left_number, right_number]))

    assert texts(ordered) == ["DOC 2026-004517", *LEFT, "Page 1 of 2"]
    assert len({b.block for b in ordered}) == 3


def test_a_vertical_line_among_the_rows_goes_beside_the_rows_it_runs_along() -> None:
    # A column of line numbers that the engine read as one tall box, left of a code listing
    # but under the heading and prose that span it: read before the listing's first line
    # beside it, not after the whole block.
    prose = [box(text, 40, 100 + 40 * n) for n, text in enumerate(LEFT[:2])]
    code = [box(f"print({n})", 90, 200 + 30 * n, height=24) for n in range(6)]
    numbers = Block(text="1 2 3 4 5 6", bbox=[60, 200, 74, 374])
    footnote = box("Footnote: the listing prints six numbers.", 40, 420)

    ordered = arrange_blocks(shuffled([*prose, *code, numbers, footnote]))

    assert texts(ordered) == [*LEFT[:2], "1 2 3 4 5 6", *[b.text for b in code], footnote.text]
    assert ordered[2].block not in (ordered[1].block, ordered[3].block)  # a block of its own
    assert [b.block for b in ordered] == sorted(b.block for b in ordered)


def test_a_vertical_line_beside_no_row_goes_before_the_first_row_below_its_top() -> None:
    top = [box(text, 40, 100 + 40 * n) for n, text in enumerate(LEFT)]
    bottom = [box(text, 40, 600 + 40 * n) for n, text in enumerate(RIGHT)]
    number = Block(text="Sheet 4", bbox=[300, 350, 320, 520])  # in the gap, under the prose

    ordered = arrange_blocks(shuffled([*top, *bottom, number]))

    assert texts(ordered) == [*LEFT, "Sheet 4", *RIGHT]


def test_two_columns_whose_gutter_a_few_line_boxes_run_into_are_read_column_by_column() -> None:
    # A fax read by rapidocr: boxes taller than the line pitch (the columns are one band), and
    # specks by the gutter taken into two lines' boxes: the first left line's box runs across
    # the gutter into the right column, the first right line's box starts inside the gutter.
    lines = [*LEFT, *RIGHT] * 2  # 16 lines a side
    page = [box("Minutes of the Library Committee", 60, 20, height=50, per_char=18)]
    for n, text in enumerate(lines):
        y = 100 + 37 * n
        page += [box(f"L{n} {text}", 60, y, height=51, per_char=15)]
        page += [box(f"R{n} {text}", 740, y, height=51, per_char=15)]
    assert 740 - max(b.bbox[2] for b in page if b.text.startswith("L")) >= 0.4 * 51  # gutter
    page[1].bbox[2] = 760.0  # L0 runs into the right column
    page[2].bbox[0] = 700.0  # R0 starts in the gutter
    left = [b.text for b in page if b.text.startswith("L")]
    right = [b.text for b in page if b.text.startswith("R")]

    ordered = arrange_blocks(shuffled(page))

    assert texts(ordered) == ["Minutes of the Library Committee", *left, *right]
