"""Logging for both processes: readable text or one JSON object per line (LOG_FORMAT=json).

Every line logged while a job is handled carries its `job_id` (a context variable set by the
API route and the worker), whichever library logged it, and its `trace_id` when traces are on
(shared/tracing/ sets it: the API's request span, the worker's run of the job).
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

current_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_job_id", default=None
)
# the W3C trace id (32 hex digits) of the job's trace, when it has one
current_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_trace_id", default=None
)


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Tag every log line inside the block with `job_id` (and the trace id set inside it)."""
    token = current_job_id.set(job_id)
    trace_token = current_trace_id.set(None)  # a previous job's never leaks into this one
    try:
        yield
    finally:
        current_trace_id.reset(trace_token)
        current_job_id.reset(token)


class _JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "job_id", None):
            record.job_id = current_job_id.get()
        if not getattr(record, "trace_id", None):
            record.trace_id = current_trace_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id:
            entry["job_id"] = job_id
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            entry["trace_id"] = trace_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = []
        job_id = getattr(record, "job_id", None)
        if job_id and f"job={job_id}" not in line:
            tags.append(f"job={job_id}")
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            tags.append(f"trace={trace_id}")
        return f"{line} [{' '.join(tags)}]" if tags else line


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_JobIdFilter())
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
