from __future__ import annotations

import json
import logging

import pytest

from shared.logs import configure_logging, current_trace_id, job_context


def test_json_lines_carry_the_job_id_of_their_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = logging.getLogger("some.library")
    with job_context("0123abcd"):
        log.info("page %d read", 3)
    log.warning("outside any job")

    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["message"] == "page 3 read" and first["job_id"] == "0123abcd"
    assert first["level"] == "INFO" and first["logger"] == "some.library"
    assert "job_id" not in second
    configure_logging("INFO", "text")


def test_text_lines_name_the_job_when_the_message_does_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "text")
    with job_context("feed"):
        logging.getLogger("celery").info("Task received")
        logging.getLogger("worker").info("job=feed done")

    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("Task received [job=feed]")
    assert lines[1].endswith("job=feed done")  # not repeated


def test_a_job_s_lines_carry_its_trace_id_and_the_next_job_s_do_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "text")
    with job_context("feed"):
        current_trace_id.set("4bf92f3577b34da6a3ce929d0e0e4736")
        logging.getLogger("worker").info("job=feed page 1")
    with job_context("beef"):
        logging.getLogger("worker").info("job=beef page 1")
    configure_logging("INFO", "json")
    with job_context("cafe"):
        current_trace_id.set("0af7651916cd43dd8448eb211c80319c")
        logging.getLogger("worker").info("read")
    configure_logging("INFO", "text")

    first, second, third = capsys.readouterr().err.splitlines()
    assert first.endswith("job=feed page 1 [trace=4bf92f3577b34da6a3ce929d0e0e4736]")
    assert second.endswith("job=beef page 1")
    entry = json.loads(third)
    assert entry["job_id"] == "cafe" and entry["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
