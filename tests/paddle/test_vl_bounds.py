"""Every page bounded, on the real paddleocr 3.7.0 / paddlex 3.7.2 against the stand-in VL
server: the token cap reaches the server, a page that loops is read once more with the loop
retry's settings and then fails alone with vl_output_repetitive, and a request the server never
answers ends within the page's time limit (not paddlex's 600 s x 3)."""

from __future__ import annotations

import time

import pytest

pytest.importorskip(
    "paddleocr", reason="real-library tests: run in .venv-paddle (make test-paddle)"
)

from testkit.paddle_layout import StandInLayout, box, install_layout
from testkit.vl_server import page_text
from tests.paddle.test_paddleocr_vl_real import engine_for, page
from worker.engines.base import EngineError, Recognition
from worker.engines.paddleocr_vl import VL_REQUEST_RETRIES


def outcome_of(outcome: Recognition | EngineError) -> object:
    if isinstance(outcome, EngineError):
        return outcome.code
    return [block.text for block in outcome.blocks]


def test_every_request_carries_the_token_cap_and_greedy_sampling(vl):
    engine = engine_for(vl, paddleocr_vl_max_new_tokens=1234)

    engine.recognize_batch([page(100, 50), page(110, 50)])

    assert sorted(
        (s.width, s.max_tokens, s.temperature, s.repetition_penalty) for s in vl.seen
    ) == [
        (100, 1234, 0.0, None),
        (110, 1234, 0.0, None),
    ]


def test_the_default_cap_is_paddleocr_vls_own_pipeline_default(vl):
    engine_for(vl).recognize(page(100, 50))

    [seen] = vl.seen
    assert seen.max_tokens == 4096


def test_a_looping_page_is_read_again_with_the_loop_settings_then_fails_alone(vl):
    vl.loop_size(120, 50)
    engine = engine_for(vl, paddleocr_vl_max_new_tokens=600)

    outcomes = engine.recognize_batch([page(100, 50), page(120, 50), page(140, 50)])

    assert [outcome_of(o) for o in outcomes] == [
        [page_text(100, 50)],
        "vl_output_repetitive",
        [page_text(140, 50)],
    ]
    looping = [s for s in vl.seen if s.width == 120]
    # the first read greedy, the second with the loop retry's settings; both with the cap
    assert [(s.repetition_penalty, s.temperature, s.max_tokens, s.looped) for s in looping] == [
        (None, 0.0, 600, True),
        (1.1, 0.3, 600, True),
    ]
    # its batch-mates were read once (the retry is for the looping page only)
    assert sorted(s.width for s in vl.seen if s.width != 120) == [100, 140]
    message = outcomes[1].message
    assert '"total amount due on receipt" repeated' in message
    assert "repetition_penalty=1.1" in message and "PADDLEOCR_VL_MAX_NEW_TOKENS=600" in message


def test_a_loop_the_retry_breaks_gives_the_pages_text(vl):
    vl.loop_size(120, 50, until_penalty=1.05)
    engine = engine_for(vl, paddleocr_vl_loop_retry_repetition_penalty=1.05)

    outcomes = engine.recognize_batch([page(100, 50), page(120, 50)])

    assert [outcome_of(o) for o in outcomes] == [[page_text(100, 50)], [page_text(120, 50)]]
    assert [s.looped for s in vl.seen if s.width == 120] == [True, False]


def test_a_looping_page_read_alone_raises_its_code_from_recognize(vl):
    vl.loop_size(120, 50)
    engine = engine_for(vl, paddleocr_vl_max_new_tokens=200)

    with pytest.raises(EngineError) as caught:
        engine.recognize(page(120, 50))

    assert caught.value.code == "vl_output_repetitive"
    assert len(vl.seen) == 2


def test_a_looping_block_fails_its_page_with_layout_on(vl):
    # two pages of a text and a table block; the table of the taller page loops
    layout = StandInLayout(
        lambda w, h: [box("text", 10, 10, w - 10, 40), box("table", 10, 50, w - 10, h - 10)]
    )
    vl.loop_size(180, 60)  # the table crop of the 200 x 120 page
    engine = engine_for(vl)
    for pipeline in engine.pipelines:
        install_layout(pipeline, layout)

    first, second = engine.recognize_batch([page(200, 100), page(200, 120)])

    assert isinstance(first, Recognition)
    assert [b.type for b in first.blocks] == ["text", "table"]
    assert isinstance(second, EngineError) and second.code == "vl_output_repetitive"
    table = [s for s in vl.seen if (s.width, s.height) == (180, 60)]
    assert [s.repetition_penalty for s in table] == [None, 1.1]


def test_a_request_that_never_gets_an_answer_ends_within_the_page_limit(vl):
    vl.hang_size(120, 50)
    engine = engine_for(vl, page_timeout_seconds=4, job_timeout_seconds=60)
    started = time.monotonic()

    outcomes = engine.recognize_batch([page(100, 50), page(120, 50), page(140, 50)])

    took = time.monotonic() - started
    vl.clear_faults()
    assert [outcome_of(o) for o in outcomes] == [
        [page_text(100, 50)],
        "vl_server_error",
        [page_text(140, 50)],
    ]
    assert "did not answer this page within 1.55 s, 2 times" in outcomes[1].message
    # the hung page was sent once per attempt, not again for each half of the batch read
    assert [s.width for s in vl.seen].count(120) == VL_REQUEST_RETRIES + 1
    assert [s.width for s in vl.seen].count(100) == 1
    # reported, not asserted as a speed: the attempts' timeouts and the client's backoff
    print(f"hung page failed after {took:.1f} s (PAGE_TIMEOUT_SECONDS=4)")


def test_a_batch_whose_every_request_hangs_costs_one_page_limit_not_one_per_half(vl):
    sizes = [(100 + 10 * n, 50) for n in range(4)]
    for size in sizes:
        vl.hang_size(*size)
    engine = engine_for(vl, page_timeout_seconds=4, job_timeout_seconds=60)
    started = time.monotonic()

    outcomes = engine.recognize_batch([page(*size) for size in sizes])

    took = time.monotonic() - started
    vl.clear_faults()
    assert [outcome_of(o) for o in outcomes] == ["vl_server_error"] * 4
    # paddlex gives up on the call at the first timeout and cancels the others; a request
    # canceled after its whole timeout is taken as hung, so no half of the batch is re-sent
    assert len(vl.seen) == 4 * (VL_REQUEST_RETRIES + 1)
    print(f"4 hung pages failed after {took:.1f} s (PAGE_TIMEOUT_SECONDS=4)")
