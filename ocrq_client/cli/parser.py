"""The `ocrq` command line: its arguments, --help texts, and which handler runs each command."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ocrq_client._version import __version__
from ocrq_client.cli.commands import cmd_cancel, cmd_result, cmd_status, cmd_submit, cmd_usage
from ocrq_client.client import FORMATS, PRIORITIES

Handler = Callable[[argparse.Namespace], int]


def _service_options() -> argparse.ArgumentParser:
    """--url, --api-key and --timeout: a parent of every command."""
    common = argparse.ArgumentParser(add_help=False)
    conn = common.add_argument_group("service")
    conn.add_argument("--url", help="API base URL (env OCRQ_URL; default http://127.0.0.1:8081)")
    conn.add_argument("--api-key", help="bearer key (env OCRQ_API_KEY)")
    conn.add_argument(
        "--timeout", type=float, help="seconds per request read/write (env OCRQ_TIMEOUT; 60)"
    )
    return common


def _add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler,
    *,
    summary: str,
    description: str,
    job: bool = False,
) -> argparse.ArgumentParser:
    """One command with the service options; `job`: its first argument is a JOB id."""
    command = commands.add_parser(
        name, parents=[_service_options()], help=summary, description=description
    )
    if job:
        command.add_argument("job", metavar="JOB")
    command.set_defaults(handler=handler)
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocrq",
        description="Submit files and folders to the ocrq OCR service and fetch the results.",
        epilog="Exit codes: 0 all good, 1 some file or the request failed (or a file's job "
        "succeeded with pages it could not read), 2 usage error, 130 interrupted (re-run the "
        "same command to resume).",
    )
    parser.add_argument("--version", action="version", version=f"ocrq {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = _add_command(
        commands,
        "submit",
        cmd_submit,
        summary="enqueue every supported file of folders (and files, and URLs); optionally "
        "wait and download",
        description="Enqueue every supported file (PNG, JPEG, TIFF, WebP, BMP, PDF) of the "
        "given folders and files, and every URL (https://, http://, s3://bucket/key; given "
        "here or in --manifest files), which the service fetches itself: nothing is uploaded. "
        "With --out, wait and write each result to OUT/<relative "
        "path>.<json|md|txt> (a URL's: OUT/<host or bucket>/<path>.<...>). Running the same "
        "command again resumes: existing results are "
        "skipped, and files the service already has (same SHA-256, sent as Idempotency-Key; "
        "for a URL, the same URL) get their job back instead of a new one. While waiting, "
        "each job is followed on its "
        "event stream (a server without one is polled). Busy (429 queue_full) and unreachable "
        "services are retried with backoff; a rejected file is reported and the run goes on; "
        "the API key's quota (429 quota_exceeded) stops the submitting (the files left are "
        "reported as not submitted).",
    )
    submit.add_argument("inputs", nargs="*", metavar="DIR_FILE_OR_URL")
    submit.add_argument(
        "--manifest",
        action="append",
        metavar="FILE",
        help="a file of URLs to submit, one a line (blank lines and # comments skipped; - "
        "reads stdin); repeatable, and may go with folders, files and URLs",
    )
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
    submit.add_argument(
        "--format",
        choices=FORMATS,
        default="json",
        help="result format (json); pdf is a searchable PDF of the pages, hocr and alto say "
        "where every word sits",
    )
    submit.add_argument("-c", "--concurrency", type=int, default=4, help="uploads at a time (4)")
    submit.add_argument(
        "--streams",
        type=int,
        default=8,
        help="jobs followed at a time while waiting, oldest first, each on its event stream "
        "(GET /jobs/{id}/events; polled on a server without it) (8)",
    )
    submit.add_argument(
        "--priority",
        choices=PRIORITIES,
        help="queue priority of the jobs; default batch for a folder or several files, "
        "normal for one file (workers take high first, batch last)",
    )
    submit.add_argument(
        "--retry-failed",
        action="store_true",
        help="submit again files whose earlier job failed, or succeeded with pages it could not "
        "read (the whole file, as a new job; with --out, files whose result has a "
        "<result>.failed-pages.json note beside it); default: report the old outcome",
    )
    submit.add_argument("--report", metavar="FILE", help="write a JSON report of every file")
    submit.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="live progress bar (default: when stderr is a terminal)",
    )

    status = _add_command(
        commands,
        "status",
        cmd_status,
        job=True,
        summary="show a job",
        description="Show a job's status.",
    )
    status.add_argument("--json", action="store_true", help="print the API's JSON")

    result = _add_command(
        commands,
        "result",
        cmd_result,
        job=True,
        summary="print or save a job's result",
        description="Print a finished job's result to stdout, or save it with --out. From a "
        "service that keeps results in a bucket, the bytes come straight from the bucket by a "
        "pre-signed URL it hands out (through the API when it hands none).",
    )
    result.add_argument("--format", choices=FORMATS, default="json", help="json (default)")
    result.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    result.add_argument("--wait", action="store_true", help="wait for the job to finish first")

    _add_command(
        commands,
        "cancel",
        cmd_cancel,
        job=True,
        summary="cancel a queued or running job",
        description="Cancel a job: a queued one at once, a running one before its next page.",
    )
    usage = _add_command(
        commands,
        "usage",
        cmd_usage,
        summary="show the API key's usage and quotas",
        description="Show the API key's quotas and its usage per UTC day (jobs and pages "
        "submitted, pages read and failed, engine seconds): today and every day of the last 31 "
        "with any. With auth off: the usage of every job sent without a key.",
    )
    usage.add_argument("--json", action="store_true", help="print the API's JSON")
    return parser
