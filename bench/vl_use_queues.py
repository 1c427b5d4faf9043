"""PaddleOCRVL.predict(list) with use_queues on and off, against a VL server with a latency.

    .venv-paddle/bin/python -m bench.vl_use_queues [--latency 0.3] [--repeat 3]

The real paddleocr/paddlex (scripts/ensure-paddle-venv.sh) against testkit's stand-in VL server
(a fixed time per request, 64 at once); layout on uses the stand-in layout predictor (5 boxes a
page, 4 of them sent to the VL model). Prints the median seconds per predict call for 1, 8 and
24 pages and writes the "vl-use-queues" section of BENCHMARKS.md. It decides the engine's
use_queues (worker/engines/paddleocr_vl.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PADDLE_PDX_CACHE_HOME", str(ROOT / "var" / "bench" / "paddlex"))

from bench.report import machine_line, markdown_table, update_section  # noqa: E402
from shared.settings import Settings  # noqa: E402
from testkit.paddle_layout import StandInLayout, box, install_layout  # noqa: E402
from testkit.vl_server import VlServer  # noqa: E402
from worker.engines.paddleocr_vl import PaddleOcrVlEngine  # noqa: E402

BATCHES = (1, 8, 24)
LAYOUT = StandInLayout(
    lambda w, h: [
        box("doc_title", 50, 50, w - 50, 150),
        box("text", 50, 200, w - 50, 600),
        box("text", 50, 650, w - 50, 1000),
        box("table", 50, 1050, w - 50, 1300),
        box("image", 50, 1310, 300, h - 10),
    ]
)


def pipeline(server: VlServer, layout: bool):
    import numpy as np

    engine = PaddleOcrVlEngine(
        Settings(
            ocr_engine="paddleocr-vl",
            paddleocr_vl_backend="vllm-server",
            paddleocr_vl_server_url=server.url,
            paddleocr_vl_device="cpu",
            paddleocr_vl_layout="off",
        )
    )
    [pipe] = engine.pipelines[:1]
    if layout:
        install_layout(pipe, LAYOUT)
    page = np.full((1400, 1000, 3), 255, np.uint8)
    return pipe, page


def seconds(pipe, pages: list, use_queues: bool, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        results = list(pipe.predict(pages, use_queues=use_queues))
        runs.append(time.perf_counter() - started)
        assert len(results) == len(pages)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.3, help="server seconds per request")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only, no BENCHMARKS.md")
    args = parser.parse_args()
    rows = []
    with VlServer(latency=args.latency, max_concurrency=64) as server:
        for layout in (False, True):
            pipe, page = pipeline(server, layout)
            for n in BATCHES:
                pages = [page] * n
                off = seconds(pipe, pages, False, args.repeat)
                on = seconds(pipe, pages, True, args.repeat)
                rows.append(
                    [
                        "on" if layout else "off",
                        n,
                        n * (4 if layout else 1),
                        f"{off:.2f}",
                        f"{on:.2f}",
                        f"{on - off:+.2f}",
                    ]
                )
                print(rows[-1], flush=True)
    table = markdown_table(
        ["layout", "pages", "VL requests", "use_queues off (s)", "on (s)", "on - off (s)"], rows
    )
    body = (
        "## PaddleOCR-VL: use_queues on or off (`bench/vl_use_queues.py`)\n\n"
        f"{machine_line()}. Real paddleocr 3.7.0 / paddlex 3.7.2 (CPU paddle), one "
        f"`predict(list)` per row, median of {args.repeat}; stand-in VL server answering in "
        f"{args.latency * 1000:.0f} ms, 64 requests at once; layout on = stand-in layout "
        "predictor, 5 boxes a page (4 read by the VL model).\n\n"
        f"{table}\n\n"
        "use_queues on runs the input, layout and VL stages in threads, but its VL stage waits "
        "a fixed 0.5 s (`MAX_QUEUE_DELAY_SECS`) for more pages on every call, and its errors "
        "arrive as a RuntimeError string instead of the OpenAI client's typed errors: the "
        "engine calls `predict(list, use_queues=False)`.\n"
    )
    print(table)
    if not args.no_write:
        update_section("vl-use-queues", body)


if __name__ == "__main__":
    main()
