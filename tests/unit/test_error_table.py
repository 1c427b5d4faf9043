"""The docs' error table (docs/api.md, its one home) agrees with api/errors.py's HTTP_STATUS,
the one place a code meets its status: each row's codes are answered with the row's status,
and every error a route raises (each ServiceError's code) has a row. Routes' OpenAPI
`responses` come from the same table (api/errors.py's `error_responses`). Fast tier: reads
files, builds the app offline."""

from __future__ import annotations

import re
from pathlib import Path

from api.app import create_app
from api.errors import HTTP_STATUS, error_responses
from shared.error_codes import ErrorCode
from shared.errors import ServiceError
from shared.settings import Settings

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
ROW = re.compile(r"^\| (\d{3}) \| ((?:`\w+`(?:, )?)+) \|", re.M)


def _rows() -> list[tuple[int, str]]:
    text = API_DOC.read_text(encoding="utf-8")
    return [
        (int(status), code)
        for status, codes in ROW.findall(text)
        for code in re.findall(r"`(\w+)`", codes)
    ]


def _service_errors() -> set[ErrorCode]:
    found, todo = set(), [ServiceError]
    while todo:
        cls = todo.pop()
        found.add(cls.code)
        todo.extend(cls.__subclasses__())
    return found


def test_every_row_of_the_docs_error_table_has_the_status_the_api_answers() -> None:
    rows = _rows()
    assert len(rows) > 20
    assert [(s, c) for s, c in rows if HTTP_STATUS.get(ErrorCode(c)) != s] == []


def test_every_error_a_route_raises_has_a_row() -> None:
    documented = {ErrorCode(code) for _, code in _rows()}
    assert sorted(_service_errors() - documented - {ErrorCode.internal_error}) == []


def test_route_responses_take_their_status_from_the_table() -> None:
    responses = error_responses(ErrorCode.job_not_found, ErrorCode.page_not_found)
    assert list(responses) == [404]
    assert "`job_not_found`" in responses[404]["description"]
    spec = create_app(Settings()).openapi()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, body in operation.get("responses", {}).items():
                for code in re.findall(r"`(\w+)`", body.get("description", "")):
                    if code in ErrorCode.__members__:
                        assert HTTP_STATUS[ErrorCode(code)] == int(status), (path, method, code)
