"""The docs stay true to the code and build: the site (mkdocs --strict: a broken link or anchor
fails), the API's error table against api/errors.py's HTTP_STATUS, and the README as the front
door (short, its links pointing at pages that exist). Fast tier: a few seconds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from api.errors import HTTP_STATUS
from shared.error_codes import ErrorCode

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "api.md"
README = ROOT / "README.md"
CODE = re.compile(r"`([a-z][a-z0-9_]*)`")


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section, up to the next `## `."""
    body = text.split(f"\n## {heading}\n", 1)[1]
    return body.split("\n## ", 1)[0]


def error_rows() -> list[tuple[int, list[str]]]:
    rows = []
    for line in section(API_DOC.read_text(encoding="utf-8"), "Errors").splitlines():
        match = re.match(r"\| (\d{3}) \| (.*?) \|", line)
        if match:
            rows.append((int(match.group(1)), CODE.findall(match.group(2))))
    return rows


def test_the_error_table_gives_each_code_its_status() -> None:
    rows = error_rows()
    assert len(rows) > 20, "docs/api.md lost its error table"
    wrong = [
        (code, status, HTTP_STATUS.get(ErrorCode(code)))
        for status, codes in rows
        for code in codes
        if HTTP_STATUS.get(ErrorCode(code)) != status
    ]
    assert wrong == []


def test_every_code_the_api_answers_is_documented() -> None:
    named = set(CODE.findall(section(API_DOC.read_text(encoding="utf-8"), "Errors")))
    assert sorted(code.value for code in HTTP_STATUS if code.value not in named) == []


def test_failed_jobs_codes_are_members() -> None:
    # the list: each code followed by its reason in brackets, a comma or the full stop
    listed = re.compile(r"`([a-z][a-z0-9_]*)`(?= \(|,|\.)")
    codes = listed.findall(section(API_DOC.read_text(encoding="utf-8"), "Failed jobs"))
    assert {"timeout", "worker_lost", "invalid_image"} <= set(codes)
    assert [code for code in codes if code not in ErrorCode.__members__] == []


def test_the_readme_is_a_front_door_whose_links_lead_somewhere() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    targets = re.findall(r"\]\(((?!https?:|#)[^)#]+)(?:#[^)]*)?\)", text)
    assert "docs/api.md" in targets
    assert [target for target in targets if not (ROOT / target).exists()] == []


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the `docs` extra (make installs it with `dev`)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "architecture" / "index.html").exists()
    # the tour comes from the README (one home): the site's home page shows it
    assert "Five-minute tour" in (tmp_path / "index.html").read_text(encoding="utf-8")
