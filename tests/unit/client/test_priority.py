"""`priority` from the Python client and the `ocrq` CLI: what is sent, and the CLI's default."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ocrq_client.cli.commands import default_priority
from ocrq_client.cli.parser import build_parser
from ocrq_client.client import OcrqClient
from tests.unit.client.test_client import Script, job_body


def _form_field(request: httpx.Request, name: str) -> bytes | None:
    marker = f'name="{name}"\r\n\r\n'.encode()
    if marker not in request.content:
        return None
    return request.content.split(marker, 1)[1].split(b"\r\n", 1)[0]


def test_submit_sends_priority_only_when_given() -> None:
    script = Script(httpx.Response(202, json=job_body()), httpx.Response(202, json=job_body()))
    client = script.client()

    client.submit(b"\x89PNG", filename="a.png", priority="high")
    client.submit(b"\x89PNG", filename="a.png")

    assert _form_field(script.requests[0], "priority") == b"high"
    assert _form_field(script.requests[1], "priority") is None


def test_a_bad_priority_is_refused_before_sending() -> None:
    script = Script()
    with pytest.raises(ValueError, match="high, normal, batch"):
        OcrqClient("http://ocrq.test", transport=httpx.MockTransport(script)).submit(
            b"x", filename="a.png", priority="urgent"
        )
    assert script.requests == []


def test_the_cli_sends_batch_for_folders_and_many_files_normal_for_one(tmp_path: Path) -> None:
    (tmp_path / "scans").mkdir()
    one = tmp_path / "a.png"
    one.write_bytes(b"x")

    assert default_priority([str(tmp_path / "scans")], 1) == "batch"
    assert default_priority([str(one), str(one)], 2) == "batch"
    assert default_priority([str(one)], 1) == "normal"


def test_the_cli_takes_priority_to_override() -> None:
    parser = build_parser()
    assert parser.parse_args(["submit", "x.png", "--priority", "high"]).priority == "high"
    assert parser.parse_args(["submit", "folder"]).priority is None
    with pytest.raises(SystemExit):
        parser.parse_args(["submit", "x.png", "--priority", "urgent"])
