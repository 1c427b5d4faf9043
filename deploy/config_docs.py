"""Write docs/configuration.md from the settings themselves (shared/settings.py's rooms and the
client's ClientSettings), so the reference cannot drift from the code.

    python -m deploy.config_docs          # rewrite docs/configuration.md (make config-docs)
    python -m deploy.config_docs --check  # exit 1 when the file is stale

tests/unit/shared/test_config_docs.py fails when the file is stale.
"""

from __future__ import annotations

import argparse
import sys
import types
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from ocrq_client.client import ClientSettings
from shared.settings import COUPLINGS, Settings, process_of, room_of, rooms

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "configuration.md"

# The ten settings most deployments set, with why; the full entry is in its room below.
START_HERE = {
    "redis_url": "point every process at the one Redis they share",
    "storage_url": "job files in a bucket instead of a shared volume",
    "temp_dir": "uploads on the shared volume (or a process's scratch with a bucket)",
    "output_dir": "results on the shared volume (or a process's scratch with a bucket)",
    "ocr_engine": "the engine a worker warms (GPU: `paddleocr-vl`)",
    "api_keys": "turn on bearer-key auth (or API_KEYS_FILE for a mounted secret)",
    "port": "where the API listens",
    "max_upload_mb": "the largest upload",
    "job_timeout_seconds": "the longest job; keep BROKER_VISIBILITY_TIMEOUT above it",
    "log_format": "`json` for a log collector",
}

# Env vars that were settings once; a process now ignores them.
RETIRED = {
    "RAPIDOCR_DET_LIMIT_SIDE_LEN": "fixed at 960 (`DET_LIMIT_SIDE_LEN` in "
    "worker/engines/rapidocr_engine.py), the rapidocr detector's input size: it keeps the "
    "accuracy of larger sizes and cuts latency; no deploy file, test or benchmark set it",
}

PROCESSES = {
    "api": "`python -m api`",
    "worker": "`python -m worker` (and `worker.process`, `worker.webhooks`, `worker.probe`)",
    "both": "the API and the worker: give both the same value",
    "client": "the `ocrq` command and the Python client (`ocrq_client`), on the client's machine",
}

INTRO = """\
# Configuration

<!-- Generated from shared/settings.py and ocrq_client/client.py by `make config-docs`
(python -m deploy.config_docs): edit the settings, not this file. A fast test fails when it is
stale. -->

Every setting is an environment variable, read once when a process starts. A bad value, or
two settings that disagree, stops the process (exit 2) with a message naming each variable and
the process that reads it. Names are case-insensitive; unknown variables are ignored.

Each setting says which process reads it:

{processes}
"""


def render() -> str:
    """The whole of docs/configuration.md."""
    processes = "\n".join(f"- **{name}**: {what}" for name, what in PROCESSES.items())
    parts = [INTRO.format(processes=processes), _start_here(), _couplings()]
    for room in rooms():
        parts.append(_room(room.ROOM, room.__doc__ or "", room.model_fields, env_prefix=""))
    loose = [n for n in Settings.model_fields if room_of(n) is None]
    if loose:  # declared on Settings itself: tests/unit/shared/test_settings_rooms.py objects
        fields = {n: Settings.model_fields[n] for n in loose}
        parts.append(_room("Not yet in a room", "Move these into their room's class.", fields, ""))
    parts.append(
        _room(
            "Client: the ocrq command and Python client",
            ClientSettings.__doc__ or "",
            ClientSettings.model_fields,
            env_prefix=str(ClientSettings.model_config.get("env_prefix", "")),
            process="client",
        )
    )
    parts.append(_retired())
    return "\n".join(parts)


def _start_here() -> str:
    rows = [
        f"| `{name.upper()}` | {_default(Settings.model_fields[name])} | {process_of(name)} "
        f"| {why} |"
        for name, why in START_HERE.items()
    ]
    return (
        "## Start here\n\nThe settings most deployments set; every one is described in its "
        "group below.\n\n| variable | default | process | set it for |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )


def _couplings() -> str:
    rows = [
        f"| `{c.high.upper()}` | {'above' if c.strict else 'at least'} `{c.low.upper()}` "
        f"| {process_of(c.low)} | {_cell(c.why)} |"
        for c in COUPLINGS
    ]
    return (
        "## Settings that must agree\n\nChecked at start, by every process: one that does not "
        "hold stops it with a message naming both variables. "
        "`BROKER_VISIBILITY_TIMEOUT` defaults to 7200 s, above the 3600 s of "
        "`JOB_TIMEOUT_SECONDS`: raise it with the job timeout.\n\n"
        "| setting | must be | process | why |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def _room(
    title: str,
    doc: str,
    fields: dict[str, FieldInfo],
    env_prefix: str,
    process: str | None = None,
) -> str:
    rows = []
    for name, field in fields.items():
        reads = process or process_of(name)
        rows.append(
            f"| `{(env_prefix + name).upper()}` | {_type(field)} | {_default(field)} | {reads} "
            f"| {_cell(field.description or '')} |"
        )
    intro = " ".join(line.strip() for line in doc.strip().splitlines())
    return (
        f"## {title}\n\n{intro}\n\n| variable | type | default | process | description |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def _retired() -> str:
    rows = "\n".join(f"- `{name}`: {why}." for name, why in RETIRED.items())
    return f"## Ignored variables\n\nConstants, not settings: set, these are ignored.\n\n{rows}\n"


def _type(field: FieldInfo) -> str:
    name = _type_name(field.annotation)
    bounds = []
    for item in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(item, getattr(annotated_types, attr.capitalize())):
                bounds.append(f"{sign} {getattr(item, attr)}")
    return name + (f", {' and '.join(bounds)}" if bounds else "")


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{v}`" if v != "" else "empty" for v in get_args(annotation))
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return " \\| ".join(_type_name(a) for a in args) + " (optional)"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " \\| ".join(f"`{member.value}`" for member in annotation)
    simple = {str: "string", int: "int", float: "number", bool: "bool", Path: "path"}
    if annotation is SecretStr:
        return "secret string"
    return simple.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    value = field.default
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None:
        return "unset"
    if value == "" and not isinstance(value, bool):
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if TARGET.read_text(encoding="utf-8") != text:
            sys.stderr.write(f"{TARGET.relative_to(ROOT)} is stale: run `make config-docs`\n")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {TARGET.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
