"""Queue names by engine and priority: what the API sends to and what a worker consumes."""

from __future__ import annotations

import pytest

from shared.jobs.queues import (
    ahead_of,
    all_queues,
    engine_of,
    priority_of,
    queue_name,
    worker_queues,
)
from shared.options import Engine, JobOptions, Priority, parse_options
from shared.queue import make_celery
from shared.settings import Settings
from worker.engines import ENGINES


def test_a_queue_is_named_for_its_engine_and_priority() -> None:
    assert queue_name(Engine.rapidocr, Priority.high) == "ocr.rapidocr.high"
    assert queue_name("paddleocr-vl", "batch") == "ocr.paddleocr-vl.batch"
    assert engine_of("ocr.tesseract.normal") is Engine.tesseract
    assert priority_of("ocr.tesseract.normal") is Priority.normal
    assert (engine_of("ocr"), priority_of("ocr")) == (None, None)  # no queue of the protocol


def test_a_worker_takes_its_engines_queues_highest_first() -> None:
    assert worker_queues("rapidocr") == [
        "ocr.rapidocr.high",
        "ocr.rapidocr.normal",
        "ocr.rapidocr.batch",
    ]


def test_every_queue_is_listed_once_and_every_worker_engine_has_its_own() -> None:
    queues = all_queues()
    assert len(queues) == len(set(queues)) == len(Engine) * len(Priority)
    # the engine kinds of the protocol are exactly the worker's engine registry
    assert {e.value for e in Engine} == set(ENGINES)


@pytest.mark.parametrize(
    ("priority", "counted"),
    [
        (Priority.high, {"high"}),
        (Priority.normal, {"high", "normal"}),
        (Priority.batch, {"high", "normal", "batch"}),
    ],
)
def test_back_pressure_counts_the_queues_at_or_above_a_priority(
    priority: Priority, counted: set[str]
) -> None:
    ahead = ahead_of(priority)
    assert {(p.value if (p := priority_of(q)) else "none") for q in ahead} == counted
    assert all(queue_name(e, priority) in ahead for e in Engine)


def test_priority_and_engine_are_options_with_defaults() -> None:
    assert JobOptions().priority is Priority.normal and JobOptions().engine is None
    options = parse_options({"priority": "batch", "engine": "tesseract"})
    assert (options.priority, options.engine) == (Priority.batch, Engine.tesseract)


def test_a_bad_priority_or_unknown_field_names_the_accepted_ones() -> None:
    with pytest.raises(Exception, match="priority: Input should be 'high', 'normal' or 'batch'"):
        parse_options({"priority": "urgent"})
    with pytest.raises(Exception, match=r"accepted: file, pages, .*priority, engine"):
        parse_options({"colour": "red"})


def test_the_broker_keeps_queue_order() -> None:
    """kombu's Redis transport: 'priority' keeps BRPOP's key order (round_robin rotates)."""
    app = make_celery(Settings(redis_url="redis://127.0.0.1:1/0"))
    assert app.conf.broker_transport_options["queue_order_strategy"] == "priority"
