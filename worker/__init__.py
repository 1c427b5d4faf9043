"""The Celery worker: boot (check dirs, warm the engine), the OCR task and the engines."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # `celery -A worker ...` looks for `worker.app`: the module-level app, built only when a
    # Celery command asks for it (importing `worker` reads no setting)
    if name == "app":
        from worker.celery_app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
