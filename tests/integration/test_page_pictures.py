"""Page pictures (and PDF archives) against a real API process: a 25 KB upload of 100 MP is
drawn within a bounded memory, one render per page, whatever the number of requests at once.

The job is left as a worker leaves a succeeded one (source kept, result written): a real worker
would spend minutes reading 100 MP, and the memory in question is the API's alone. Peak memory
is the API process's VmHWM. On the code before this fix one request took the API from 76 to
612 MB and 12 at once to 6.2 GB (12 PDF archives: 1.4 GB); now 191 and 194 MB (12 PDF
archives: 209 MB). Figures from bench/page_image_memory.py.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from shared.jobs import JobStore, connect_redis
from testkit.page_pictures import many_pixels_png, store_succeeded_job
from testkit.stack import Stack
from tests.conftest import UNIT_REDIS_URL

pytestmark = pytest.mark.integration

# Generous bounds on the API's growth: the decoded 1-bit frame is 100 MB (1 byte a pixel);
# a full RGB copy (4 bytes a pixel) alone is 400 MB, 12 of them 4.8 GB.
ONE_REQUEST_GROWTH_MB = 250
TWELVE_AT_ONCE_GROWTH_MB = 300


def memory_mb(pid: int, field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak since start) of process `pid`, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no {field} for pid {pid}")


@pytest.fixture
def api_only(side_stack: Callable[..., Stack], redis_client) -> tuple[Stack, JobStore]:
    stack = side_stack()
    stack.start_api()
    return stack, JobStore(connect_redis(UNIT_REDIS_URL), 3600)


def _jobs(stack: Stack, store: JobStore, count: int) -> list[str]:
    source = many_pixels_png()
    assert len(source) < 40_000
    out = stack.base / "output"
    return [
        store_succeeded_job(store, stack.base / "temp", out, source, "image/png")
        for _ in range(count)
    ]


def _get_at_once(stack: Stack, urls: list[str]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(urls)) as pool:
        return list(pool.map(lambda url: httpx.get(stack.url + url, timeout=120), urls))


def _assert_pictures(responses: list[httpx.Response]) -> None:
    for response in responses:
        assert response.status_code == 200, response.text
        with Image.open(io.BytesIO(response.content)) as picture:
            assert picture.format == "JPEG" and picture.size == (2000, 2000)


def test_one_picture_of_100_megapixels_stays_within_a_bound(api_only) -> None:
    stack, store = api_only
    (job_id,) = _jobs(stack, store, 1)
    assert stack.api is not None
    before = memory_mb(stack.api.pid, "VmRSS")

    _assert_pictures(_get_at_once(stack, [f"/jobs/{job_id}/pages/1/image"]))

    peak = memory_mb(stack.api.pid, "VmHWM")
    print(f"API RSS before {before:.0f} MB, peak {peak:.0f} MB")
    assert peak - before < ONE_REQUEST_GROWTH_MB


def test_twelve_pictures_at_once_render_one_at_a_time(api_only) -> None:
    stack, store = api_only
    page_jobs = _jobs(stack, store, 12)
    assert stack.api is not None
    before = memory_mb(stack.api.pid, "VmRSS")

    # 12 requests for one page (one render, 11 serve its file), then 12 jobs' pages at once
    same_page = _get_at_once(stack, [f"/jobs/{page_jobs[0]}/pages/1/image"] * 12)
    many_jobs = _get_at_once(stack, [f"/jobs/{job_id}/pages/1/image" for job_id in page_jobs])

    peak = memory_mb(stack.api.pid, "VmHWM")
    print(f"API RSS before {before:.0f} MB, peak {peak:.0f} MB")
    _assert_pictures(same_page + many_jobs)
    assert len({r.content for r in same_page}) == 1
    rendered = (stack.base / "api.log").read_text().count(f"job={page_jobs[0]} rendered page 1")
    assert rendered == 1
    assert peak - before < TWELVE_AT_ONCE_GROWTH_MB


def test_twelve_pdf_archives_at_once_are_made_one_at_a_time(api_only) -> None:
    stack, store = api_only
    jobs = _jobs(stack, store, 12)
    assert stack.api is not None
    before = memory_mb(stack.api.pid, "VmRSS")

    archives = _get_at_once(stack, [f"/jobs/{job_id}/result?format=pdf" for job_id in jobs])

    peak = memory_mb(stack.api.pid, "VmHWM")
    print(f"API RSS before {before:.0f} MB, peak {peak:.0f} MB")
    assert [a.status_code for a in archives] == [200] * 12
    assert all(a.content.startswith(b"%PDF-") for a in archives)
    assert peak - before < TWELVE_AT_ONCE_GROWTH_MB
