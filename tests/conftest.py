"""Shared fixtures (settings on a test Redis database, temporary folders) and the two tiers.

A test is `integration` (needs Redis, a warm OCR engine or real processes) when it lives under
tests/integration or tests/paddle, takes a fixture declared with `@service_fixture` (directly or
through another fixture, e.g. `settings` -> `redis_client`), or carries the mark itself.
Everything else is the fast tier, `pytest -m "not integration"` (`make test-fast`), and is held
to it: a fast-tier test that reaches the test Redis or imports an OCR/GPU library fails and says
which mark it lacks.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from shared.settings import Settings
from testkit.s3server import S3Server, running_s3_server

# OCRQ_TEST_REDIS_URL (no db) moves the server, e.g. to a closed port to prove the fast tier
# needs none.
TEST_REDIS_URL = os.environ.get("OCRQ_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")

# The test Redis's dbs, four per pytest process so parallel workers (pytest-xdist, `make test`
# runs `-n 2`) never flush each other's data: in order, the unit tests' db (`redis_client`,
# `side_stack`), the session stack's (tests/integration/conftest.py), the fault tests' and the
# page-range stack's. A serial run is worker gw0; gw1 takes the next four, gw2 the next. Never
# 0 (the service's default), 5 (the benchmarks'), 8 or 9 (other tools on a shared Redis).
# OCRQ_TEST_DBS (comma-separated, a multiple of four) moves them, e.g. for a second checkout
# sharing one Redis.
TEST_DB_ROLES = ("unit", "stack", "fault", "ranges")
DEFAULT_TEST_DBS = "14,15,12,11, 13,10,7,6, 4,3,2,1"


def _worker_dbs() -> dict[str, int]:
    dbs = [int(db) for db in os.environ.get("OCRQ_TEST_DBS", DEFAULT_TEST_DBS).split(",")]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # set by pytest-xdist in its workers
    start = int(worker.removeprefix("gw")) * len(TEST_DB_ROLES)
    mine = dbs[start : start + len(TEST_DB_ROLES)]
    if len(mine) < len(TEST_DB_ROLES):
        raise pytest.UsageError(
            f"OCRQ_TEST_DBS has Redis dbs for {len(dbs) // len(TEST_DB_ROLES)} pytest-xdist "
            f"workers, not for {worker}: run fewer (-n) or list more dbs"
        )
    return dict(zip(TEST_DB_ROLES, mine, strict=True))


TEST_DBS = _worker_dbs()


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: `-n auto`, at most a worker per 4 dbs
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    dbs = os.environ.get("OCRQ_TEST_DBS", DEFAULT_TEST_DBS).split(",")
    return max(1, min(os.cpu_count() or 1, len(dbs) // len(TEST_DB_ROLES)))


UNIT_REDIS_URL = f"{TEST_REDIS_URL}/{TEST_DBS['unit']}"

TESTS = Path(__file__).resolve().parent
# Folders whose every test starts real processes or loads the real libraries.
INTEGRATION_DIRS = (TESTS / "integration", TESTS / "paddle")
# Imported only by worker/engines/* when an engine is built or warmed (the layout test holds the
# same list for the source tree).
OCR_LIBRARIES = frozenset(
    {"paddle", "paddleocr", "paddlex", "rapidocr", "onnxruntime", "tesserocr", "cv2", "torch"}
)
FAST_TIER_HINT = (
    "take the `redis_client`/`settings`/`engine` fixture (that marks it integration), declare "
    "its own fixture with `@service_fixture`, or mark it `@pytest.mark.integration`"
)


def service_fixture(function: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """`pytest.fixture` for a fixture that reaches Redis, warms a real engine or starts the
    service's processes: every test taking it, even through another fixture, is integration."""

    def register(fixture_function: Callable[..., Any]) -> Any:
        fixture_function.needs_services = True  # type: ignore[attr-defined]
        return pytest.fixture(fixture_function, **kwargs)

    return register(function) if function is not None else register


def _takes_a_service_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)  # pytest's resolved fixture closure of the test
    if info is None:
        return False
    return any(
        getattr(defs[-1].func, "needs_services", False)
        for defs in info.name2fixturedefs.values()
        if defs
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path))
        if any(path.is_relative_to(folder) for folder in INTEGRATION_DIRS) or (
            _takes_a_service_fixture(item)
        ):
            item.add_marker(pytest.mark.integration)


def _test_redis_ports() -> set[tuple[str, int]]:
    """Where a fast-tier test must not connect: the test Redis and the settings' default."""
    test = urlsplit(UNIT_REDIS_URL)
    default = urlsplit(Settings.model_fields["redis_url"].default)
    return {
        (test.hostname or "127.0.0.1", test.port or 6379),
        (default.hostname or "127.0.0.1", default.port or 6379),
    }


class _RefuseOcrLibraries(importlib.abc.MetaPathFinder):
    """Fails a fast-tier test at the first import of an OCR or GPU library not yet loaded."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname.partition(".")[0] in OCR_LIBRARIES:
            pytest.fail(
                f"{self.nodeid} imports {fullname} (an OCR engine) in the fast tier: "
                + FAST_TIER_HINT,
                pytrace=False,
            )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Around a fast-tier test's setup (its module- and session-scoped fixtures too), call and
    teardown: connecting to the test Redis or importing an OCR library fails it (pytest.fail is
    a BaseException, so no `except` in the code under test eats it)."""
    if item.get_closest_marker("integration") is not None:
        yield
        return
    refused = _test_redis_ports()

    def guard(connect):  # type: ignore[no-untyped-def]
        def refuse(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            if (getattr(self, "host", None), getattr(self, "port", None)) in refused:
                pytest.fail(
                    f"{item.nodeid} connects to Redis at {self.host}:{self.port} in the fast "
                    "tier: " + FAST_TIER_HINT,
                    pytrace=False,
                )
            return connect(self, *args, **kwargs)

        return refuse

    import redis.asyncio.connection

    finder = _RefuseOcrLibraries(item.nodeid)
    with pytest.MonkeyPatch.context() as patch:
        for module in (redis.connection, redis.asyncio.connection):
            patch.setattr(module.Connection, "_connect", guard(module.Connection._connect))
        sys.meta_path.insert(0, finder)
        try:
            yield
        finally:
            sys.meta_path.remove(finder)


@service_fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(UNIT_REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(
            f"no Redis at {TEST_REDIS_URL}: run scripts/ensure-redis.sh (make test does), or run "
            'only the fast tier: pytest -m "not integration" (make test-fast)'
        )
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings(tmp_path: Path, redis_client: redis.Redis) -> Settings:
    return Settings(
        redis_url=UNIT_REDIS_URL,
        temp_dir=tmp_path / "temp",
        output_dir=tmp_path / "output",
        max_upload_mb=1,
    )


@service_fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3-compatible server (moto) on loopback for the session; each test makes its bucket."""
    with running_s3_server(tmp_path_factory.mktemp("moto")) as server:
        yield server
