"""Exit codes of `ocrq`, its usage error, and how a client error reads on the terminal."""

from __future__ import annotations

from ocrq_client.client import ApiError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# stdout's reader went away (a pipe into `head`): 128 + SIGPIPE, as a shell reports a command
# the signal ended; not 0, since what was left of the batch was not submitted
EXIT_BROKEN_PIPE = 141


class UsageError(Exception):
    """A bad command line or input tree: exit 2 before anything is sent."""


def describe(exc: Exception) -> str:
    """One line for a person: the API's stable code and message, or the error's own text."""
    if isinstance(exc, ApiError):
        return f"{exc.code}: {exc.message}"
    return str(exc)
