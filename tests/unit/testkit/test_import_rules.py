"""tests/ and bench/ share testkit/ and never import each other; testkit imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = {"bench": {"tests"}, "tests": {"bench"}, "testkit": {"tests", "bench"}}


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every import in one file (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_folder_imports_none_of_its_forbidden_packages(folder: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {', '.join(sorted(found))}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (found := imported_packages(path) & FORBIDDEN[folder])
    ]
    assert offenders == []
