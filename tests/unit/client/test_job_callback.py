"""The client's Job reads GET /jobs/{id}'s webhook state, and jobs without it as before."""

from __future__ import annotations

from ocrq_client.client import Job

BASE = {"job_id": "j1", "status": "succeeded", "created_at": "2026-12-02T04:30:00+00:00"}


def test_a_job_with_a_callback_carries_its_delivery_state() -> None:
    job = Job.model_validate(
        {
            **BASE,
            "callback": {
                "url": "https://hooks.example/ocr?...",
                "delivery_id": "j1-1-0",
                "event": "succeeded",
                "attempts": 2,
                "last_attempt_at": "2026-12-02T04:31:00+00:00",
                "last_outcome": "delivered",
                "last_status_code": 200,
                "last_error": None,
                "next_attempt_at": None,
            },
        }
    )

    assert job.callback is not None
    assert (job.callback.last_outcome, job.callback.attempts) == ("delivered", 2)


def test_a_job_without_callback_or_from_an_older_server_parses() -> None:
    assert Job.model_validate({**BASE, "callback": None}).callback is None
    assert Job.model_validate(BASE).callback is None
