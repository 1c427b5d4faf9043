"""Update one named section of BENCHMARKS.md, leaving the other benchmarks' sections alone."""

from __future__ import annotations

import json
import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEach section is rewritten by the script named in it; see `bench/`.\n"


def machine_line() -> str:
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


def update_section(name: str, body: str, path: Path = BENCHMARKS) -> None:
    """Replace the text between `<!-- bench:name -->` markers (appending the section if new)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def labelled_runs(name: str, label: str, run: dict, labels: tuple[str, ...]) -> dict[str, dict]:
    """Keep `run` as var/bench/<name>-<label>.json; every label's run kept so far (a section
    that compares code before and after a fix shows both, each measured by its own run)."""
    scratch = BENCHMARKS.parent / "var" / "bench"
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / f"{name}-{label}.json").write_text(json.dumps(run, indent=1))
    return {
        each: json.loads(path.read_text())
        for each in labels
        if (path := scratch / f"{name}-{each}.json").exists()
    }
