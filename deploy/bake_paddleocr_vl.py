"""Download the PaddleOCR-VL weights into PADDLE_PDX_CACHE_HOME while an image builds.

A container whose image carries the weights starts without a multi-gigabyte download, so its
warm-up is only the model load. It builds the same `PaddleOCRVL` pipeline the worker builds,
so the same model names and formats land in the cache: the layout model and the VL model of
PADDLEOCR_VL_PIPELINE_VERSION (`--layout-only`: the layout model alone, for an image whose VL
model is served by a VL server that has its own). A build machine usually has no GPU: the
models are downloaded before they are loaded, so a load failure on the CPU is fine as long as
the model folders are there afterwards; a missing one fails the build.

    PADDLE_PDX_CACHE_HOME=/opt/paddlex python deploy/bake_paddleocr_vl.py [--layout-only]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("bake")

# Folder names under official_models/ of each pipeline version's models (paddlex
# configs/pipelines/PaddleOCR-VL*.yaml; a VL model's folder drops "-0.9B"). The same table as
# worker/engines/paddleocr_vl_weights.py, which this script cannot import: it runs before the
# code is copied into the image, so a code edit does not re-download gigabytes.
LAYOUT_MODELS = {"v1": "PP-DocLayoutV2", "v1.5": "PP-DocLayoutV3", "v1.6": "PP-DocLayoutV3"}
VL_MODELS = {"v1": "PaddleOCR-VL", "v1.5": "PaddleOCR-VL-1.5", "v1.6": "PaddleOCR-VL-1.6"}


def cache_home() -> Path:
    return Path(os.environ.get("PADDLE_PDX_CACHE_HOME", Path.home() / ".paddlex"))


def required_models(version: str, *, layout_only: bool = False) -> list[str]:
    if version not in LAYOUT_MODELS:
        raise SystemExit(f"bake: unknown PADDLEOCR_VL_PIPELINE_VERSION={version!r}")
    return [LAYOUT_MODELS[version]] if layout_only else [LAYOUT_MODELS[version], VL_MODELS[version]]


def missing_models(models_dir: Path, names: list[str]) -> list[str]:
    """The names with no folder `<name>` or `<name>_<format>` in `models_dir`."""
    present = [p.name for p in models_dir.iterdir() if p.is_dir()] if models_dir.is_dir() else []
    return [n for n in names if not any(f == n or f.startswith(f"{n}_") for f in present)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--layout-only",
        action="store_true",
        help="the layout model only (a VL server has the VL model)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="bake: %(message)s")
    version = os.environ.get("PADDLEOCR_VL_PIPELINE_VERSION", "v1.6")
    wanted = required_models(version, layout_only=args.layout_only)
    models_dir = cache_home() / "official_models"
    from paddleocr import PaddleOCRVL

    options: dict[str, object] = {"vl_rec_backend": "native"}
    if args.layout_only:
        # A server backend builds no VL model; nothing is sent to the (absent) server here.
        options = {"vl_rec_backend": "vllm-server", "vl_rec_server_url": "http://127.0.0.1:9/v1"}
    try:
        PaddleOCRVL(pipeline_version=version, device="cpu", **options)
    except Exception as exc:  # noqa: BLE001 - judged by the folders below
        log.info(
            "pipeline not loadable here (%s: %s); checking the downloads", type(exc).__name__, exc
        )
    missing = missing_models(models_dir, wanted)
    if missing:
        log.error("pipeline %s: no model folder %s in %s", version, missing, models_dir)
        return 1
    for path in sorted(models_dir.iterdir()):
        log.info("baked %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
