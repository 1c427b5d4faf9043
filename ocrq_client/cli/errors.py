"""Exit codes of `ocrq`, its usage error, and how a client error reads on the terminal."""

from __future__ import annotations

from ocrq_client.client import ApiError, QuotaExceeded

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# stdout's reader went away (a pipe into `head`): 128 + SIGPIPE, as a shell reports a command
# the signal ended; not 0, since what was left of the batch was not submitted
EXIT_BROKEN_PIPE = 141


class UsageError(Exception):
    """A bad command line or input tree: exit 2 before anything is sent."""


def describe(exc: Exception) -> str:
    """One line for a person: the API's stable code and message, or the error's own text."""
    if isinstance(exc, QuotaExceeded):
        when = "never, for this job" if exc.retry_after is None else in_words(exc.retry_after)
        return f"{exc.code}: {exc.message} (not retried; it may pass again: {when})"
    if isinstance(exc, ApiError):
        return f"{exc.code}: {exc.message}"
    return str(exc)


def in_words(seconds: float) -> str:
    """`in 3 h 12 min`, `in 40 s`: a wait as a person reads it."""
    whole = int(seconds)
    hours, minutes = whole // 3600, whole % 3600 // 60
    if hours:
        return f"in {hours} h {minutes} min"
    return f"in {minutes} min" if minutes else f"in {whole} s"
