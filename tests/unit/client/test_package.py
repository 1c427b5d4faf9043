"""ocrq_client stands alone: it imports the standard library and its own extra, nothing of ours."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "ocrq_client"
# import name -> distribution in pyproject.toml (base dependencies or the `client` extra)
THIRD_PARTY = {"httpx": "httpx", "rich": "rich", "pydantic": "pydantic",
               "pydantic_settings": "pydantic-settings"}  # fmt: skip


def _top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_client_imports_only_the_standard_library_and_its_extra() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert modules
    for module in modules:
        foreign = _top_level_imports(module) - set(sys.stdlib_module_names) - {"__future__"}
        foreign -= {"ocrq_client", *THIRD_PARTY}
        assert not foreign, f"{module.relative_to(ROOT)} imports {sorted(foreign)}"


def test_what_it_imports_is_what_the_client_extra_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["client"]
    names = {r.split("[")[0].split(">")[0].split("=")[0].split(";")[0].strip() for r in declared}
    assert set(THIRD_PARTY.values()) <= names
    assert project["scripts"]["ocrq"] == "ocrq_client.cli:main"
