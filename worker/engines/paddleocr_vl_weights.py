"""Are the PaddleOCR-VL weights in paddlex's model cache, or must this start download them?

paddlex keeps each official model in `PADDLE_PDX_CACHE_HOME/official_models/<name>` (or
`<name>_<format>`), uses a folder that exists as it is, and downloads a missing one while the
pipeline is built, staged in the system temp folder (`tempfile`, hence `TMPDIR`) and then moved
into the cache (paddlex/inference/utils/official_models.py; a VL model's folder drops the
"-0.9B" of its name). The GPU image bakes both models (Dockerfile.worker, `BAKE_MODELS=1`). A
start that must download says so in one log line, before the engine is built, naming what is
missing, where it goes and where it is staged. No paddle import here: this runs before the
engine's imports, and on images without paddle in the tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

# The models of each pipeline version (paddlex configs/pipelines/PaddleOCR-VL*.yaml), as folder
# names under official_models/. deploy/bake_paddleocr_vl.py keeps the same table (it runs
# before the code is in the image); tests/unit/test_paddleocr_vl_weights.py holds them equal.
LAYOUT_MODELS = {"v1": "PP-DocLayoutV2", "v1.5": "PP-DocLayoutV3", "v1.6": "PP-DocLayoutV3"}
VL_MODELS = {"v1": "PaddleOCR-VL", "v1.5": "PaddleOCR-VL-1.5", "v1.6": "PaddleOCR-VL-1.6"}


def cache_home(environ: Mapping[str, str] | None = None) -> Path:
    """paddlex's cache home: PADDLE_PDX_CACHE_HOME, else ~/.paddlex (paddlex/utils/cache.py)."""
    env = os.environ if environ is None else environ
    home = env.get("PADDLE_PDX_CACHE_HOME")
    return Path(home) if home else Path.home() / ".paddlex"


def required_models(pipeline_version: str, *, layout: bool, native: bool) -> list[str]:
    """The model folders a pipeline needs here: the layout model when layout detection is on,
    the VL model when it runs in this process (native); a VL server holds its own."""
    needed = []
    if layout and pipeline_version in LAYOUT_MODELS:
        needed.append(LAYOUT_MODELS[pipeline_version])
    if native and pipeline_version in VL_MODELS:
        needed.append(VL_MODELS[pipeline_version])
    return needed


def missing_models(models_dir: Path, names: Iterable[str]) -> list[str]:
    """The names with no folder `<name>` or `<name>_<format>` in `models_dir`."""
    present = [p.name for p in models_dir.iterdir() if p.is_dir()] if models_dir.is_dir() else []
    return [
        name
        for name in names
        if not any(folder == name or folder.startswith(f"{name}_") for folder in present)
    ]


def staging_dir() -> Path:
    """Where a download is staged: TMPDIR, created when missing (tempfile would otherwise fall
    back to /tmp without a word), or the system temp folder."""
    wanted = os.environ.get("TMPDIR")
    if wanted:
        # On failure tempfile falls back to another folder; gettempdir() below says which.
        with contextlib.suppress(OSError):
            Path(wanted).mkdir(parents=True, exist_ok=True)
        tempfile.tempdir = None  # re-read TMPDIR on the next call
    return Path(tempfile.gettempdir())


def announce_download(pipeline_version: str, *, layout: bool, native: bool) -> list[str]:
    """Log one line when this start must download weights; return the missing model names."""
    models_dir = cache_home() / "official_models"
    missing = missing_models(
        models_dir, required_models(pipeline_version, layout=layout, native=native)
    )
    if missing:
        vl = any(name in VL_MODELS.values() for name in missing)
        log.warning(
            "PaddleOCR-VL weights not in the image: downloading %s%s into %s now, staged in %s; "
            "build the image with BAKE_MODELS=1 to start without a download",
            ", ".join(missing),
            " (the VL model is about 2 GB)" if vl else "",
            models_dir,
            staging_dir(),
        )
    return missing
