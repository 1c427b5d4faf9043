"""The layout's rules, read from the source with `ast` (no import runs; fast tier).

- api never imports worker, worker never imports api, the job package imports neither;
- shared/ imports neither, and each of its modules is imported by both (a module only one
  process needs lives in api/ or worker/);
- only worker/engines/* import OCR and GPU libraries;
- the client package imports nothing of the service (api, worker, shared) nor its servers'
  libraries (celery, fastapi, redis);
- nothing but the job package names a Redis key or reaches for a Redis client.

The rules hold for the service's code: api/, worker/, shared/ and the client package. Tests,
bench/, testkit/ and deploy/ (which loads the real PaddleOCR-VL to bake its models) are free.
What each process really imports at run time is tests/unit/test_process_boundaries.py.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import OCR_LIBRARIES

ROOT = Path(__file__).resolve().parents[2]
# The client package once it has left shared/ (issue 13); the first of these that exists.
CLIENT_CANDIDATES = ("ocrq_client", "client")
# A Redis key of this service: `ocrq:` then a name (the CLI's messages are `ocrq: ...`).
KEY_LITERAL = re.compile(r"^ocrq:[^\s]")


def python_files(*tops: str) -> list[Path]:
    files = [path for top in tops for path in sorted((ROOT / top).rglob("*.py"))]
    return [path for path in files if "__pycache__" not in path.parts]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, at any depth."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield node.lineno, name
            for alias in node.names:  # `from shared import jobs` imports shared.jobs
                yield node.lineno, f"{name}.{alias.name}"


def job_package_files() -> list[Path]:
    """shared/jobs.py today, the shared/jobs/ package after issue 13."""
    return [
        path
        for path in python_files("shared")
        if path.relative_to(ROOT / "shared").parts[0] in ("jobs.py", "jobs")
    ]


def in_job_package(path: Path) -> bool:
    return path in job_package_files()


def client_package() -> str | None:
    return next(
        (name for name in CLIENT_CANDIDATES if (ROOT / name / "__init__.py").exists()), None
    )


def service_files() -> list[Path]:
    client = client_package()
    return python_files("api", "worker", "shared", *([client] if client else []))


def top(name: str) -> str:
    return name.partition(".")[0]


def where(path: Path, line: int, what: str) -> str:
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    return f"{shown}:{line}: {what}"


def imports_of(files: list[Path], forbidden: set[str]) -> list[str]:
    return [
        where(path, line, f"imports {name}")
        for path in files
        for line, name in imported_modules(path)
        if top(name) in forbidden
    ]


def test_the_rules_see_the_source_tree() -> None:
    # A rule over no files passes for nothing: the tree is where these tests look for it.
    assert python_files("api") and python_files("worker") and job_package_files()
    names = {name for _, name in imported_modules(ROOT / "worker" / "pipeline.py")}
    assert "shared.settings" in names and "worker.engines" in names


def test_api_never_imports_worker() -> None:
    assert imports_of(python_files("api"), {"worker"}) == []


def test_worker_never_imports_api() -> None:
    assert imports_of(python_files("worker"), {"api"}) == []


def test_job_package_imports_neither_api_nor_worker() -> None:
    assert imports_of(job_package_files(), {"api", "worker"}) == []


def test_only_engine_modules_import_ocr_and_gpu_libraries() -> None:
    engines = ROOT / "worker" / "engines"
    others = [path for path in service_files() if not path.is_relative_to(engines)]
    assert imports_of(others, set(OCR_LIBRARIES)) == []


def test_client_package_imports_nothing_of_the_service() -> None:
    client = client_package()
    if client is None:
        pytest.skip("until issue 13's client package (ocrq_client/) lands")
    forbidden = {"api", "worker", "shared", "celery", "fastapi", "redis"}
    assert imports_of(python_files(client), forbidden) == []


def redis_key_names(path: Path) -> list[str]:
    """Places naming a Redis key (an `ocrq:...` literal, an f-string starting so, the key
    prefix constant) or reaching for a Redis client held elsewhere (`store.redis`), in order."""
    return [place for _, place in sorted(_key_names(path))]


def _key_names(path: Path) -> Iterator[tuple[int, str]]:
    nodes = list(ast.walk(tree(path)))
    in_f_strings = {
        id(part) for node in nodes if isinstance(node, ast.JoinedStr) for part in node.values
    }
    for node in nodes:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in in_f_strings:
                continue  # judged with its f-string
            if KEY_LITERAL.match(node.value):
                yield node.lineno, where(path, node.lineno, f"Redis key {node.value!r}")
        elif isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            if isinstance(first, ast.Constant) and KEY_LITERAL.match(str(first.value)):
                yield (
                    node.lineno,
                    where(path, node.lineno, f"Redis key f-string {ast.unparse(node)}"),
                )
        elif isinstance(node, ast.Name) and node.id == "KEY_PREFIX":
            yield node.lineno, where(path, node.lineno, "Redis key prefix KEY_PREFIX")
        elif isinstance(node, ast.alias) and node.name == "KEY_PREFIX":
            yield node.lineno, where(path, node.lineno, "imports KEY_PREFIX")
        elif isinstance(node, ast.Attribute) and node.attr == "redis":
            yield node.lineno, where(path, node.lineno, f"Redis client {ast.unparse(node)}")


def test_the_key_rule_sees_a_key_an_f_string_and_a_client_reach(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'A = "ocrq:job:1"\nB = f"ocrq:lease:{A}"\nC = f"{KEY_PREFIX}x"\n'
        'print("ocrq: error: no")\nstore.redis.get(A)\nredis.Redis()\n'
    )
    found = [place.split(": ", 1)[1] for place in redis_key_names(sample)]
    assert found == [
        "Redis key 'ocrq:job:1'",
        "Redis key f-string f'ocrq:lease:{A}'",
        "Redis key prefix KEY_PREFIX",
        "Redis client store.redis",
    ]


def test_only_the_job_package_names_redis_keys() -> None:
    found = [
        place
        for path in service_files()
        if not in_job_package(path)
        for place in redis_key_names(path)
    ]
    assert found == []


def test_shared_imports_neither_api_nor_worker() -> None:
    assert imports_of(python_files("shared"), {"api", "worker"}) == []


def test_each_shared_module_is_imported_by_both_processes() -> None:
    # shared/ is what both processes import: a module only one side needs lives on that side
    # (api/page_count.py, api/metrics.py; worker/retention_sweep.py). A module a
    # package's __init__ imports (shared/storage/*) is loaded by whoever imports the package.
    def imported_by(top_name: str) -> set[str]:
        return {name for path in python_files(top_name) for _, name in imported_modules(path)}

    def loaded_with_package(path: Path) -> str | None:
        """The package whose __init__ imports this module (importing one loads the other)."""
        init = path.parent / "__init__.py"
        if path.name == "__init__.py" or not init.exists():
            return None
        package = module_name(init)
        return package if module_name(path) in {n for _, n in imported_modules(init)} else None

    api_names, worker_names = imported_by("api"), imported_by("worker")
    both = api_names & worker_names
    one_sided = [
        module
        for path in python_files("shared")
        if not in_job_package(path) and path.name != "__init__.py"
        if (module := module_name(path)) not in both and loaded_with_package(path) not in both
    ]
    assert one_sided == []
