"""The settings the deploy files give each process are ones it starts with: every value valid
and coupled settings in agreement (BROKER_VISIBILITY_TIMEOUT above JOB_TIMEOUT_SECONDS...)."""

from __future__ import annotations

import re

import pytest

from shared.settings import Settings
from tests.unit.deploy.test_compose import SERVICES
from tests.unit.deploy.test_k8s import env_of

# ${NAME:-default} / ${NAME-default} / ${NAME}: what compose gives when NAME is unset
COMPOSE_DEFAULT = re.compile(r"\$\{[A-Z0-9_]+(?::?-([^}]*))?\}")
OCRQ_SERVICES = [name for name, s in SERVICES.items() if "REDIS_URL" in s.get("environment", {})]


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


@pytest.mark.parametrize("deployment", ["ocrq-api", "ocrq-worker"])
def test_each_k8s_deployment_gets_settings_it_starts_with(
    deployment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_from(env_of(deployment), monkeypatch)
    assert settings.broker_visibility_timeout > settings.job_timeout_seconds


@pytest.mark.parametrize("service", OCRQ_SERVICES)
def test_each_compose_service_gets_settings_it_starts_with(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        name: COMPOSE_DEFAULT.sub(lambda m: m.group(1) or "", str(value))
        for name, value in SERVICES[service]["environment"].items()
    }
    settings = _settings_from(env, monkeypatch)
    assert settings.redis_url == env["REDIS_URL"]
