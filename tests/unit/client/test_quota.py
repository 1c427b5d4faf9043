"""429 quota_exceeded: the client raises at once (no retry storm), `ocrq` says it in words."""

from __future__ import annotations

import httpx
import pytest

from ocrq_client import ApiError, QuotaExceeded
from ocrq_client.cli.commands import usage_table
from ocrq_client.cli.errors import describe
from ocrq_client.models import Usage
from tests.unit.client.scripted import Script, error


def test_quota_exceeded_is_raised_at_once_never_retried() -> None:
    script = Script(error(429, "quota_exceeded", **{"Retry-After": "7260"}))

    with pytest.raises(QuotaExceeded) as raised:
        script.client().submit(b"\x89PNG", filename="a.png")

    assert len(script.requests) == 1 and script.sleeps == []
    assert isinstance(raised.value, ApiError) and raised.value.status_code == 429
    assert raised.value.retry_after == 7260
    assert describe(raised.value) == (
        "quota_exceeded: quota_exceeded happened (not retried; it may pass again: in 2 h 1 min)"
    )


def test_a_job_that_never_passes_says_so() -> None:
    script = Script(error(429, "quota_exceeded"))  # max_pages_per_job: no Retry-After
    with pytest.raises(QuotaExceeded) as raised:
        script.client().submit(b"x", filename="x")
    assert describe(raised.value).endswith("(not retried; it may pass again: never, for this job)")


def test_usage_is_read_and_printed_as_a_table() -> None:
    day = {"jobs_submitted": 0, "pages_submitted": 0, "pages_done": 0, "pages_failed": 0}
    today = {
        "day": "2026-12-06",
        "jobs_submitted": 3,
        "pages_submitted": 7,
        "pages_done": 6,
        "pages_failed": 1,
        "engine_seconds": {"rapidocr": 4.25, "tesseract": 1.0},
    }
    body = {
        "tenant": "scans",
        "limits": {"pages_per_day": 5000, "max_queued": None, "max_pages_per_job": None},
        "queued": 1,
        "today": today,
        "days": [
            {**day, "day": "2026-12-04", "engine_seconds": {}},
            {**day, "day": "2026-12-05", "jobs_submitted": 1, "engine_seconds": {}},
            today,
        ],
    }
    script = Script(httpx.Response(200, json=body))

    usage = script.client().usage()

    assert script.requests[0].url.path == "/usage"
    assert isinstance(usage, Usage) and usage.today.pages_done == 6
    lines = usage_table(usage).splitlines()
    assert lines[0].split() == ["key", "scans"]
    assert "pages_per_day 5000, max_queued unlimited" in lines[1]
    assert lines[5].split() == [
        "2026-12-06",
        "3",
        "7",
        "6",
        "1",
        "rapidocr",
        "4.2,",
        "tesseract",
        "1.0",
    ]
    assert lines[6].split()[:2] == ["2026-12-05", "1"]
    assert len(lines) == 7  # a day without any use is left out
