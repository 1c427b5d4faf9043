"""Accuracy, reading order and speed on the rendered eval pages and the Russian Debian pages,
per variant of the settings (issue 26).

    .venv/bin/python -m bench.eval_pages                                   # the default variants
    .venv/bin/python -m bench.eval_pages --variant engine:READING_ORDER=engine \\
        --variant geometry:READING_ORDER=geometry                         # any settings
    .venv/bin/python -m bench.eval_pages --per-kind 1 --no-debian --no-write     # quick look

Pages: testkit/eval_pages.py (two-column, form, margin number, small print; English and
Russian; clean, phone photo, fax), saved under var/eval-cache/ as the service receives them and
loaded by worker/pages.py, plus `shared/eval/debian_docs_ru` (16 real Russian pages). Each
variant runs in its own process with its settings in the environment (anything Settings reads:
`KEY=VALUE,KEY=VALUE`), reads every page the way the worker does (EngineRouter with rapidocr
and tesseract, the job's language `en` or `ru`, then worker/page_reading.recognized_result) and
scores the page's text: CER and word F1 (testkit/scoring.py) and the order of its lines
(Kendall's tau of the ground truth's cells as found in the output; a page's order is right when
tau >= 0.95 with half its cells found). pages/s is recognition wall time alone. Results go to
BENCHMARKS.md, section `eval`, unless --no-write.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.report import machine_line, markdown_table, update_section

ROOT = Path(__file__).resolve().parents[1]
# beside the checkout (/work/main -> /work/shared) or beside the worktrees' folder
DEBIAN = next(
    (
        folder
        for up in ROOT.parents[:2]
        if (folder := up / "shared" / "eval" / "debian_docs_ru").is_dir()
    ),
    ROOT.parent / "shared" / "eval" / "debian_docs_ru",
)
GENERATORS = ["testkit/eval_pages.py", "testkit/degrade.py", "testkit/eval_text.py"]
# name: settings; the first is the reference ("today") the others are compared with.
# Each part alone against today, then all of them (the defaults). Squaring a fax's pixels
# (worker/pages.py) is a loader fix with no setting: in every variant.
_PREP_OFF = (
    "OCR_MIN_TEXT_HEIGHT_PX=0,PHOTO_NORMALISE=off,OCR_WORD_FIXES=off,OCR_DESPECKLE=off,"
    "TESSERACT_PHOTO_MIN_TEXT_HEIGHT_PX=0,OCR_BILEVEL_BLUR_PX=0"
)
DEFAULT_VARIANTS = [
    f"today:READING_ORDER=engine,{_PREP_OFF}",
    f"reading-order:{_PREP_OFF},READING_ORDER=geometry",
    f"normalise:READING_ORDER=engine,{_PREP_OFF},PHOTO_NORMALISE=auto",
    f"upscale:READING_ORDER=engine,{_PREP_OFF},OCR_MIN_TEXT_HEIGHT_PX=12",
    f"despeckle:READING_ORDER=engine,{_PREP_OFF},OCR_DESPECKLE=auto",
    f"bilevel-blur:READING_ORDER=engine,{_PREP_OFF},OCR_BILEVEL_BLUR_PX=1",
    "defaults:",
]
LOAD_AT_START = os.getloadavg()[0]


def cache_folder(per_kind: int) -> Path:
    digest = hashlib.sha256(b"".join((ROOT / g).read_bytes() for g in GENERATORS)).hexdigest()
    return ROOT / "var" / "eval-cache" / f"{digest[:12]}-{per_kind}"


def rendered_pages(per_kind: int) -> list[dict]:
    """The generated pages on disk (made once per version of the generators)."""
    from testkit.eval_pages import eval_pages, save

    folder = cache_folder(per_kind)
    index = folder / "index.json"
    if not index.exists():
        entries = []
        for page in eval_pages(per_kind):
            path = save(page, folder)
            entries.append(
                {
                    "name": page.name,
                    "set": f"{page.lang} {page.degradation}",
                    "kind": page.kind,
                    "lang": page.lang,
                    "degradation": page.degradation,
                    "path": str(path),
                    "cells": [cell for line in page.lines for cell in line],
                    "gt": page.gt_text,
                }
            )
        index.write_text(json.dumps(entries, ensure_ascii=False))
    return json.loads(index.read_text())


def debian_pages() -> list[dict]:
    if not (DEBIAN / "img").is_dir():
        sys.exit(f"no {DEBIAN / 'img'}: pass --no-debian")
    pages = []
    for image in sorted((DEBIAN / "img").glob("*.png")):
        gt = (DEBIAN / "gt" / f"{image.stem}.txt").read_text()
        pages.append(
            {
                "name": image.stem,
                "set": "ru debian_docs",
                "kind": "debian",
                "lang": "ru",
                "degradation": "clean",
                "path": str(image),
                "cells": [line for line in gt.splitlines() if line.strip()],
                "gt": gt,
            }
        )
    return pages


def run_pages(pages: list[dict]) -> list[dict]:
    """In this process, with its environment's settings: every page read and scored."""
    from shared.options import Language
    from shared.settings import Settings
    from testkit.eval_pages import MEDIA_TYPES
    from testkit.scoring import order_score, score_page
    from worker.engines import build_engine
    from worker.page_reading import recognized_result
    from worker.pages import Document
    from worker.routing import EngineRouter

    engines = [build_engine(Settings(ocr_engine=name)) for name in ("rapidocr", "tesseract")]
    for engine in engines:
        engine.warm()
    router = EngineRouter(engines)
    rows = []
    for entry in pages:
        path = Path(entry["path"])
        document = Document(path, MEDIA_TYPES[path.suffix], dpi=200)
        page = next(document.pages([1]))
        document.close()
        assert page.image is not None
        started, cpu = time.perf_counter(), time.process_time()
        engine, recognition = router.read(page.image, Language(entry["lang"]))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        text = recognized_result("bench", page, engine.name, recognition).text
        score, order = score_page(entry["gt"], text), order_score(entry["cells"], text)
        rows.append(
            {
                "name": entry["name"],
                "edits": score.edits,
                "ref_chars": score.ref_chars,
                "words_matched": score.words_matched,
                "ref_words": score.ref_words,
                "hyp_words": score.hyp_words,
                "tau": order.tau,
                "order_right": order.right,
                "found": order.found,
                "units": order.units,
                "wall": wall,
                "cpu": cpu,
            }
        )
        print(
            f"  {entry['name']:24} CER {score.cer:6.2%} F1 {score.word_f1:.3f} "
            f"tau {order.tau:+.2f} ({order.found}/{order.units}) {wall:.2f} s",
            file=sys.stderr,
        )
    return rows


def run_variant(spec: str, pages_file: Path) -> tuple[str, dict[str, str], list[dict]]:
    """`name:KEY=VALUE,...` in a child process with those settings in its environment."""
    name, _, assignments = spec.partition(":")
    env = dict(item.split("=", 1) for item in assignments.split(",") if item)
    print(f"variant {name} {env}", file=sys.stderr)
    out = pages_file.with_name(f"rows-{name}.json")
    subprocess.run(
        [sys.executable, "-m", "bench.eval_pages", "--child", str(pages_file), str(out)],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
    )
    return name, env, json.loads(out.read_text())


def summary(rows: list[dict]) -> dict[str, float]:
    if not rows:
        return {"cer": 0.0, "f1": 1.0, "tau": 1.0, "right": 1.0, "pps": 0.0, "cpu": 0.0}
    edits = sum(r["edits"] for r in rows)
    chars = sum(r["ref_chars"] for r in rows)
    matched = sum(r["words_matched"] for r in rows)
    words = sum(r["ref_words"] + r["hyp_words"] for r in rows)
    wall = sum(r["wall"] for r in rows)
    return {
        "cer": edits / chars if chars else 0.0,
        "f1": 2 * matched / words if words else 1.0,
        "tau": sum(r["tau"] for r in rows) / len(rows),
        "right": sum(r["order_right"] for r in rows) / len(rows),
        "pps": len(rows) / wall if wall else 0.0,
        "cpu": sum(r["cpu"] for r in rows) / len(rows),
    }


def report(
    pages: list[dict], runs: list[tuple[str, dict[str, str], list[dict]]], command: str
) -> str:
    sets = list(dict.fromkeys(p["set"] for p in pages))
    set_of = {p["name"]: p["set"] for p in pages}
    kind_of = {p["name"]: p["kind"] for p in pages}
    rows = []
    for name, _, results in runs:
        for each in [*sets, "all"]:
            chosen = [r for r in results if each == "all" or set_of[r["name"]] == each]
            s = summary(chosen)
            rows.append(
                [
                    name,
                    each,
                    len(chosen),
                    f"{s['cer']:.2%}",
                    f"{s['f1']:.3f}",
                    f"{s['tau']:.3f}",
                    f"{s['right']:.0%}",
                    f"{s['pps']:.2f}",
                    f"{s['cpu']:.2f}",
                ]
            )
    kinds = list(dict.fromkeys(p["kind"] for p in pages))
    by_kind = []
    for kind in kinds:
        row = [kind]
        for _, _, results in runs:
            s = summary([r for r in results if kind_of[r["name"]] == kind])
            row.append(f"{s['cer']:.2%} / {s['tau']:.2f}")
        by_kind.append(row)
    targets = []
    reference = {r["name"]: r for r in runs[0][2]}
    for name, _, results in runs:
        worse = [
            r["name"]
            for r in results
            if r["name"].endswith("clean") or kind_of[r["name"]] == "debian"
            if r["edits"] > reference[r["name"]]["edits"]
        ]
        ratios = []
        for lang in ("en", "ru"):
            clean = summary([r for r in results if set_of[r["name"]] == f"{lang} clean"])["cer"]
            for how in ("phone", "fax"):
                bad = [r for r in results if set_of[r["name"]] == f"{lang} {how}"]
                if bad and clean:
                    ratios.append(f"{lang} {how} {summary(bad)['cer'] / clean:.1f}x")
        s, base = summary(results), summary(runs[0][2])
        targets.append(
            [
                name,
                f"{s['right']:.0%}",
                ", ".join(ratios) or "-",
                f"{len(worse)}" + (f" ({', '.join(worse[:4])})" if worse else ""),
                f"{base['cpu'] / s['cpu']:.2f}x" if s["cpu"] else "-",
            ]
        )
    variants = [
        [name, ", ".join(f"`{k}={v}`" for k, v in env.items()) or "(defaults)"]
        for name, env, _ in runs
    ]
    return "\n\n".join(
        [
            "## Eval pages: accuracy, reading order, speed (`python -m bench.eval_pages`)",
            f"Made by `{command}`. Rendered pages of testkit/eval_pages.py (two columns, a form "
            "with key-value rows, a table and a boxed notice, a vertical margin number, 6.5-7 pt "
            "print at 150/100 dpi; English read by rapidocr, Russian by tesseract, as the "
            "service routes `en`/`ru`), clean and degraded like phone photos (700 px wide, tint, "
            "uneven light, blur, skew, JPEG) and faxes (Group 4 TIFF at 204x98 dpi, binarized, "
            "speckle, skew), "
            "and the 16 pages of `shared/eval/debian_docs_ru`. CER and word F1 as in "
            "testkit/scoring.py; tau: Kendall's tau of the ground truth's lines (cells of form "
            "and table rows) as found in the output, mean per page; order right: pages with "
            "tau >= 0.95 and half their cells found. pages/s: recognition wall time only; "
            "CPU s/page: the reading "
            "process's CPU time (all threads), the steadier measure on a shared machine. "
            f"{machine_line()}; load average at the start {LOAD_AT_START:.1f} (other work "
            "shares the machine: times are rough).",
            markdown_table(["variant", "settings"], variants),
            markdown_table(
                [
                    "variant",
                    "set",
                    "pages",
                    "CER",
                    "word F1",
                    "tau",
                    "order right",
                    "pages/s",
                    "CPU s/page",
                ],
                rows,
            ),
            "By kind of page, CER / mean tau:",
            markdown_table(["kind", *[name for name, _, _ in runs]], by_kind),
            "Targets (issue 26): order right on >= 95 % of pages; degraded CER <= 1.5x clean; "
            f"no clean page worse than `{runs[0][0]}` (pages with more edits); pages/s >= 0.8x "
            "(by CPU time):",
            markdown_table(
                [
                    "variant",
                    "order right",
                    "degraded / clean CER",
                    "clean pages worse",
                    "pages per CPU s vs first",
                ],
                targets,
            ),
        ]
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        pages = json.loads(Path(sys.argv[2]).read_text())
        Path(sys.argv[3]).write_text(json.dumps(run_pages(pages)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--variant",
        action="append",
        metavar="NAME:KEY=VALUE,...",
        help="a run with these settings (repeat); default: " + " ".join(DEFAULT_VARIANTS),
    )
    parser.add_argument("--per-kind", type=int, default=1, help="pages per kind and language")
    parser.add_argument("--only", default="", help="only pages whose name contains this")
    parser.add_argument("--no-debian", action="store_true", help="skip debian_docs_ru")
    parser.add_argument("--no-write", action="store_true", help="print only, no BENCHMARKS.md")
    args = parser.parse_args()

    pages = rendered_pages(args.per_kind) + ([] if args.no_debian else debian_pages())
    pages = [p for p in pages if args.only in p["name"]]
    scratch = ROOT / "var" / "bench"
    scratch.mkdir(parents=True, exist_ok=True)
    pages_file = scratch / "eval-pages.json"
    pages_file.write_text(json.dumps(pages, ensure_ascii=False))
    command = "python -m bench.eval_pages " + " ".join(sys.argv[1:])
    runs = []
    for spec in args.variant or DEFAULT_VARIANTS:
        runs.append(run_variant(spec, pages_file))
        body = report(pages, runs, command.strip())
        if not args.no_write:  # after each variant: a long run cut short keeps what it measured
            update_section("eval", body)
    print(body)


if __name__ == "__main__":
    main()
