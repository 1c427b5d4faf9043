"""docs/configuration.md is generated from the settings and kept current."""

from __future__ import annotations

import subprocess
import sys

from deploy.config_docs import ROOT, START_HERE, TARGET, render
from ocrq_client.client import ClientSettings
from shared.settings import COUPLINGS, Settings


def test_the_configuration_page_is_current() -> None:
    assert TARGET.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is stale: run `make config-docs` (python -m deploy.config_docs)"
    )


def test_the_page_lists_every_setting_and_every_coupling() -> None:
    page = render()
    for name in Settings.model_fields:
        assert f"| `{name.upper()}` |" in page, name
    for name in ClientSettings.model_fields:
        assert f"| `OCRQ_{name.upper()}` |" in page, name
    assert "| `BROKER_VISIBILITY_TIMEOUT` | int, >= 60 | `7200` | worker |" in page
    for coupling in COUPLINGS:
        assert f"`{coupling.high.upper()}` | above `{coupling.low.upper()}`" in page or (
            f"`{coupling.high.upper()}` | at least `{coupling.low.upper()}`" in page
        )
    start = page.split("## Start here", 1)[1].split("\n## ", 1)[0]
    assert len(START_HERE) == 10
    assert all(f"`{name.upper()}`" in start for name in START_HERE)


def test_the_check_mode_says_the_page_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deploy.config_docs", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
