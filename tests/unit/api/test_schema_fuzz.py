"""Schemathesis against /openapi.json: no 5xx, every response matches its documented schema."""

from __future__ import annotations

import tempfile
from pathlib import Path

import hypothesis
import pytest
import redis
import schemathesis

from api.app import create_app
from shared.settings import Settings
from tests.conftest import UNIT_REDIS_URL

# The app on the test Redis (every case pings it).
pytestmark = pytest.mark.integration

_dirs = Path(tempfile.mkdtemp(prefix="ocrq-fuzz-"))
settings = Settings(
    redis_url=UNIT_REDIS_URL,
    temp_dir=_dirs / "temp",
    output_dir=_dirs / "output",
    max_upload_mb=1,
)
app = create_app(settings)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@hypothesis.settings(
    max_examples=40, deadline=None, suppress_health_check=list(hypothesis.HealthCheck)
)
def test_api_honours_its_schema(case: schemathesis.Case) -> None:
    redis.Redis.from_url(UNIT_REDIS_URL).ping()
    # A form field made an empty array is no part at all in multipart: the request sent is a
    # valid one (the field left out), which the negative-data check would take for invalid
    # data accepted. Such examples say nothing; non-empty arrays (repeated parts) still run.
    if isinstance(case.body, dict):
        hypothesis.assume(not any(value == [] for value in case.body.values()))
        # More form fields than MAX_FORM_FIELDS (a field made an array of many), or one longer
        # than MAX_FIELD_BYTES (in UTF-8), are refused 413 form_too_large before they are read:
        # a rejection, which the negative-data check does not count (413 is not in its list).
        parts = [
            part
            for name, value in case.body.items()
            if name != "file"
            for part in (value if isinstance(value, list) else [value])
        ]
        hypothesis.assume(len(parts) <= settings.max_form_fields)
        hypothesis.assume(all(len(str(p).encode()) <= settings.max_field_bytes for p in parts))
    # A schema-valid `file` (any bytes) is still refused when its bytes are no image or PDF:
    # the type is sniffed from content, which OpenAPI cannot express. Every other check runs.
    excluded = [schemathesis.checks.positive_data_acceptance] if case.method == "POST" else []
    case.call_and_validate(excluded_checks=excluded)
