"""Print the project's requirements for some extras, one a line, read from pyproject.toml.

Docker builds install these in a layer of their own before copying the code, so a code edit
does not reinstall the dependencies, and pyproject.toml stays the one list of them.
Standard library only: it runs before anything is installed.

    python deploy/requirements.py worker > requirements.txt
"""

from __future__ import annotations

import argparse
import re
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path

_SELF_EXTRA = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.-]+)\s*\[(?P<extras>[^\]]+)\]\s*$")


def requirements_for(pyproject: Path, extras: Sequence[str]) -> list[str]:
    """The base dependencies plus those of `extras`, with `ocrq[x]` self-references expanded."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    found: list[str] = []
    seen_extras: set[str] = set()

    def add(requirements: Sequence[str]) -> None:
        for requirement in requirements:
            match = _SELF_EXTRA.match(requirement)
            if match and match["name"].lower() == project["name"].lower():
                visit(e.strip() for e in match["extras"].split(","))
            elif requirement not in found:
                found.append(requirement)

    def visit(names: Iterable[str]) -> None:
        for name in names:
            if name in seen_extras:
                continue
            if name not in optional:
                raise SystemExit(f"unknown extra {name!r}; pyproject.toml has {sorted(optional)}")
            seen_extras.add(name)
            add(optional[name])

    add(project.get("dependencies", []))
    visit(extras)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extras", nargs="*", help="extras to include, e.g. worker or gpu")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args(argv)
    print("\n".join(requirements_for(args.pyproject, args.extras)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
