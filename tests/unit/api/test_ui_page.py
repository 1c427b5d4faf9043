"""The web page (/ui) and the offline docs, as served: what a browser gets, and that nothing
of it comes from another host. (tests/integration/test_ui_browser.py drives it in Chromium.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.ui import STATIC_DIR
from shared.error_codes import ErrorCode
from shared.settings import Settings

DEAD_REDIS = "redis://127.0.0.1:6399/0"  # nothing listens there: these pages need no Redis
# URLs in the page or the docs' HTML that name another host (the SVG namespace is no request)
_EXTERNAL = re.compile(r"""(?:https?:)?//(?!www\.w3\.org/2000/svg)[\w.-]+\.[a-z]{2,}""", re.I)
_REFERENCES = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


def _settings(tmp_path: Path, **changes: object) -> Settings:
    return Settings(
        redis_url=DEAD_REDIS, temp_dir=tmp_path / "t", output_dir=tmp_path / "o", **changes
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path))) as test_client:
        yield test_client


def test_the_index_links_the_page_and_ui_redirects_to_it(client: TestClient) -> None:
    assert client.get("/").json()["ui"] == "/ui/"
    response = client.get("/ui", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (307, "ui/")
    page = client.get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<input id="files" name="file" type="file" multiple' in page.text


def test_every_file_the_page_references_is_served_from_here(client: TestClient) -> None:
    html = client.get("/ui/").text
    references = _REFERENCES.findall(html)
    assert {"ocrq.css", "ocrq.js", "../docs"} <= set(references)
    for ref in references:
        assert client.get(f"/ui/{ref}").status_code == 200, ref
    for name in ("index.html", "ocrq.js", "ocrq.css"):
        text = (STATIC_DIR / name).read_text()
        assert not _EXTERNAL.findall(text), name


@pytest.mark.parametrize(("path", "assets"), [("/docs", 2), ("/redoc", 1)])
def test_docs_load_their_assets_from_this_server(client: TestClient, path: str, assets) -> None:
    html = client.get(path).text
    assert not _EXTERNAL.findall(html), html
    scripts = [ref for ref in _REFERENCES.findall(html) if ref.endswith((".js", ".css"))]
    assert len(scripts) == assets
    for ref in scripts:
        response = client.get(ref)
        assert response.status_code == 200, ref
        assert len(response.content) > 100_000, ref  # the real bundle, not a stub
    assert client.get("/openapi.json").status_code == 200


def test_every_error_code_has_words_for_a_person() -> None:
    script = (STATIC_DIR / "ocrq.js").read_text()
    table = script.split("const ERROR_WORDS = {", 1)[1].split("\n};", 1)[0]
    worded = set(re.findall(r"^\s+(\w+): \"", table, re.M))
    assert worded == {code.value for code in ErrorCode}


def test_config_tells_the_page_what_the_server_takes(tmp_path: Path) -> None:
    settings = _settings(tmp_path, api_keys="k1", max_upload_mb=7, max_pages=12, ui_low_score=0.5)
    with TestClient(create_app(settings)) as client:
        config = client.get("/ui/config.json").json()
        page = client.get("/ui/")  # the page itself needs no key: it asks for one
    assert config == {
        "auth_required": True,
        "max_upload_mb": 7,
        "max_pages": 12,
        "languages": ["auto", "ru", "en"],
        "dpi_min": 72,
        "dpi_max": 600,
        "low_score": 0.5,
    }
    assert page.status_code == 200
