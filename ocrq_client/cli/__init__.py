"""`ocrq`: the command line of the OCR service, for batch scripts and people.

    ocrq submit scans/ --recursive --out results/ --format text   # a whole tree; re-run resumes
    ocrq status JOB      ocrq result JOB --format markdown      ocrq cancel JOB
    ocrq usage                                                  # the key's usage and quotas

`submit` is safe to run again: files whose result already exists under --out are skipped, and
every upload carries the SHA-256 of the file as Idempotency-Key, so a file the service already
has a job for gets that job back instead of a second one.
"""

from __future__ import annotations

import os
import sys

from ocrq_client.cli.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UsageError,
    describe,
)
from ocrq_client.cli.parser import build_parser
from ocrq_client.client import OcrqError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run one `ocrq` command; its exit code (see errors.py) is what the shell gets."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:
        # the reader of stdout went away (`ocrq submit DIR | head -3`): stop quietly, as a
        # command killed by SIGPIPE would; stdout goes to /dev/null so that Python's own
        # flush at exit finds no broken pipe either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except UsageError as exc:
        print(f"ocrq: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OcrqError as exc:
        print(f"ocrq: error: {describe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("ocrq: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
