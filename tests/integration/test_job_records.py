"""A job's record, upload and results against the real stack when time or the disk runs out:
records outlive slow jobs, a record or upload that vanishes is a 404 or input_missing (never a
500), nothing a person may need is deleted, and a full OUTPUT_DIR fails the job cleanly."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import redis

from testkit.pages import encode, normalize_lines, render_page
from testkit.stack import Stack, wait_terminal
from tests.fulldisk import fill, small_tmpfs
from tests.integration.conftest import REPORT_PAGES, files_under, report_pdf, wait_running

pytestmark = pytest.mark.integration

GONE = "record is gone (expired or Redis lost it); stopping without touching its files"


def _png(text: str) -> bytes:
    return encode(render_page([(text, 30)], width=500))


def _submit(api: httpx.Client, data: bytes, name: str) -> str:
    response = api.post("/jobs", files={"file": (name, data)})
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def _wait_log(stack: Stack, needle: str, timeout: float = 60) -> str:
    log = stack.base / "test-worker-0.log"
    stack.wait_for(lambda: needle in log.read_text(), timeout=timeout)
    return log.read_text()


def test_jobs_longer_than_the_ttl_succeed_and_expire_from_their_end(
    side_stack: Callable[..., Stack],
) -> None:
    stack = side_stack(JOB_TTL_SECONDS="2")
    stack.start_api()
    stack.start_worker()
    db = redis.Redis.from_url(stack.redis_url)
    with httpx.Client(base_url=stack.url, timeout=10) as api:
        long_job = _submit(api, report_pdf(), "report.pdf")  # 4 pages: longer than 2 s
        waiting = _submit(api, _png("Waited in the queue 77"), "a.png")  # queued behind it
        wait_running(api, long_job, 1)
        assert db.ttl(f"ocrq:job:{long_job}") == -1  # running: no TTL
        assert db.ttl(f"ocrq:job:{waiting}") == -1  # queued: no TTL

        done = wait_terminal(api, long_job, timeout=120)
        assert done["status"] == "succeeded", done
        assert wait_terminal(api, waiting, timeout=60)["status"] == "succeeded"
        document = api.get(f"/jobs/{long_job}/result").json()
        assert [normalize_lines(p["text"]) for p in document["pages"]] == [
            [t for t, _ in page] for page in REPORT_PAGES
        ]
        text = api.get(f"/jobs/{waiting}/result", params={"format": "text"}).text
        assert text.strip() == "Waited in the queue 77"
        assert 0 < db.ttl(f"ocrq:job:{waiting}") <= 2  # retention counts from the end

        stack.wait_for(lambda: api.get(f"/jobs/{waiting}").status_code == 404, timeout=10)
    assert "canceled" not in (stack.base / "test-worker-0.log").read_text()


def test_a_lost_record_is_404_everywhere_and_a_lost_upload_fails_input_missing(
    side_stack: Callable[..., Stack],
) -> None:
    stack = side_stack()
    stack.start_api()
    temp = stack.base / "temp"
    db = redis.Redis.from_url(stack.redis_url)
    with httpx.Client(base_url=stack.url, timeout=10) as api:
        lost_upload = _submit(api, _png("Never read"), "a.png")
        (temp / lost_upload / "input").unlink()  # before any worker took it
        stack.start_worker()
        job = wait_terminal(api, lost_upload, timeout=60)
        assert job["status"] == "failed"
        assert job["error"] == {"code": "input_missing", "message": "the uploaded file is gone"}

        running = _submit(api, report_pdf(), "report.pdf")
        queued = _submit(api, _png("Behind the report"), "b.png")
        wait_running(api, running, 1)
        db.delete(f"ocrq:job:{running}", f"ocrq:job:{queued}")  # as a Redis restart would
        log = _wait_log(stack, f"job={queued} ")  # the worker has dealt with both

        for job_id in (running, queued):
            for response in (
                api.get(f"/jobs/{job_id}"),
                api.get(f"/jobs/{job_id}/result"),
                api.delete(f"/jobs/{job_id}"),
            ):
                assert response.status_code == 404, response.text
                assert response.json()["error"]["code"] == "job_not_found"
            assert f"job={job_id} {GONE}" in log
            assert (temp / job_id / "input").is_file()  # nothing deleted
            assert not db.exists(f"ocrq:job:{job_id}")  # nothing recreated
        assert "canceled" not in log

        after = _submit(api, _png("Still working 5"), "c.png")
        assert wait_terminal(api, after, timeout=60)["status"] == "succeeded"
    assert stack.workers[0].poll() is None


def test_a_full_output_dir_fails_insufficient_storage_and_leaves_nothing(
    side_stack: Callable[..., Stack],
) -> None:
    stack = side_stack()
    with small_tmpfs(stack.base / "output", size="512k") as output:
        stack.start_api()
        stack.start_worker()
        filler = fill(output)
        with httpx.Client(base_url=stack.url, timeout=10) as api:
            job_id = _submit(api, report_pdf(), "report.pdf")
            job = wait_terminal(api, job_id, timeout=120)
            assert job["status"] == "failed", job
            assert job["error"] == {
                "code": "insufficient_storage",
                "message": "the result cannot be stored: No space left on device",
            }
            assert files_under(output) == [filler]  # no partial result, no temp file
            assert not (stack.base / "temp" / job_id).exists()  # nor the upload

            filler.unlink()  # room again: the same worker goes on
            again = _submit(api, _png("Room again 12"), "a.png")
            assert wait_terminal(api, again, timeout=60)["status"] == "succeeded"
            assert api.get(f"/jobs/{again}/result", params={"format": "text"}).text.strip() == (
                "Room again 12"
            )
        assert stack.workers[0].poll() is None
