"""`ocrq`: the command line of the OCR service, for batch scripts and people.

    ocrq submit scans/ --recursive --out results/ --format text   # a whole tree; re-run resumes
    ocrq status JOB      ocrq result JOB --format markdown      ocrq cancel JOB

`submit` is safe to run again: files whose result already exists under --out are skipped, and
every upload carries the SHA-256 of the file as Idempotency-Key, so a file the service already
has a job for gets that job back instead of a second one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared import __version__
from shared.client import (
    FORMATS,
    ApiError,
    AsyncOcrqClient,
    ClientSettings,
    ConnectionFailed,
    Job,
    OcrqClient,
    OcrqError,
    RetryEvent,
    file_idempotency_key,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# What the API accepts (it sniffs the bytes; this only picks files out of folders).
SUPPORTED_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".pdf"})
RESULT_SUFFIXES = {"json": ".json", "markdown": ".md", "text": ".txt"}
POLL_MIN, POLL_MAX = 0.3, 2.0


class UsageError(Exception):
    """A bad command line or input tree: exit 2 before anything is sent."""


class Interrupted(Exception):
    """Ctrl-C: raised out of a backoff or poll sleep so the run winds down at once."""


# -- the files of a batch --
@dataclass
class BatchFile:
    path: Path
    name: str  # relative path (POSIX): shown, reported, and mirrored under OUT_DIR
    out: Path | None = None
    state: str = "pending"  # pending, skipped, queued, running, succeeded, failed, canceled
    job_id: str | None = None
    reused: bool = False  # the service already had a job for these bytes
    pages: int = 0
    error: str | None = None


def _matches(name: str, rel: str, include: list[str]) -> bool:
    if not include:
        return Path(name).suffix.lower() in SUPPORTED_SUFFIXES
    name, rel = name.lower(), rel.lower()
    return any(
        fnmatch.fnmatchcase(name, p.lower()) or fnmatch.fnmatchcase(rel, p.lower()) for p in include
    )


def _walk(root: Path, recursive: bool, skip: Path | None) -> Iterator[Path]:
    """Files under `root`, sorted, hidden ones and the output folder left out."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = (
            sorted(
                d
                for d in dirnames
                if not d.startswith(".") and (skip is None or Path(dirpath, d).resolve() != skip)
            )
            if recursive
            else []
        )
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath, name)


def collect_files(
    inputs: list[str],
    *,
    recursive: bool = False,
    include: list[str] | None = None,
    out_dir: Path | None = None,
    fmt: str = "json",
) -> list[BatchFile]:
    """Expand folders and files into the batch, each with its place under `out_dir`.

    Files named on the command line are taken as they are; files found in folders must match
    `include` (case-insensitive globs on the name or relative path; default: supported types).
    """
    skip = out_dir.resolve() if out_dir else None
    found: dict[str, Path] = {}
    for given in inputs:
        root = Path(given)
        if root.is_dir():
            pairs = [
                (p, p.relative_to(root).as_posix())
                for p in _walk(root, recursive, skip)
                if _matches(p.name, p.relative_to(root).as_posix(), include or [])
            ]
        elif root.is_file():
            pairs = [(root, root.name)]
        else:
            raise UsageError(f"{given}: no such file or folder")
        for path, name in pairs:
            if name in found and found[name].resolve() != path.resolve():
                raise UsageError(
                    f"{found[name]} and {path} would both be {name!r} under the output folder; "
                    "submit them in separate runs"
                )
            found[name] = path
    files = []
    for name, path in found.items():
        out = out_dir / (name + RESULT_SUFFIXES[fmt]) if out_dir else None
        files.append(BatchFile(path=path, name=name, out=out))
    return files


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file then rename: a result that exists is complete, which is what resume trusts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def describe(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"{exc.code}: {exc.message}"
    return str(exc)


# -- progress on stderr --
class ProgressView:
    """A live bar on a terminal; elsewhere (logs, CI) a plain line every few seconds."""

    PLAIN_EVERY = 10.0

    def __init__(self, console: Console, run: BatchRun, live: bool) -> None:
        self.console = console
        self.run = run
        self.live = live
        self._last_plain = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]ocrq"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} {task.fields[unit]}"),
            TextColumn("submitted {task.fields[submitted]}"),
            TextColumn("pages {task.fields[pages]}"),
            TextColumn("[red]failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("[yellow]{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not live,
        )
        self.task = self.progress.add_task("batch", total=len(run.files), **self._fields())

    def _fields(self) -> dict[str, object]:
        counts = self.run.counts()
        elapsed = max(time.monotonic() - self.run.started, 1e-6)
        sent = counts["submitted"] + counts["reused"]
        # the upload rate over the uploading time only, so it does not sag while we wait
        sending = max(self.run.last_submit - self.run.started, 1e-6)
        rate = f"{sent / sending:.1f} sub/s"
        if self.run.wait:
            rate += f" {counts['succeeded'] / elapsed:.1f} done/s"
        return {
            "unit": "done" if self.run.wait else "sent",
            "submitted": sent,
            "pages": counts["pages"],
            "failed": counts["failed"],
            "rate": rate,
            "note": self.run.note,
        }

    def _completed(self) -> int:
        counts = self.run.counts()
        done = counts["succeeded"] + counts["failed"] + counts["skipped"] + counts["canceled"]
        if not self.run.wait:
            done += counts["queued"] + counts["running"]
        return done

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh()
        self.progress.stop()

    def refresh(self) -> None:
        fields = self._fields()
        self.progress.update(self.task, completed=self._completed(), **fields)
        if not self.live and time.monotonic() - self._last_plain >= self.PLAIN_EVERY:
            self._last_plain = time.monotonic()
            self.console.print(
                f"ocrq: {self._completed()}/{len(self.run.files)} {fields['unit']}, "
                f"submitted {fields['submitted']}, pages {fields['pages']}, "
                f"failed {fields['failed']}, {fields['rate']} {fields['note']}".rstrip(),
                highlight=False,
            )

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)


# -- the batch itself --
@dataclass
class BatchRun:
    """Submits every pending file with `concurrency` uploads at a time and, with `wait`,
    polls the oldest unfinished jobs and downloads each result as soon as it is ready."""

    files: list[BatchFile]
    wait: bool
    fmt: str
    concurrency: int
    retry_failed: bool = False
    started: float = field(default_factory=time.monotonic)
    last_submit: float = 0.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    interrupted: bool = False
    unreachable: str | None = None  # why submitting stopped: the service stopped answering
    retries: int = 0
    note: str = ""
    view: ProgressView | None = None
    # job id -> the files waiting for it (two identical files share one job)
    outstanding: dict[str, list[BatchFile]] = field(default_factory=dict)
    _submitting: bool = True
    _refreshed: float = 0.0
    # set when the poller has news while idle: a first job to look at, the end of submitting
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(
            ("pending", "skipped", "queued", "running", "succeeded", "failed", "canceled"), 0
        )
        for f in self.files:
            counts[f.state] += 1
        counts["submitted"] = sum(1 for f in self.files if f.job_id and not f.reused)
        counts["reused"] = sum(1 for f in self.files if f.job_id and f.reused)
        counts["pages"] = sum(f.pages for f in self.files)
        return counts

    def _changed(self) -> None:
        # counting is O(files): at most ten times a second, or a big batch goes quadratic
        now = time.monotonic()
        if self.view and now - self._refreshed >= 0.1:
            self._refreshed = now
            self.view.refresh()

    async def sleep(self, seconds: float) -> None:
        """The client's backoff sleep: returns early, raising Interrupted, on Ctrl-C."""
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise Interrupted

    def on_retry(self, event: RetryEvent) -> None:
        self.retries += 1
        self.note = f"backing off ({event.reason})"
        self._changed()

    async def execute(self, client: AsyncOcrqClient) -> None:
        todo: asyncio.Queue[BatchFile] = asyncio.Queue()
        for f in self.files:
            if f.state == "pending":
                todo.put_nowait(f)
        slots = asyncio.Semaphore(self.concurrency)
        poller = asyncio.create_task(self._poll_loop(client, slots)) if self.wait else None
        try:
            await asyncio.gather(
                *(self._submit_loop(client, todo) for _ in range(self.concurrency))
            )
            self._submitting = False
            self._wake.set()
            if poller:
                await poller
        finally:
            if poller and not poller.done():
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller

    async def _submit_loop(self, client: AsyncOcrqClient, todo: asyncio.Queue[BatchFile]) -> None:
        while not self.stop.is_set() and not todo.empty():
            await self._submit(client, todo.get_nowait())

    async def _submit(self, client: AsyncOcrqClient, file: BatchFile) -> None:
        try:
            data = await asyncio.to_thread(file.path.read_bytes)
        except OSError as exc:
            self._finish(file, "failed", f"cannot read the file: {exc.strerror or exc}")
            return
        key = file_idempotency_key(data)
        try:
            job = await client.submit_bytes(data, file.path.name, idempotency_key=key)
            # --retry-failed: a failed job from an earlier run gets one successor per run;
            # its key is derived from the failed job's, so re-runs find the successor again
            while self.retry_failed and job.replayed and job.status == "failed":
                job = await client.submit_bytes(
                    data, file.path.name, idempotency_key=f"{key}-after-{job.job_id}"
                )
        except Interrupted:
            return  # stays pending: reported as not submitted
        except ConnectionFailed as exc:
            # down for every file, not just this one: stop instead of failing them one by one
            self.unreachable = self.unreachable or describe(exc)
            self.stop.set()
            self._wake.set()
            return
        except OcrqError as exc:
            self._finish(file, "failed", describe(exc))
            return
        file.job_id, file.reused = job.job_id, job.replayed
        self.last_submit = time.monotonic()
        self.note = ""
        if self.wait:
            file.state = "queued"
            if not self.outstanding:
                self._wake.set()
            self.outstanding.setdefault(job.job_id, []).append(file)
            self._changed()
        else:
            self._apply(file, job)
            print(f"{job.job_id}\t{file.state}\t{file.name}", flush=True)

    def _apply(self, file: BatchFile, job: Job) -> None:
        file.pages = job.progress.pages_done
        if job.status == "failed":
            error = job.error
            self._finish(file, "failed", f"{error.code}: {error.message}" if error else "failed")
        elif job.status == "canceled":
            self._finish(file, "canceled", "the job was canceled")
        else:
            file.state = job.status
            self._changed()

    def _finish(self, file: BatchFile, state: str, error: str | None = None) -> None:
        file.state, file.error = state, error
        self._changed()

    async def _poll_loop(self, client: AsyncOcrqClient, slots: asyncio.Semaphore) -> None:
        interval = POLL_MIN
        window = max(16, 4 * self.concurrency)  # jobs finish roughly in submission order
        while not self.stop.is_set() and (self._submitting or self.outstanding):
            batch = list(self.outstanding)[:window]
            changed = any(
                await asyncio.gather(*(self._poll(client, slots, job_id) for job_id in batch))
            )
            interval = POLL_MIN if changed else min(interval * 1.5, POLL_MAX)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)

    async def _poll(self, client: AsyncOcrqClient, slots: asyncio.Semaphore, job_id: str) -> bool:
        """Look at one job; download its result once it succeeded. True when anything moved."""
        files = self.outstanding[job_id]
        try:
            async with slots:
                job = await client.get(job_id)
                if job.status == "succeeded" and any(f.out for f in files):
                    data = await client.result(job_id, self.fmt)  # type: ignore[arg-type]
                    for f in files:
                        if f.out:
                            await asyncio.to_thread(write_atomically, f.out, data)
        except (Interrupted, ConnectionFailed):
            return False  # API unreachable for now: keep the job, look again next round
        except ApiError as exc:
            for f in files:
                self._finish(f, "failed", describe(exc))
            del self.outstanding[job_id]
            return True
        before = [(f.state, f.pages) for f in files]
        for f in files:
            self._apply(f, job)
            if job.status == "succeeded":
                f.pages = job.progress.pages_total or job.progress.pages_done
        if job.terminal:
            del self.outstanding[job_id]
        return before != [(f.state, f.pages) for f in files]


# -- output --
def summary_table(run: BatchRun, wall: float) -> Table:
    counts = run.counts()
    table = Table(title="ocrq submit", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows: list[tuple[str, object]] = [
        ("files", len(run.files)),
        ("submitted", f"{counts['submitted']} new, {counts['reused']} already known"),
        ("skipped (result exists)", counts["skipped"]),
        ("succeeded", counts["succeeded"]),
        ("failed", counts["failed"] + counts["canceled"]),
    ]
    if not run.wait or run.interrupted or run.unreachable:
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


def write_report(path: Path, run: BatchRun, wall: float) -> None:
    counts = run.counts()
    report = {
        **{k: counts[k] for k in ("skipped", "succeeded", "failed", "canceled", "pages")},
        "files": len(run.files),
        "submitted": counts["submitted"],
        "reused": counts["reused"],
        "not_submitted": counts["pending"],
        "unfinished": counts["queued"] + counts["running"],
        "retries": run.retries,
        "interrupted": run.interrupted,
        "unreachable": run.unreachable,
        "wall_seconds": round(wall, 3),
        "items": [
            {k: str(v) if isinstance(v, Path) else v for k, v in asdict(f).items()}
            for f in run.files
        ],
    }
    write_atomically(path, json.dumps(report, indent=1).encode())


# -- commands --
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
    files = collect_files(
        args.inputs,
        recursive=args.recursive,
        include=args.include,
        out_dir=out_dir,
        fmt=args.format,
    )
    if not files:
        console.print("ocrq: no supported files found (see --include, --recursive)")
        return EXIT_OK
    for f in files:
        if f.out is not None and f.out.exists():
            f.state = "skipped"
    run = BatchRun(files, wait=wait, fmt=args.format, concurrency=args.concurrency)
    run.retry_failed = args.retry_failed
    live = args.progress if args.progress is not None else console.is_terminal
    started = time.perf_counter()
    try:
        asyncio.run(_run_batch(run, _client_settings(args), console, live))
    except (KeyboardInterrupt, asyncio.CancelledError):
        run.interrupted = True  # second Ctrl-C: stopped at once
    wall = time.perf_counter() - started
    console.print(summary_table(run, wall))
    failed = [f for f in files if f.state in ("failed", "canceled")]
    for f in failed[:50]:
        console.print(f"[red]failed[/red] {escape(f.name)}: {escape(f.error or '')}")
    if len(failed) > 50:
        console.print(f"... and {len(failed) - 50} more (see --report)")
    if args.report:
        write_report(Path(args.report), run, wall)
    if run.interrupted or run.unreachable:
        counts = run.counts()
        why = (
            f"The service stopped answering ({escape(run.unreachable)})" if run.unreachable else ""
        )
        console.print(
            f"[yellow]{why or 'Interrupted'}:[/yellow] {counts['pending']} file(s) not submitted, "
            f"{counts['queued'] + counts['running']} job(s) still queued or running on the "
            "service (they go on). Run the same command again to resume: results already "
            "downloaded are skipped and files the service has seen get their job back "
            "instead of a new one:\n  " + escape(shlex.join(["ocrq", *sys.argv[1:]])),
            highlight=False,
        )
        return EXIT_INTERRUPTED if run.interrupted else EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


async def _run_batch(run: BatchRun, settings: ClientSettings, console: Console, live: bool) -> None:
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    run.stop, run._wake = asyncio.Event(), asyncio.Event()  # bound to this loop

    def interrupt() -> None:
        if run.stop.is_set() and main_task:  # second Ctrl-C: stop at once
            main_task.cancel()
            return
        run.interrupted = True
        run.stop.set()
        run._wake.set()
        run.note = "stopping"
        if run.view:
            run.view.say("ocrq: stopping: finishing the uploads in flight (Ctrl-C again: now)")

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        async with AsyncOcrqClient(
            settings=settings,
            sleep=run.sleep,
            on_retry=run.on_retry,
            max_connections=2 * run.concurrency + 4,
        ) as client:
            with ProgressView(console, run, live) as view:
                run.view = view
                await run.execute(client)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _print_job(job: Job, as_json: bool) -> None:
    if as_json:
        print(job.model_dump_json(exclude={"replayed"}))
        return
    total = job.progress.pages_total
    rows = [
        ("job", job.job_id),
        ("status", job.status),
        ("pages", f"{job.progress.pages_done}/{total if total is not None else '?'}"),
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


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    conn = common.add_argument_group("service")
    conn.add_argument("--url", help="API base URL (env OCRQ_URL; default http://127.0.0.1:8081)")
    conn.add_argument("--api-key", help="bearer key (env OCRQ_API_KEY)")
    conn.add_argument(
        "--timeout", type=float, help="seconds per request read/write (env OCRQ_TIMEOUT; 60)"
    )

    parser = argparse.ArgumentParser(
        prog="ocrq",
        description="Submit files and folders to the ocrq OCR service and fetch the results.",
        epilog="Exit codes: 0 all good, 1 some file or the request failed, 2 usage error, "
        "130 interrupted (re-run the same command to resume).",
    )
    parser.add_argument("--version", action="version", version=f"ocrq {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = commands.add_parser(
        "submit",
        parents=[common],
        help="enqueue every supported file of folders (and files); optionally wait and download",
        description="Enqueue every supported file (PNG, JPEG, TIFF, WebP, BMP, PDF) of the "
        "given folders and files. With --out, wait and write each result to OUT/<relative "
        "path>.<json|md|txt>. Running the same command again resumes: existing results are "
        "skipped, and files the service already has (same SHA-256, sent as Idempotency-Key) "
        "get their job back instead of a new one. Busy (429) and unreachable services are "
        "retried with backoff; a rejected file is reported and the run goes on.",
    )
    submit.add_argument("inputs", nargs="+", metavar="DIR_OR_FILE")
    submit.add_argument("-r", "--recursive", action="store_true", help="descend into subfolders")
    submit.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help="only files matching this glob (name or relative path, case-insensitive); "
        "repeatable; default: the supported types",
    )
    submit.add_argument("--wait", action="store_true", help="wait until every job finished")
    submit.add_argument(
        "--out", metavar="OUT_DIR", help="download results under OUT_DIR (implies --wait)"
    )
    submit.add_argument("--format", choices=FORMATS, default="json", help="result format (json)")
    submit.add_argument(
        "-c", "--concurrency", type=int, default=4, help="uploads and polls at a time (4)"
    )
    submit.add_argument(
        "--retry-failed",
        action="store_true",
        help="submit again files whose earlier job failed (default: report the old failure)",
    )
    submit.add_argument("--report", metavar="FILE", help="write a JSON report of every file")
    submit.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="live progress bar (default: when stderr is a terminal)",
    )
    submit.set_defaults(handler=cmd_submit)

    status = commands.add_parser(
        "status", parents=[common], help="show a job", description="Show a job's status."
    )
    status.add_argument("job", metavar="JOB")
    status.add_argument("--json", action="store_true", help="print the API's JSON")
    status.set_defaults(handler=cmd_status)

    result = commands.add_parser(
        "result",
        parents=[common],
        help="print or save a job's result",
        description="Print a finished job's result to stdout, or save it with --out.",
    )
    result.add_argument("job", metavar="JOB")
    result.add_argument("--format", choices=FORMATS, default="json", help="json (default)")
    result.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    result.add_argument("--wait", action="store_true", help="wait for the job to finish first")
    result.set_defaults(handler=cmd_result)

    cancel = commands.add_parser(
        "cancel",
        parents=[common],
        help="cancel a queued or running job",
        description="Cancel a job: a queued one at once, a running one before its next page.",
    )
    cancel.add_argument("job", metavar="JOB")
    cancel.set_defaults(handler=cmd_cancel)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"ocrq: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OcrqError as exc:
        print(f"ocrq: error: {describe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("ocrq: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
