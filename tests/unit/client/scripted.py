"""A scripted transport for the client's tests: answers in order, records requests and sleeps."""

from __future__ import annotations

import httpx

from ocrq_client.client import OcrqClient

JOB_ID = "a" * 32


def job_body(status: str = "queued", **extra: object) -> dict:
    return {
        "job_id": JOB_ID,
        "status": status,
        "created_at": "2026-01-01T00:00:00Z",
        "started_at": None,
        "finished_at": None,
        "progress": {"pages_done": 0, "pages_total": None},
        "error": None,
        "links": {"self": f"/jobs/{JOB_ID}", "result": f"/jobs/{JOB_ID}/result"},
        **extra,
    }


def error(status: int, code: str, **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} happened"}}
    return httpx.Response(status, json=body, headers=headers)


class Script:
    """Answers requests from a list, in order; records every request and every sleep."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, **kwargs: object) -> OcrqClient:
        return OcrqClient(
            "http://ocrq.test",
            transport=httpx.MockTransport(self),
            sleep=self.sleeps.append,
            **kwargs,  # type: ignore[arg-type]
        )
