"""Accuracy and speed on the Russian eval pages, per engine, and of `auto` script detection.

    .venv/bin/python -m bench.eval_ru                       # tesseract + rapidocr + detection
    .venv/bin/python -m bench.eval_ru --service             # ... + the whole service (language=ru)
    .venv/bin/python -m bench.eval_ru --engines tesseract --no-write

Scores (testkit/scoring.py): NFC, whitespace collapsed, CER on the page text joined, word-bag F1.
Pages are fed as the service feeds them: RGB, in the PNG's own dpi. Results go to BENCHMARKS.md,
section `accuracy-ru`, unless --no-write.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from bench.report import machine_line, markdown_table, update_section
from shared.settings import Settings
from testkit.scoring import Score, score_page
from worker.engines import build_engine

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "eval" / "debian_docs_ru"
# English prose present on every Debian system (base-files), for the script-detection pages.
LICENSES = Path("/usr/share/common-licenses")
ENGLISH_TEXTS = ["GPL-2", "Apache-2.0", "GFDL-1.3", "Artistic", "MPL-2.0", "LGPL-2.1", "GPL-3"]
FONTS = Path("/usr/share/fonts/truetype/dejavu")
FONT_NAMES = ["DejaVuSerif", "DejaVuSans", "DejaVuSansMono", "DejaVuSerifCondensed"]
LOAD_AT_START = os.getloadavg()[0]


@dataclass
class EngineRun:
    """One engine over all pages: per-page scores and the time spent recognizing."""

    label: str
    scores: dict[str, Score] = field(default_factory=dict)
    wall: float = 0.0
    cpu: float = 0.0

    @property
    def total(self) -> Score:
        return sum(self.scores.values(), Score(0, 0, 0, 0, 0))

    @property
    def pages_per_second(self) -> float:
        return len(self.scores) / self.wall if self.wall else 0.0


def load_pages(data: Path, limit: int | None) -> list[tuple[str, Path, str]]:
    images = sorted((data / "img").glob("*.png"))[:limit]
    if not images:
        sys.exit(f"no PNG pages in {data / 'img'}: pass --data")
    return [(p.stem, p, (data / "gt" / f"{p.stem}.txt").read_text()) for p in images]


def run_engine(name: str, pages: list[tuple[str, Path, str]]) -> EngineRun:
    engine = build_engine(Settings(ocr_engine=name))
    engine.warm()
    run = EngineRun(f"{name} (direct)")
    for stem, path, truth in pages:
        image = Image.open(path)
        image = image.convert("RGB")  # as worker/pages.py hands pages to the engine
        wall, cpu = time.perf_counter(), time.process_time()
        blocks = engine.recognize(image).blocks
        run.wall += time.perf_counter() - wall
        run.cpu += time.process_time() - cpu
        run.scores[stem] = score_page(truth, "\n".join(b.text for b in blocks))
        print(f"  {name:10} {stem}: CER {run.scores[stem].cer:.2%}", file=sys.stderr)
    return run


def run_service(pages: list[tuple[str, Path, str]], redis_url: str, worker_env: dict) -> EngineRun:
    """The real API and one worker process; every page posted at once with language=ru."""
    import httpx

    from testkit.stack import Stack

    label = "service, language=ru" + "".join(f", {k}={v}" for k, v in worker_env.items())
    run = EngineRun(label)
    with tempfile.TemporaryDirectory(prefix="ocrq-bench-", dir=ROOT / "var") as base:
        stack = Stack(base=Path(base), redis_url=redis_url, extra_env=worker_env)
        try:
            stack.start_api()
            stack.start_worker()
            with httpx.Client(base_url=stack.url, timeout=30) as client:
                started = time.perf_counter()
                jobs = {}
                for stem, path, _ in pages:
                    response = client.post(
                        "/jobs",
                        files={"file": (path.name, path.read_bytes(), "image/png")},
                        data={"language": "ru"},
                    )
                    response.raise_for_status()
                    jobs[stem] = response.json()["job_id"]
                for stem, _, truth in pages:
                    text = _wait_result(client, jobs[stem])
                    run.scores[stem] = score_page(truth, text)
                run.wall = time.perf_counter() - started
        except BaseException:
            print(stack.logs(), file=sys.stderr)
            raise
        finally:
            stack.stop()
    return run


def _wait_result(client, job_id: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/jobs/{job_id}").json()["status"]
        if status == "succeeded":
            return client.get(f"/jobs/{job_id}/result", params={"format": "text"}).text
        if status == "failed":
            raise RuntimeError(f"job {job_id} failed: {client.get(f'/jobs/{job_id}').json()}")
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} not done after {timeout} s")


def english_pages(count: int) -> list[tuple[str, Image.Image]]:
    """A4-at-200-dpi-sized pages of English prose in several fonts and sizes."""
    lines = [
        line.strip()
        for name in ENGLISH_TEXTS
        if (LICENSES / name).is_file()
        for line in (LICENSES / name).read_text().splitlines()
        if len(line.strip()) > 30
    ]
    pages = []
    for i in range(count):
        chunk = lines[i * 60 : i * 60 + 45]
        if len(chunk) < 10:
            break
        font_file = FONTS / f"{FONT_NAMES[i % len(FONT_NAMES)]}.ttf"
        font = ImageFont.truetype(str(font_file), 24 + 2 * i) if font_file.is_file() else None
        image = Image.new("RGB", (1654, 2339), "white")
        draw = ImageDraw.Draw(image)
        y = 150
        for line in chunk:
            if y > 2150:
                break
            draw.text((150, y), line[:70], fill="black", font=font)
            y += int((24 + 2 * i) * 1.5)
        pages.append((f"en_{i}_{font_file.stem}", image))
    return pages


def run_script_detection(pages: list[tuple[str, Path, str]]) -> tuple[str, list[list[object]]]:
    """The `auto` rule per page (worker/routing.py): rapidocr's read density, and the decision."""
    from worker.routing import (
        UNREAD_SCRIPT_DENSITY,
        line_densities,
        read_density,
        unread_script_suspected,
    )

    engine = build_engine(Settings(ocr_engine="rapidocr"))
    engine.warm()
    cases = [(stem, Image.open(path).convert("RGB"), "cyrillic") for stem, path, _ in pages]
    cases += [(stem, image, "latin") for stem, image in english_pages(8)]
    rows, right = [], 0
    for stem, image, expected in cases:
        recognition = engine.recognize(image)
        density, lines = read_density(recognition), line_densities(recognition)
        starved = sum(1 for d in lines if d < UNREAD_SCRIPT_DENSITY) / len(lines) if lines else 0
        got = "cyrillic" if unread_script_suspected(recognition) else "latin"
        right += got == expected
        median = f"{density:.2f}" if density is not None else "-"
        rows.append([stem, expected, got, median, f"{starved:.0%}"])
    summary = (
        f"`auto` routing: {right}/{len(cases)} pages sent to the right engine (re-read when the "
        f"median line density is below {UNREAD_SCRIPT_DENSITY} characters per unit of line "
        "aspect, or 40 % of lines are); no extra pass on Latin pages"
    )
    return summary, rows


def report(runs: list[EngineRun], detection: tuple[str, list[list[object]]] | None) -> str:
    overall = [
        [
            run.label,
            f"{run.total.cer:.2%}",
            f"{run.total.word_f1:.3f}",
            f"{run.pages_per_second:.3f}",
            f"{run.cpu / len(run.scores):.2f}" if run.cpu else "-",
        ]
        for run in runs
    ]
    stems = list(runs[0].scores)
    per_page = [
        [stem, *[f"{r.scores[stem].cer:.2%} / {r.scores[stem].word_f1:.3f}" for r in runs]]
        for stem in stems
    ]
    parts = [
        "## Russian pages: accuracy (`python -m bench.eval_ru`)",
        f"{len(stems)} pages of `shared/eval/debian_docs_ru` (Debian manuals, 200 dpi). "
        "CER on the NFC, whitespace-collapsed page text; word-bag F1. pages/s is wall time of "
        "recognition alone (direct) or from the first upload to the last result (service); "
        f"CPU s/page is this process's CPU time. {machine_line()}; load average at the start "
        f"{LOAD_AT_START:.1f} (other work shares the machine: times are rough).",
        markdown_table(["engine", "CER", "word F1", "pages/s", "CPU s/page"], overall),
        "Per page, CER / word F1:",
        markdown_table(["page", *[r.label for r in runs]], per_page),
    ]
    if detection:
        summary, rows = detection
        parts += [
            summary + ".",
            markdown_table(
                ["page", "expected", "routed as", "median read density", "lines below"], rows
            ),
        ]
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--engines", default="tesseract,rapidocr")
    parser.add_argument("--pages", type=int, default=None, help="only the first N pages")
    parser.add_argument("--service", action="store_true", help="also through API + worker")
    parser.add_argument(
        "--service-env",
        action="append",
        default=["OCR_ENGINE=tesseract"],
        metavar="KEY=VALUE",
        help="environment of the service's worker (default OCR_ENGINE=tesseract)",
    )
    parser.add_argument(
        "--redis-url",
        default=f"redis://127.0.0.1:6379/{os.environ.get('OCRQ_TEST_STACK_DB', '15')}",
    )
    parser.add_argument("--no-detect", action="store_true", help="skip the `auto` routing check")
    parser.add_argument("--no-write", action="store_true", help="print only, no BENCHMARKS.md")
    args = parser.parse_args()

    pages = load_pages(args.data, args.pages)
    runs = [run_engine(name, pages) for name in args.engines.split(",") if name]
    if args.service:
        (ROOT / "var").mkdir(exist_ok=True)
        env = dict(item.split("=", 1) for item in args.service_env)
        runs.append(run_service(pages, args.redis_url, env))
    detection = None if args.no_detect else run_script_detection(pages)
    body = report(runs, detection)
    print(body)
    if not args.no_write:
        update_section("accuracy-ru", body)


if __name__ == "__main__":
    main()
