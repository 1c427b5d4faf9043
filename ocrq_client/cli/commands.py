"""The handlers of `ocrq submit`, `status`, `result`, `cancel` and `usage`: arguments in, exit
code out."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console

from ocrq_client.cli.atomic import write_atomically
from ocrq_client.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from ocrq_client.cli.report import print_failures, print_resume_hint, summary_table, write_report
from ocrq_client.cli.selection import collect_files, read_manifest, skip_existing_results
from ocrq_client.cli.submit import BatchRun, run_batch
from ocrq_client.client import ClientSettings, Job, OcrqClient, is_source_url
from ocrq_client.models import Usage


def _client_settings(args: argparse.Namespace) -> ClientSettings:
    overrides = {
        k: v
        for k, v in {"url": args.url, "api_key": args.api_key, "timeout": args.timeout}.items()
        if v is not None
    }
    return ClientSettings(**overrides)


def cmd_submit(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    out_dir = Path(args.out) if args.out else None
    wait = args.wait or out_dir is not None
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if args.streams < 1:
        raise UsageError("--streams must be at least 1")
    inputs = list(args.inputs)
    for manifest in args.manifest or []:
        inputs.extend(read_manifest(manifest))
    if not inputs:
        raise UsageError("name a folder, file or URL to submit, or --manifest FILE")
    files = collect_files(
        inputs,
        recursive=args.recursive,
        include=args.include,
        out_dir=out_dir,
        fmt=args.format,
    )
    if not files:
        console.print("ocrq: no supported files found (see --include, --recursive)")
        return EXIT_OK
    skip_existing_results(files, retry_failed=args.retry_failed)
    run = BatchRun(
        files, wait=wait, fmt=args.format, concurrency=args.concurrency, streams=args.streams
    )
    run.retry_failed = args.retry_failed
    run.priority = args.priority or default_priority(inputs, len(files))
    live = args.progress if args.progress is not None else console.is_terminal
    started = time.perf_counter()
    run_batch(run, _client_settings(args), console, live)
    wall = time.perf_counter() - started
    console.print(summary_table(run, wall))
    print_failures(console, run)
    if args.report:
        write_report(Path(args.report), run, wall)
    if run.interrupted or run.unreachable or run.refused:
        print_resume_hint(console, run)
        return EXIT_INTERRUPTED if run.interrupted else EXIT_FAILED
    return EXIT_FAILED if run.failed_files() or run.files_with_failed_pages() else EXIT_OK


def default_priority(inputs: list[str], file_count: int) -> str:
    """`batch` for a folder or many files (a flood must not delay someone's single scan),
    `normal` for one file."""
    if file_count > 1 or any(not is_source_url(i) and Path(i).is_dir() for i in inputs):
        return "batch"
    return "normal"


def _print_job(job: Job, as_json: bool) -> None:
    if as_json:
        print(job.model_dump_json(exclude={"replayed"}))
        return
    total = job.progress.pages_total
    rows = [
        ("job", job.job_id),
        ("status", job.status),
        ("pages", f"{job.progress.pages_done}/{total if total is not None else '?'}"),
    ]
    if job.progress.pages_failed:
        rows.append(("failed", f"{job.progress.pages_failed} page(s): see the result's errors"))
    rows += [
        ("created", job.created_at.isoformat()),
        ("started", job.started_at.isoformat() if job.started_at else "-"),
        ("finished", job.finished_at.isoformat() if job.finished_at else "-"),
    ]
    if job.error:
        rows.append(("error", f"{job.error.code}: {job.error.message}"))
    for label, value in rows:
        print(f"{label:<9}{value}")


def cmd_status(args: argparse.Namespace) -> int:
    with OcrqClient(settings=_client_settings(args)) as client:
        _print_job(client.get(args.job), args.json)
    return EXIT_OK


def cmd_result(args: argparse.Namespace) -> int:
    with OcrqClient(settings=_client_settings(args)) as client:
        if args.wait:
            client.wait(args.job)
        data = client.result(args.job, args.format)
    if args.out:
        write_atomically(Path(args.out), data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    with OcrqClient(settings=_client_settings(args)) as client:
        job = client.cancel(args.job)
    print(f"{job.job_id} {job.status}")
    return EXIT_OK


def cmd_usage(args: argparse.Namespace) -> int:
    with OcrqClient(settings=_client_settings(args)) as client:
        usage = client.usage()
    if args.json:
        print(usage.model_dump_json())
    else:
        print(usage_table(usage))
    return EXIT_OK


def usage_table(usage: Usage) -> str:
    """The key, its limits, and a row per UTC day with any use (newest first; today always)."""
    limits = usage.limits

    def limit(value: int | None) -> str:
        return "unlimited" if value is None else str(value)

    lines = [
        f"key        {usage.tenant}",
        f"limits     pages_per_day {limit(limits.pages_per_day)}, max_queued "
        f"{limit(limits.max_queued)}, max_pages_per_job {limit(limits.max_pages_per_job)}",
        f"queued     {usage.queued} job(s) queued or running",
        "",
        f"{'day (UTC)':<12}{'jobs':>6}{'pages in':>10}{'done':>8}{'failed':>8}  engine seconds",
    ]
    days = [d for d in usage.days if d.day == usage.today.day or d.jobs_submitted or d.pages_done]
    days = days or [usage.today]
    for day in sorted(days, key=lambda d: d.day, reverse=True):
        seconds = ", ".join(f"{e} {s:.1f}" for e, s in sorted(day.engine_seconds.items()))
        lines.append(
            f"{day.day.isoformat():<12}{day.jobs_submitted:>6}{day.pages_submitted:>10}"
            f"{day.pages_done:>8}{day.pages_failed:>8}  {seconds or '-'}"
        )
    return "\n".join(lines)
