"""The closed set of error codes (shared/error_codes.py): every code a client can see is a
member, every HTTP error's code has its status in api/errors.py's HTTP_STATUS, and OpenAPI
lists the same set. Fast tier: the source is read with `ast`, the app is built without Redis."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import api.errors
import shared.errors
from api.app import create_app
from api.errors import _STARLETTE_CODES, HTTP_STATUS
from shared.error_codes import ErrorCode
from shared.errors import ServiceError
from shared.settings import Settings
from worker.engines import EngineError, EngineUnavailable
from worker.pages import PageLoadError

ROOT = Path(__file__).resolve().parents[2]
# (callable name, index of its code among the positional arguments)
CODE_ARGUMENT = {"EngineError": 0, "PageLoadError": 0, "fail": 1, "JobError": None}


def subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def test_every_service_error_has_a_member_code_with_an_http_status() -> None:
    errors = [ServiceError, *subclasses(ServiceError)]
    assert {e.__module__ for e in errors} >= {api.errors.__name__, shared.errors.__name__}
    for error in errors:
        assert isinstance(error.code, ErrorCode), error
        assert error.code in HTTP_STATUS, error


def test_shared_errors_carry_no_http_status() -> None:
    # the domain errors shared code raises; the API alone knows their status
    domain = [e for e in subclasses(ServiceError) if e.__module__ == shared.errors.__name__]
    assert domain and not [e for e in domain if hasattr(e, "status_code")]


def test_starlette_statuses_get_codes_answered_with_that_status() -> None:
    assert all(HTTP_STATUS[code] == status for status, code in _STARLETTE_CODES.items())


def test_failure_errors_take_members_only() -> None:
    assert EngineError("timeout", "x").code is ErrorCode.timeout  # a member by its value
    assert EngineUnavailable("x").code is ErrorCode.engine_unavailable
    for error in (EngineError, PageLoadError):
        with pytest.raises(ValueError, match="not a valid ErrorCode"):
            error("no_such_code", "x")


def python_files(*tops: str) -> list[Path]:
    return [p for top in tops for p in sorted((ROOT / top).rglob("*.py"))]


def _code_arguments(path: Path) -> Iterator[tuple[int, ast.expr]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name not in CODE_ARGUMENT:
            continue
        index = CODE_ARGUMENT[name]
        args = [kw.value for kw in node.keywords if kw.arg == "code"]
        if index is not None and len(node.args) > index:
            args.append(node.args[index])
        for arg in args:
            yield node.lineno, arg


def test_codes_written_by_the_worker_and_the_job_package_are_members() -> None:
    bare, unknown, seen = [], [], set()
    for path in python_files("worker", "shared", "api"):
        for line, arg in _code_arguments(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if isinstance(arg, ast.Constant):
                bare.append(f"{where}: bare code {arg.value!r}")
            elif isinstance(arg, ast.Attribute) and ast.unparse(arg.value) == "ErrorCode":
                seen.add(arg.attr)
                if arg.attr not in ErrorCode.__members__:
                    unknown.append(f"{where}: ErrorCode.{arg.attr}")
    assert bare == [] and unknown == []
    # the rule sees the code: these are written from the worker's pipeline, pages and engines
    assert {"timeout", "input_missing", "pdf_corrupt", "recognition_failed"} <= seen


def test_every_error_code_reference_in_the_source_is_a_member() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{node.lineno}: ErrorCode.{node.attr}"
        for path in python_files("worker", "shared", "api")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "ErrorCode"
        and node.attr not in ErrorCode.__members__
        and not node.attr.startswith("_")
    ]
    assert wrong == []


def test_openapi_lists_the_enum_for_error_bodies_and_failed_jobs() -> None:
    schema = create_app(Settings()).openapi()["components"]["schemas"]
    assert schema["ErrorCode"]["enum"] == [code.value for code in ErrorCode]
    ref = {"$ref": "#/components/schemas/ErrorCode"}
    assert schema["ErrorDetail"]["properties"]["code"].items() >= ref.items()
    assert schema["JobError"]["properties"]["code"].items() >= ref.items()
