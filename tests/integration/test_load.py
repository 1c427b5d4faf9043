"""A small soak in the suite (testkit/soak.py; bench/soak.py runs it at scale): 200 jobs from 20
concurrent clients through the real API and worker; every job accounted for, none run twice,
the API's memory flat."""

from __future__ import annotations

import asyncio

import pytest

from testkit.soak import run_soak
from testkit.stack import Stack
from tests.integration.conftest import INTEGRATION_REDIS_URL

pytestmark = pytest.mark.integration


def test_200_jobs_from_20_clients_none_lost_none_twice(stack: Stack) -> None:
    assert stack.api is not None
    report = asyncio.run(
        run_soak(
            stack.url,
            stack.api.pid,
            INTEGRATION_REDIS_URL,
            stack.base / "output",
            jobs=200,
            clients=20,
            deadline_seconds=240,
        )
    )

    assert report.problems == []
    assert (report.submitted, report.succeeded, report.refused) == (200, 200, 0)
    assert report.all_terminal
    assert report.lost == 0 and report.duplicated == 0 and report.mismatched == 0
    assert report.rss_mb["end"] - report.rss_mb["start"] < 50, report.rss_mb
    assert all(w.poll() is None for w in stack.workers) and stack.api.poll() is None
