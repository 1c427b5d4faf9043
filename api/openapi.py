"""The OpenAPI document as client generators read it (docs/client.md#generated-clients).

- Each operation's id is its route's name, the endpoint function's (`create_job`,
  `get_result_pdf`): short, stable, the generated client's function names.
- Every error answer is an ErrorBody. FastAPI declares its own `HTTPValidationError` for the
  422 of a route with parameters; the API answers a request that fails validation with an
  ErrorBody (`validation_error`, api/errors.py), so the document says that instead and keeps
  no `HTTPValidationError` or `ValidationError` schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.schemas import ErrorBody
from shared.error_codes import ErrorCode

_VALIDATION_WHY = "a parameter off its documented type, range or pattern"
_FASTAPI_SCHEMAS = ("HTTPValidationError", "ValidationError")
_ERROR_BODY = {"schema": {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}}


def operation_id(route: APIRoute) -> str:
    """The operationId of a route: its name (the endpoint function's unless given)."""
    return route.name


def install_openapi(app: FastAPI) -> None:
    """Make app.openapi() (and /openapi.json) declare every 422 as an ErrorBody."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        spec = build()  # FastAPI's, kept until the routes change
        errors_as_error_body(spec)  # at once when done already
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def errors_as_error_body(spec: dict[str, Any]) -> None:
    """Give every operation that takes parameters or a body a 422 ErrorBody naming
    `validation_error` (in place of FastAPI's HTTPValidationError), and drop FastAPI's schemas."""
    code = f"`{ErrorCode.validation_error.value}`"
    for path in spec["paths"].values():
        for operation in path.values():
            if not (operation.get("parameters") or "requestBody" in operation):
                continue
            responses = operation["responses"]
            declared = responses.get("422")
            if declared is None or _names_fastapi_schema(declared):
                responses["422"] = {
                    "description": f"{code}: {_VALIDATION_WHY}",
                    "content": {"application/json": _ERROR_BODY},
                }
            elif code not in declared["description"]:
                declared["description"] += f"; or {code}: {_VALIDATION_WHY}"
            operation["responses"] = dict(sorted(responses.items()))
    schemas = spec.get("components", {}).get("schemas", {})
    for name in _FASTAPI_SCHEMAS:
        schemas.pop(name, None)


def _names_fastapi_schema(response: dict[str, Any]) -> bool:
    refs = [
        media.get("schema", {}).get("$ref", "") for media in response.get("content", {}).values()
    ]
    return any(ref.rsplit("/", 1)[-1] in _FASTAPI_SCHEMAS for ref in refs)
