"""`ocrq submit`'s choice of files and of where their results go; its command-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocrq_client.cli import main
from ocrq_client.cli.atomic import write_atomically
from ocrq_client.cli.errors import EXIT_USAGE, UsageError
from ocrq_client.cli.parser import build_parser
from ocrq_client.cli.selection import collect_files


def _tree(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def test_folders_give_supported_files_with_relative_names(tmp_path: Path) -> None:
    _tree(tmp_path, "a.png", "B.PDF", "notes.txt", ".hidden.png", "sub/c.jpg", "sub/deep/d.tif")

    top = collect_files([str(tmp_path)])
    everything = collect_files([str(tmp_path)], recursive=True)

    assert [f.name for f in top] == ["B.PDF", "a.png"]
    assert [f.name for f in everything] == ["B.PDF", "a.png", "sub/c.jpg", "sub/deep/d.tif"]


def test_include_globs_match_name_or_relative_path_case_insensitively(tmp_path: Path) -> None:
    _tree(tmp_path, "a.png", "b.PDF", "sub/c.pdf", "sub/d.png")

    pdfs = collect_files([str(tmp_path)], recursive=True, include=["*.pdf"])
    sub = collect_files([str(tmp_path)], recursive=True, include=["sub/*"])

    assert [f.name for f in pdfs] == ["b.PDF", "sub/c.pdf"]
    assert [f.name for f in sub] == ["sub/c.pdf", "sub/d.png"]


def test_results_mirror_the_tree_under_out_and_out_is_never_scanned(tmp_path: Path) -> None:
    _tree(tmp_path, "in/x.png", "in/sub/y.pdf", "in/out/z.png")
    out = tmp_path / "in" / "out"

    files = collect_files([str(tmp_path / "in")], recursive=True, out_dir=out, fmt="markdown")

    assert {f.name: f.out for f in files} == {
        "x.png": out / "x.png.md",
        "sub/y.pdf": out / "sub/y.pdf.md",
    }


def test_named_files_are_taken_whatever_their_suffix(tmp_path: Path) -> None:
    _tree(tmp_path, "scan.dat")

    assert [f.name for f in collect_files([str(tmp_path / "scan.dat")])] == ["scan.dat"]


def test_two_inputs_with_the_same_relative_name_are_refused(tmp_path: Path) -> None:
    _tree(tmp_path, "a/x.png", "b/x.png")

    with pytest.raises(UsageError, match=r"x\.png"):
        collect_files([str(tmp_path / "a"), str(tmp_path / "b")])


def test_missing_input_and_bad_concurrency_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["submit", str(tmp_path / "nope")]) == EXIT_USAGE
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["submit", str(tmp_path), "--concurrency", "0"]) == EXIT_USAGE
    assert main(["submit", str(tmp_path), "--streams", "0"]) == EXIT_USAGE
    assert "--streams must be at least 1" in capsys.readouterr().err


def test_every_command_has_help(capsys) -> None:
    for command in ("submit", "status", "result", "cancel"):
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([command, "--help"])
        assert done.value.code == 0
        assert "--url" in capsys.readouterr().out


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "r.json"

    write_atomically(target, b"{}")

    assert target.read_bytes() == b"{}"
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_unreachable_service_stops_the_run_with_files_left_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import json
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OCRQ_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OCRQ_MAX_ATTEMPTS", "1")
    _tree(tmp_path / "in", *(f"p{n}.png" for n in range(6)))
    report = tmp_path / "r.json"

    code = main(["submit", str(tmp_path / "in"), "-c", "2", "--report", str(report)])

    assert code == 1
    body = json.loads(report.read_text())
    assert body["not_submitted"] == 6 and body["failed"] == 0
    assert "ConnectError" in body["unreachable"]
    err = capsys.readouterr().err
    assert "stopped answering" in err and "Run the same command again" in err
