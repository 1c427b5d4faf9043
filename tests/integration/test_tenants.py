"""Tenants against real API processes, a real worker and the real Redis: three keys (two
unlimited, one with small quotas), quotas at their edges and across an API restart, usage
added up over two API processes, GET /usage, the metrics by name, and the `ocrq` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis

from api.tenants import seconds_to_next_utc_day
from shared.api_keys import owner_fingerprint
from testkit.pages import encode, render_page
from testkit.stack import ROOT, Stack, wait_terminal

pytestmark = pytest.mark.integration

ALPHA = "alpha-key-4c2e9b7d0a13f865"
BETA = "beta-key-9d0e3f7a1b5c2468"  # no name: shown as key-<8 hex>
GAMMA = "gamma-key-1f8b6c3e9a2d7054"
BETA_LABEL = f"key-{(owner_fingerprint(BETA) or '')[:8]}"
KEY_FILE = (
    "# three teams\n"
    f"{ALPHA} name=alpha\n"
    f"{BETA}\n"
    f"{GAMMA} name=gamma pages_per_day=5 max_queued=2 max_pages_per_job=3\n"
)


def pdf(pages: int) -> bytes:
    images = [render_page([(f"Tenant page {n}", 36)], width=700) for n in range(1, pages + 1)]
    return encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=100)


@contextmanager
def client(stack: Stack, key: str | None = None) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=stack.url, timeout=30, headers=headers) as api:
        yield api


def post(api: httpx.Client, pages: int) -> httpx.Response:
    return api.post("/jobs", files={"file": (f"{pages}-pages.pdf", pdf(pages))})


def accepted(api: httpx.Client, pages: int) -> str:
    response = post(api, pages)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def refused(api: httpx.Client, pages: int, limit: str) -> httpx.Response:
    response = post(api, pages)
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert limit in error["message"] and "gamma" in error["message"]
    assert GAMMA not in response.text
    return response


def today_of(api: httpx.Client) -> dict:
    response = api.get("/usage")
    assert response.status_code == 200, response.text
    return response.json()


def key_file(tmp_path: Path) -> str:
    path = tmp_path / "api-keys"
    path.write_text(KEY_FILE)
    return str(path)


def job_dirs(stack: Stack) -> set[str]:
    return (
        {p.name for p in (stack.base / "temp").iterdir()}
        if (stack.base / "temp").exists()
        else set()
    )


def test_quotas_at_their_edges_refuse_whole_leave_nothing_and_survive_a_restart(
    side_stack: Callable[..., Stack], tmp_path: Path, redis_client: redis.Redis
) -> None:
    stack = side_stack(API_KEYS_FILE=key_file(tmp_path), LOG_LEVEL="DEBUG")
    stack.start_api()  # no worker: accepted jobs stay queued
    gamma_owner = owner_fingerprint(GAMMA)

    with client(stack, GAMMA) as gamma:
        first = accepted(gamma, 1)
        # one page over max_pages_per_job: never passes, so no Retry-After
        over = refused(gamma, 4, "max_pages_per_job=3")
        assert "retry-after" not in over.headers
        second = accepted(gamma, 3)  # exactly max_pages_per_job; 4 pages today, 2 queued
        assert refused(gamma, 1, "max_queued=2").headers["retry-after"] == "10"
        assert gamma.delete(f"/jobs/{first}").json()["status"] == "canceled"  # a slot frees
        # 4 + 2 would pass pages_per_day=5: the two-page upload is refused whole, until the
        # next UTC day
        before = datetime.now(UTC)
        daily = refused(gamma, 2, "pages_per_day=5")
        after = datetime.now(UTC)
        retry_after = int(daily.headers["retry-after"])
        assert seconds_to_next_utc_day(after) <= retry_after <= seconds_to_next_utc_day(before)
        midnight = datetime.combine(after.date() + timedelta(days=1), datetime.min.time(), UTC)
        assert abs((after + timedelta(seconds=retry_after)) - midnight) < timedelta(seconds=5)

        # nothing stored, queued or counted for the refusals: the upload folders are the
        # accepted jobs' (the canceled one's upload removed), Redis holds their records only
        assert job_dirs(stack) == {second}
        assert set(redis_client.scan_iter("ocrq:job:*")) == {
            f"ocrq:job:{first}",
            f"ocrq:job:{second}",
        }
        assert redis_client.zrange(f"ocrq:tenant:{gamma_owner}", 0, -1) == [second]
        queues = [k for k in redis_client.scan_iter("ocr.*") if redis_client.type(k) == "list"]
        assert sum(redis_client.llen(q) for q in queues) == 2  # the accepted jobs' messages
        usage = today_of(gamma)["today"]
        assert (usage["jobs_submitted"], usage["pages_submitted"]) == (2, 4)

        third = accepted(gamma, 1)  # 5 of 5: exactly at the limit passes
        assert third

    stack.stop()
    stack.start_api()  # usage and quotas are in Redis: a new API process sees them

    with client(stack, GAMMA) as gamma:
        usage = today_of(gamma)
        assert usage["tenant"] == "gamma"
        assert usage["limits"] == {"pages_per_day": 5, "max_queued": 2, "max_pages_per_job": 3}
        assert usage["queued"] == 2
        assert (usage["today"]["jobs_submitted"], usage["today"]["pages_submitted"]) == (3, 5)
        assert len(usage["days"]) == 31 and usage["days"][-1] == usage["today"]
        refused(gamma, 1, "pages_per_day=5")  # still used up after the restart
    for key, label in ((ALPHA, "alpha"), (BETA, BETA_LABEL)):
        with client(stack, key) as unlimited:
            for _ in range(2):
                accepted(unlimited, 4)  # more than gamma may: these keys have no quotas
            usage = today_of(unlimited)
            assert usage["tenant"] == label
            assert usage["limits"] == {
                "pages_per_day": None,
                "max_queued": None,
                "max_pages_per_job": None,
            }
            assert (usage["today"]["jobs_submitted"], usage["today"]["pages_submitted"]) == (2, 8)
    with client(stack) as anonymous, client(stack, "not-a-key") as wrong:
        assert anonymous.get("/usage").status_code == 401
        assert wrong.get("/usage").json()["error"]["code"] == "unauthorized"
        metrics = anonymous.get("/metrics").text
    assert 'ocrq_tenant_jobs_submitted_total{tenant="gamma"} 3.0' in metrics
    assert 'ocrq_tenant_jobs_submitted_total{tenant="alpha"} 2.0' in metrics
    assert f'ocrq_tenant_jobs_submitted_total{{tenant="{BETA_LABEL}"}} 2.0' in metrics

    # the CLI: the refusal in words, no retry, and submitting stops
    scans = tmp_path / "scans"
    scans.mkdir()
    for n in (1, 2):
        (scans / f"scan-{n}.pdf").write_bytes(pdf(1))
    report = tmp_path / "report.json"
    cli = ocrq(stack, GAMMA, "submit", str(scans), "--report", str(report), "--concurrency", "1")
    assert cli.returncode == 1
    assert "quota_exceeded" in cli.stderr and "not retried" in cli.stderr, cli.stderr
    assert "pages_per_day=5" in cli.stderr and "may pass again: in " in cli.stderr
    written = json.loads(report.read_text())
    assert (written["retries"], written["submitted"], written["not_submitted"]) == (0, 0, 2)
    assert written["quota_exceeded"].startswith("quota_exceeded: the job has 1 page and")
    shown = ocrq(stack, GAMMA, "usage", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["today"]["pages_submitted"] == 5
    table = ocrq(stack, GAMMA, "usage").stdout
    assert "gamma" in table and "pages_per_day 5, max_queued 2, max_pages_per_job 3" in table
    today = datetime.now(UTC).date().isoformat()
    assert any(line.split()[:4] == [today, "3", "5", "0"] for line in table.splitlines()), table

    stack.stop()
    log = (stack.base / "api.log").read_text()
    assert "tenant gamma" in log and "tenant alpha" in log and f"tenant {BETA_LABEL}" in log
    for secret in (ALPHA, BETA, GAMMA):
        assert secret not in log


def ocrq(stack: Stack, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrq_client", *args, "--url", stack.url, "--api-key", key],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "400"},  # rich wraps stderr at the terminal's width
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_usage_adds_up_over_two_api_processes_and_the_worker(
    side_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    keys = key_file(tmp_path)
    one = side_stack(API_KEYS_FILE=keys, OCR_FALLBACK_ENGINES="")  # rapidocr alone
    # a second API process on the same Redis and the same folders (as two API pods share them)
    two = side_stack(
        API_KEYS_FILE=keys,
        TEMP_DIR=str(one.base / "temp"),
        OUTPUT_DIR=str(one.base / "output"),
    )
    one.start_api()
    two.start_api()
    one.start_worker()

    jobs = []
    with client(one, ALPHA) as alpha_one, client(two, ALPHA) as alpha_two:
        jobs += [(alpha_one, accepted(alpha_one, 2)), (alpha_two, accepted(alpha_two, 1))]
        with client(two, BETA) as beta_two:
            jobs.append((beta_two, accepted(beta_two, 1)))
            for api, job_id in jobs:
                assert wait_terminal(api, job_id, timeout=120)["status"] == "succeeded"
        for api in (alpha_one, alpha_two):
            usage = today_of(api)
            today = usage["today"]
            assert usage["tenant"] == "alpha" and usage["queued"] == 0
            assert (today["jobs_submitted"], today["pages_submitted"]) == (2, 3)
            assert (today["pages_done"], today["pages_failed"]) == (3, 0)
            assert set(today["engine_seconds"]) == {"rapidocr"}
            assert today["engine_seconds"]["rapidocr"] > 0
    metrics = httpx.get(f"{two.url}/metrics", timeout=10).text
    assert 'ocrq_tenant_pages_total{outcome="done",tenant="alpha"} 3.0' in metrics
    assert f'ocrq_tenant_pages_total{{outcome="done",tenant="{BETA_LABEL}"}} 1.0' in metrics
    assert 'ocrq_tenant_jobs_submitted_total{tenant="alpha"} 2.0' in metrics


def test_with_auth_off_usage_answers_the_anonymous_totals(
    side_stack: Callable[..., Stack],
) -> None:
    stack = side_stack()
    stack.start_api()
    with client(stack) as api:
        accepted(api, 1)
        accepted(api, 2)
        usage = today_of(api)
        metrics = api.get("/metrics").text
    assert usage["tenant"] == "anonymous"
    assert usage["queued"] == 2
    assert (usage["today"]["jobs_submitted"], usage["today"]["pages_submitted"]) == (2, 3)
    assert usage["limits"] == {"pages_per_day": None, "max_queued": None, "max_pages_per_job": None}
    assert 'ocrq_tenant_jobs_submitted_total{tenant="anonymous"} 2.0' in metrics
