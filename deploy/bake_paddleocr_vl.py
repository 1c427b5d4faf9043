"""Download the PaddleOCR-VL weights into PADDLE_PDX_CACHE_HOME while the worker image builds.

A pod whose image carries the weights starts without a multi-gigabyte download, so its warm-up
is only the model load. It builds the same `PaddleOCRVL` pipeline the worker builds, so the same
model names and formats land in the cache. A build machine usually has no GPU: the layout and
VL models are downloaded before they are loaded, so a load failure on the CPU is fine as long as
the model folders are there afterwards.

    PADDLE_PDX_CACHE_HOME=/opt/paddlex python deploy/bake_paddleocr_vl.py
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("bake")

# Folder-name prefixes under official_models/ of the two models every pipeline version needs:
# PP-DocLayoutV2/V3 (layout) and PaddleOCR-VL[-1.5|-1.6] (the VL model).
REQUIRED_PREFIXES = ("PP-DocLayout", "PaddleOCR-VL")


def cache_home() -> Path:
    return Path(os.environ.get("PADDLE_PDX_CACHE_HOME", Path.home() / ".paddlex"))


def missing_models(models_dir: Path) -> list[str]:
    """The required prefixes with no matching folder in `models_dir`."""
    present = [p.name for p in models_dir.iterdir() if p.is_dir()] if models_dir.is_dir() else []
    return [
        prefix for prefix in REQUIRED_PREFIXES if not any(n.startswith(prefix) for n in present)
    ]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="bake: %(message)s")
    version = os.environ.get("PADDLEOCR_VL_PIPELINE_VERSION", "v1.6")
    models_dir = cache_home() / "official_models"
    from paddleocr import PaddleOCRVL

    try:
        PaddleOCRVL(pipeline_version=version, vl_rec_backend="native", device="cpu")
    except Exception as exc:  # noqa: BLE001 - judged by the folders below
        log.info(
            "pipeline not loadable here (%s: %s); checking the downloads", type(exc).__name__, exc
        )
    missing = missing_models(models_dir)
    if missing:
        log.error("no model folder starting with %s in %s", missing, models_dir)
        return 1
    for path in sorted(models_dir.iterdir()):
        log.info("baked %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
