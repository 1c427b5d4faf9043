"""The rules that keep /openapi.json readable by client generators, held for every route, the
ones added later too (tests/integration/test_generated_client.py runs the generator itself):
short operation ids, documented; every error an ErrorBody; each answer under a media type a
generator reads, with a schema; the headers the service sends declared."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from api import errors
from api.app import create_app
from api.file_answers import OCTET_STREAM, answered_type
from shared import errors as shared_errors
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
APP = create_app(Settings(api_keys="k1"))  # auth on: the 401s and the security scheme too
SPEC = APP.openapi()
OPERATIONS = [
    (path, method, operation)
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
]
ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
# the one error answer that is no ErrorBody: a readiness probe's 503 says what is down
NOT_ERROR_BODIES = {("/ready", "get", "503")}


def _ids() -> list[str]:
    return [operation["operationId"] for _, _, operation in OPERATIONS]


def test_operation_ids_are_short_and_unique() -> None:
    """Each is its route's name (api/openapi.py), the endpoint function's unless given."""
    assert len(set(_ids())) == len(_ids())
    for operation_id in _ids():
        # a verb and up to three words, none of them the path or the method FastAPI appends
        assert re.fullmatch(r"[a-z]+(_[a-z]+){0,3}", operation_id), operation_id
        assert not re.search(r"_(get|post|put|patch|delete)$", operation_id), operation_id


def test_every_operation_id_is_listed_in_the_client_docs() -> None:
    """They are the generated client's function names: a rename breaks its users."""
    docs = (ROOT / "docs" / "client.md").read_text()
    missing = [i for i in _ids() if f"`{i}`" not in docs]
    assert not missing, f"add to docs/client.md#a-generated-client: {missing}"


def test_every_error_answer_is_an_error_body() -> None:
    for path, method, operation in OPERATIONS:
        for status, response in operation["responses"].items():
            if int(status) >= 400 and (path, method, status) not in NOT_ERROR_BODIES:
                assert response["content"] == ERROR_BODY, (path, method, status)


def test_fastapis_validation_error_schemas_are_gone() -> None:
    text = json.dumps(SPEC)
    assert "HTTPValidationError" not in text and '"ValidationError"' not in text


def test_an_operation_with_parameters_or_a_body_declares_validation_error() -> None:
    """FastAPI answers a request that fails validation 422; the handler makes it an ErrorBody
    with code validation_error, and OpenAPI says so (GET and DELETE too)."""
    for path, method, operation in OPERATIONS:
        if operation.get("parameters") or "requestBody" in operation:
            response = operation["responses"].get("422")
            assert response is not None, (path, method)
            assert "`validation_error`" in response["description"], (path, method)
            assert response["content"] == ERROR_BODY, (path, method)


def _readable(media_type: str) -> bool:
    """A media type openapi-python-client 0.29 reads (parser/responses.py): others it skips,
    and an answer with only such is dropped with a warning."""
    return (
        media_type in ("application/json", OCTET_STREAM)
        or media_type.endswith("+json")
        or media_type.startswith("text/")
    )


def test_every_answer_has_a_media_type_a_generator_reads_with_a_schema() -> None:
    for path, method, operation in OPERATIONS:
        for status, response in operation["responses"].items():
            content = response.get("content", {})
            assert content, (path, method, status)  # no content: the generator gives None
            readable = [media for media in content if _readable(media)]
            assert readable, (path, method, status, list(content))
            # the generator takes the first it reads; without a schema that is `Any` and None
            assert content[readable[0]].get("schema"), (path, method, status)


def test_one_media_type_per_answer_but_a_binary_ones_octet_stream() -> None:
    """The generator reads an answer as its first readable media type: an operation whose 200
    could be JSON or text would fail on one of them (the result formats have a route each)."""
    for path, method, operation in OPERATIONS:
        for status, response in operation["responses"].items():
            readable = [m for m in response.get("content", {}) if _readable(m)]
            assert len(readable) == 1, (path, method, status, readable)


def _operation(path: str, method: str = "get") -> dict[str, Any]:
    return SPEC["paths"][path][method]


@pytest.mark.parametrize(
    ("path", "method", "status", "header"),
    [
        ("/jobs", "post", "202", "Location"),
        ("/jobs", "post", "200", "Location"),
        ("/jobs", "post", "200", "Idempotent-Replayed"),
        ("/jobs", "post", "409", "Retry-After"),  # idempotency_key_in_use
        ("/jobs", "post", "429", "Retry-After"),  # queue_full
        ("/jobs", "post", "503", "Retry-After"),  # engine_not_served
        ("/ocr", "post", "202", "Location"),
        ("/ocr", "post", "429", "Retry-After"),
        ("/jobs/{job_id}/result", "get", "409", "Retry-After"),  # result_not_ready
        ("/jobs/{job_id}/result/pdf", "get", "409", "Retry-After"),
        ("/jobs/{job_id}/pages/{index}/image", "get", "409", "Retry-After"),
        ("/jobs/{job_id}", "get", "401", "WWW-Authenticate"),
    ],
)
def test_the_headers_the_service_sends_are_declared(
    path: str, method: str, status: str, header: str
) -> None:
    headers = _operation(path, method)["responses"][status]["headers"]
    assert headers[header]["schema"]["type"] in ("string", "integer")


def _codes_raised_with_retry_after() -> set[str]:
    """Every code a `raise SomeError(..., headers={"Retry-After": ...})` in api/ and shared/
    answers with: read from the source, so a new one is found without this test knowing it."""
    classes = {**vars(shared_errors), **vars(errors)}
    found = set()
    for source in [*(ROOT / "api").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]:
        for node in ast.walk(ast.parse(source.read_text())):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            call = node.exc
            headers = [k.value for k in call.keywords if k.arg == "headers"]
            if not (headers and isinstance(headers[0], ast.Dict)):
                continue
            keys = [k.value for k in headers[0].keys if isinstance(k, ast.Constant)]
            if errors.RETRY_AFTER in keys and isinstance(call.func, ast.Name):
                found.add(classes[call.func.id].code.value)
    return found


# Codes whose Retry-After is set on a headers dict built apart from the `raise` (the source scan
# above cannot see them): the code and the module that sets it.
RETRY_AFTER_SET_APART = {"quota_exceeded": (ROOT / "api" / "tenants.py", "QuotaExceeded")}


def test_every_code_sent_with_retry_after_is_declared_so() -> None:
    raised = _codes_raised_with_retry_after()
    for code, (module, error_class) in RETRY_AFTER_SET_APART.items():
        source = module.read_text()
        assert '"Retry-After"' in source and error_class in source
        assert getattr(errors, error_class).code.value == code
        raised.add(code)
    declared = {c.value for c, h in errors.ERROR_HEADERS.items() if errors.RETRY_AFTER in h}
    assert raised == declared and "queue_full" in raised


@pytest.mark.parametrize(
    ("media_type", "accept", "sent"),
    [
        ("application/pdf", None, "application/pdf"),
        ("application/pdf", "*/*", "application/pdf"),
        ("application/pdf", OCTET_STREAM, OCTET_STREAM),
        ("image/jpeg", "application/octet-stream;q=0.9, text/html", OCTET_STREAM),
        ("application/pdf", "application/pdf, application/octet-stream", "application/pdf"),
        ("text/plain; charset=utf-8", OCTET_STREAM, "text/plain; charset=utf-8"),
    ],
)
def test_a_binary_file_is_sent_as_octet_stream_only_when_asked(
    media_type: str, accept: str | None, sent: str
) -> None:
    assert answered_type(media_type, accept) == sent
