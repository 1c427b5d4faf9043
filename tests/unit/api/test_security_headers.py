"""Security headers on every response: nosniff and DENY everywhere, a strict CSP for the page
(which holds no inline script or style to need a looser one), none that breaks /docs, and
`default-src 'none'; sandbox` on everything else, the stored files too.
(tests/integration/test_ui_browser.py checks the page and the docs in Chromium: no CSP report.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.archives.produce import ARCHIVE_MEDIA_TYPES
from api.security_headers import API_POLICY, DOCS_POLICY, UI_POLICY
from api.ui import STATIC_DIR
from shared.settings import Settings

DEAD_REDIS = "redis://127.0.0.1:6399/0"  # nothing listens there: these answers need no Redis


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(redis_url=DEAD_REDIS, temp_dir=tmp_path / "t", output_dir=tmp_path / "o")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("path", "policy"),
    [
        ("/ui/", UI_POLICY),
        ("/ui/ocrq.js", UI_POLICY),
        ("/ui/config.json", UI_POLICY),
        ("/docs", DOCS_POLICY),
        ("/redoc", DOCS_POLICY),
        ("/openapi.json", DOCS_POLICY),
        ("/docs-assets/swagger-ui.css", DOCS_POLICY),
        ("/health", API_POLICY),
        ("/", API_POLICY),
        ("/jobs/" + "0" * 32, API_POLICY),  # an error answer (Redis is down) too
        ("/no/such/route", API_POLICY),
    ],
)
def test_every_response_carries_nosniff_deny_and_its_policy(
    client: TestClient, path: str, policy: str
) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"] == policy
    assert "frame-ancestors 'none'" in policy


def test_behind_a_prefix_the_page_keeps_its_policy(tmp_path: Path) -> None:
    settings = Settings(redis_url=DEAD_REDIS, temp_dir=tmp_path / "t", output_dir=tmp_path / "o")
    with TestClient(create_app(settings), root_path="/ocr") as client:
        page = client.get("/ocr/ui/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == UI_POLICY


def test_hocr_is_never_served_as_a_page_and_stored_files_run_nothing() -> None:
    assert ARCHIVE_MEDIA_TYPES["hocr"].startswith("text/vnd.hocr+html")
    assert "sandbox" in API_POLICY and "default-src 'none'" in API_POLICY
    assert "'unsafe-inline'" not in UI_POLICY and "'unsafe-eval'" not in UI_POLICY


class _InlineFinder(HTMLParser):
    """What a strict CSP would refuse in a page: inline script and style, handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "style" or (tag == "script" and "src" not in names):
            self.found.append(f"<{tag}> inline")
        self.found += [f"<{tag} {n}=>" for n in names if n == "style" or n.startswith("on")]


def test_the_page_has_no_inline_script_style_or_handlers() -> None:
    finder = _InlineFinder()
    finder.feed((STATIC_DIR / "index.html").read_text())
    script = (STATIC_DIR / "ocrq.js").read_text()
    assert finder.found == []
    # markup the script writes, and what it sets, would be refused the same way
    assert not re.findall(r"""style=|\son\w+=|setAttribute\(["'](style|on\w+)""", script)
    assert not re.findall(r"\beval\(|new Function\(", script)
