#!/usr/bin/env bash
# The venv for the real-library PaddleOCR-VL tests (tests/paddle): the CPU build of paddlepaddle
# from PyPI and the pinned paddleocr/paddlex the engine is tested against, beside the project
# with its `gpu` extra (no `worker` extra: rapidocr's opencv-python-headless would sit next to
# paddlex's opencv-contrib-python and `cv2` would resolve to either). Separate from .venv for
# that reason. Idempotent: a stamp holding the hash of the pins and pyproject.toml makes a
# second run a no-op (under a second).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${PADDLE_VENV:-.venv-paddle}
# The versions tests/paddle is written against (paddlex internals: the layout stand-in).
PINS=(paddlepaddle==3.3.1 "paddleocr[doc-parser]==3.7.0" paddlex==3.7.2)
STAMP="$VENV/.installed"
want=$( { printf '%s\n' "${PINS[@]}"; cat pyproject.toml; } | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  echo "paddle venv: up to date ($VENV)"
  exit 0
fi
start=$(date +%s)
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "${PINS[@]}" -e '.[gpu]' pytest
# Nothing else may have moved the pins.
"$VENV/bin/python" - "${PINS[@]}" <<'PY'
import sys
from importlib.metadata import version

for pin in sys.argv[1:]:
    name, _, wanted = pin.partition("==")
    name = name.split("[")[0]
    got = version(name)
    if got != wanted:
        sys.exit(f"paddle venv: {name} is {got}, pinned {wanted}")
PY
echo "$want" > "$STAMP"
echo "paddle venv: installed in $(( $(date +%s) - start )) s ($VENV)"
