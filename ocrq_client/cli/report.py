"""The end of a batch: the summary table, the failures, the resume hint, the --report JSON."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ocrq_client.cli.atomic import write_atomically
from ocrq_client.cli.submit import BatchRun

FAILURES_SHOWN = 50


def summary_table(run: BatchRun, wall: float) -> Table:
    counts = run.counts()
    table = Table(title="ocrq submit", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows: list[tuple[str, object]] = [
        ("files", len(run.files)),
        ("submitted", f"{counts['submitted']} new, {counts['reused']} already known"),
        ("skipped (result exists)", counts["skipped"]),
        ("succeeded", counts["succeeded"] - counts["with_failed_pages"]),
        (
            "with failed pages",
            f"{counts['with_failed_pages']} ({counts['pages_failed']} pages)",
        ),
        ("failed", counts["failed"] + counts["canceled"]),
    ]
    if not run.wait or run.interrupted or run.unreachable or run.refused:
        rows.append(("queued or running", counts["queued"] + counts["running"]))
    if counts["pending"]:
        rows.append(("not submitted", counts["pending"]))
    rows += [
        ("pages", counts["pages"]),
        ("wall time", f"{wall:.1f} s"),
    ]
    if run.retries:
        rows.append(("retries (backoff)", run.retries))
    for label, value in rows:
        table.add_row(label, str(value))
    return table


def print_failures(console: Console, run: BatchRun) -> None:
    """The first failures with their reasons, then the files with failed pages; --report has
    all of them."""
    failed = run.failed_files()
    for f in failed[:FAILURES_SHOWN]:
        console.print(f"[red]failed[/red] {escape(f.name)}: {escape(f.error or '')}")
    if len(failed) > FAILURES_SHOWN:
        console.print(f"... and {len(failed) - FAILURES_SHOWN} more (see --report)")
    partial = run.files_with_failed_pages()
    for f in partial[:FAILURES_SHOWN]:
        pages = "; ".join(f.page_errors) or "see its result"
        console.print(
            f"[yellow]pages failed[/yellow] {escape(f.name)}: {f.pages_failed} of {f.pages} "
            f"page(s) could not be read ({escape(pages)})",
            highlight=False,
        )
    if len(partial) > FAILURES_SHOWN:
        console.print(f"... and {len(partial) - FAILURES_SHOWN} more (see --report)")
    if partial and not run.retry_failed:
        console.print("(--retry-failed submits files with failed pages again, whole)")


def print_resume_hint(console: Console, run: BatchRun) -> None:
    """After Ctrl-C or a lost service: what is left, and the command that picks it up."""
    counts = run.counts()
    why = f"The service stopped answering ({escape(run.unreachable)})" if run.unreachable else ""
    if run.refused:
        why = f"The API key's quota stopped the run ({escape(run.refused)})"
    console.print(
        f"[yellow]{why or 'Interrupted'}:[/yellow] {counts['pending']} file(s) not submitted, "
        f"{counts['queued'] + counts['running']} job(s) still queued or running on the "
        "service (they go on). Run the same command again to resume: results already "
        "downloaded are skipped and files the service has seen get their job back "
        "instead of a new one:\n  " + escape(shlex.join(["ocrq", *sys.argv[1:]])),
        highlight=False,
    )


def write_report(path: Path, run: BatchRun, wall: float) -> None:
    counts = run.counts()
    report = {
        **{k: counts[k] for k in ("skipped", "failed", "canceled", "pages", "pages_failed")},
        "succeeded": counts["succeeded"] - counts["with_failed_pages"],  # every page read
        "with_failed_pages": counts["with_failed_pages"],
        "files": len(run.files),
        "submitted": counts["submitted"],
        "reused": counts["reused"],
        "not_submitted": counts["pending"],
        "unfinished": counts["queued"] + counts["running"],
        "retries": run.retries,
        "interrupted": run.interrupted,
        "unreachable": run.unreachable,
        "quota_exceeded": run.refused,
        "wall_seconds": round(wall, 3),
        "items": [
            {k: str(v) if isinstance(v, Path) else v for k, v in asdict(f).items()}
            for f in run.files
        ],
    }
    write_atomically(path, json.dumps(report, indent=1).encode())
