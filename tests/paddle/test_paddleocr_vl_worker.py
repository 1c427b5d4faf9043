"""A real worker process on the real paddleocr engine (vllm-server backend, layout off, CPU)
and the real API, both run by .venv-paddle's python, against Redis and testkit's VL server."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from PIL import Image

pytest.importorskip(
    "paddleocr", reason="real-library tests: run in .venv-paddle (make test-paddle)"
)

from testkit.stack import Stack, wait_terminal
from testkit.vl_server import VlServer, page_text
from tests.integration.conftest import INTEGRATION_REDIS_URL

pytestmark = pytest.mark.integration
MODEL = "PaddleOCR-VL-1.6-0.9B"


def vl_env(server: VlServer, **extra: str) -> dict[str, str]:
    return {
        "OCR_ENGINE": "paddleocr-vl",
        "OCR_FALLBACK_ENGINES": "",  # .venv-paddle has no tesseract
        "PADDLEOCR_VL_BACKEND": "vllm-server",
        "PADDLEOCR_VL_SERVER_URL": server.url,
        "PADDLEOCR_VL_DEVICE": "cpu",
        "PADDLEOCR_VL_LAYOUT": "off",
        **extra,
    }


@pytest.fixture
def vl() -> Iterator[VlServer]:
    with VlServer(model=MODEL) as server:
        yield server


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    redis.Redis.from_url(INTEGRATION_REDIS_URL).flushdb()
    made: list[Stack] = []

    def make(env: dict[str, str]) -> Stack:
        base = tmp_path / f"stack-{len(made)}"
        base.mkdir()
        made.append(Stack(base=base, redis_url=INTEGRATION_REDIS_URL, extra_env=env))
        return made[-1]

    try:
        yield make
    finally:
        for stack in made:
            stack.stop()


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buf, format="PNG")
    return buf.getvalue()


def test_a_job_runs_through_a_real_paddleocr_vl_worker(vl, make_stack):
    stack = make_stack(vl_env(vl))
    stack.start_api()
    stack.start_worker()
    with httpx.Client(base_url=stack.url, timeout=10) as api:
        job_id = api.post("/jobs", files={"file": ("page.png", png(640, 480))}).json()["job_id"]
        final = wait_terminal(api, job_id)
        document = api.get(f"/jobs/{job_id}/result").json()
        ready = api.get("/ready").json()

    assert final["status"] == "succeeded", (final, stack.logs())
    assert document["engine"] == "paddleocr-vl"
    [page] = document["pages"]
    assert [(b["type"], b["text"]) for b in page["blocks"]] == [("text", page_text(640, 480))]
    # warm-up page, then the job's page, each as one whole-page request
    assert [(s.width, s.height, s.prompt) for s in vl.seen] == [
        (800, 320, "OCR:"),
        (640, 480, "OCR:"),
    ]
    assert "HTTP Request" not in stack.logs()  # no log line per VL request
    [worker] = ready["worker_details"]
    assert worker["device"] == f"server:{vl.url}"


@pytest.mark.parametrize("served", [None, "PaddleOCR-VL-0.9B"])
def test_worker_refuses_to_start_without_its_vl_model(vl, make_stack, served):
    if served is None:
        vl.stop()  # nothing listens
    else:
        vl.model = served
    stack = make_stack(vl_env(vl))

    worker = stack.start_worker(wait_warm=False)

    assert worker.wait(timeout=120) == 3
    log = stack.logs()
    assert "cannot start: engine paddleocr-vl: engine_init_failed: VL server" in log
    assert vl.url in log
    assert MODEL in log
    if served is not None:
        assert f"serves ['{served}'], not {MODEL}" in log


def test_an_image_block_s_crop_is_served_where_the_markdown_links_it(vl, make_stack):
    """Layout on in a worker process: testkit's sitecustomize gives the worker's real pipeline
    the stand-in layout predictor (text box over the top half, image box below)."""
    site = Path(__file__).resolve().parents[2] / "testkit" / "standin_layout_site"
    stack = make_stack(vl_env(vl, PYTHONPATH=str(site), OCRQ_TEST_STANDIN_LAYOUT="1"))
    stack.start_api()
    stack.start_worker()
    image = Image.new("RGB", (640, 480), "white")
    image.paste((30, 30, 200), (160, 250, 480, 470))  # the image box: blue
    upload = io.BytesIO()
    image.save(upload, format="PNG")
    with httpx.Client(base_url=stack.url, timeout=10) as api:
        job_id = api.post("/jobs", files={"file": ("page.png", upload.getvalue())}).json()["job_id"]
        final = wait_terminal(api, job_id)
        document = api.get(f"/jobs/{job_id}/result").json()
        markdown = api.get(f"/jobs/{job_id}/result", params={"format": "markdown"}).text
        name = "p1-img_in_image_box_160_250_480_470.jpg"
        link = f"/jobs/{job_id}/images/{name}"
        crop = api.get(link)
        missing = api.get(f"/jobs/{job_id}/images/p2-img_in_image_box_160_250_480_470.jpg")

    assert final["status"] == "succeeded", (final, stack.logs())
    [page] = document["pages"]
    assert [b["type"] for b in page["blocks"]] == ["text", "figure"]
    assert f'<img src="{link}"' in page["markdown"]
    assert f'<img src="{link}"' in markdown
    assert (crop.status_code, crop.headers["content-type"]) == (200, "image/jpeg")
    served = Image.open(io.BytesIO(crop.content)).convert("RGB")
    assert served.size == (320, 220)
    red, green, blue = served.getpixel((160, 110))
    assert blue > 150 and red < 80 and green < 80
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "image_not_found")
    stored = stack.base / "output" / job_id / "images"
    assert [p.name for p in stored.iterdir()] == [name]
