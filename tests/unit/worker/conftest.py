"""Fixtures shared by the worker's engine and routing tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def count_reads(monkeypatch: pytest.MonkeyPatch) -> Callable[[object], list[int]]:
    """Wrap a real engine's `read_as_given` (one pass over a page as it lies) to count passes."""

    def wrap(engine: object) -> list[int]:
        calls: list[int] = []
        read = engine.read_as_given  # type: ignore[attr-defined]

        def counted(image):
            calls.append(1)
            return read(image)

        monkeypatch.setattr(engine, "read_as_given", counted)
        return calls

    return wrap
