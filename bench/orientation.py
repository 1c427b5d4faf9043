"""Page orientation of rapidocr's engine on the Russian eval pages and rotated English pages.

    .venv/bin/python -m bench.orientation [--english 2] [--russian 16]

Per page: the rotation page_rotation found and the one wanted, the CPU seconds of the first
pass and of the orientation check, and for English pages the CER of recognize() after turning.
CPU is process time (all of onnxruntime's threads). Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import io
import time

from PIL import Image

from bench.pages import english_pages, russian_pages
from bench.report import markdown_table
from shared.settings import Settings
from testkit.scoring import score_page
from worker.engines.rapidocr_engine import RapidOcrEngine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--english", type=int, default=2, help="English pages, 4 turns each")
    parser.add_argument("--russian", type=int, default=16, help="Russian eval pages (upright)")
    args = parser.parse_args()
    engine = RapidOcrEngine(Settings())
    engine.warm()
    cases: list[tuple[str, Image.Image, int, str | None]] = []
    for page in russian_pages(args.russian) if args.russian else []:
        cases.append((page.name, Image.open(io.BytesIO(page.png)).convert("RGB"), 0, None))
    for page in english_pages(args.english):
        upright = Image.open(io.BytesIO(page.png)).convert("RGB")
        for angle in (0, 90, 180, 270):
            turned = upright.rotate(angle, expand=True)
            cases.append((f"{page.name} turned {angle}", turned, (360 - angle) % 360, page.truth))
    rows, wrong, check_cpu = [], 0, []
    for name, image, wanted, truth in cases:
        started = time.process_time()
        first = engine.read_as_given(image)
        first_cpu = time.process_time() - started
        started = time.process_time()
        rotation = engine.page_rotation(image, first)
        check = time.process_time() - started
        if wanted == 0:
            check_cpu.append(check)
        wrong += rotation != wanted
        cer = ""
        if truth is not None:
            text = "\n".join(b.text for b in engine.turn_upright(image, first).blocks)
            cer = f"{100 * score_page(truth, text).cer:.1f}%"
        row = [name, wanted, rotation, "ok" if rotation == wanted else "WRONG"]
        rows.append([*row, f"{first_cpu:.2f}", f"{check:.3f}", cer])
        print(" | ".join(str(v) for v in rows[-1]), flush=True)
    header = ["page", "wanted", "found", "", "first pass CPU s", "check CPU s", "CER after"]
    print(markdown_table(header, rows))
    print(
        f"wrong: {wrong} of {len(cases)}; check CPU on upright pages: mean "
        f"{sum(check_cpu) / max(len(check_cpu), 1):.3f} s, max {max(check_cpu, default=0):.3f} s"
    )


if __name__ == "__main__":
    main()
