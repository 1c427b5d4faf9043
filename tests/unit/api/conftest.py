from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from shared.settings import Settings
from tests.unit.api.owners import KEYS


@pytest.fixture
def secured(settings: Settings) -> Settings:
    """The test settings with API_KEYS set to ALICE's and BOB's keys."""
    return settings.model_copy(update={"api_keys": KEYS})


@pytest.fixture
def owner_client(secured: Settings) -> Iterator[TestClient]:
    """The app with API keys on (tests/unit/api/owners.py)."""
    with TestClient(create_app(secured)) as test_client:
        yield test_client
