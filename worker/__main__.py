"""`python -m worker`: boot (dirs, engine warm-up) then consume the `ocr` queue."""

from __future__ import annotations

import argparse

from shared.logs import configure_logging
from shared.settings import load_settings
from worker.boot import boot_and_consume


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m worker",
        description="OCR worker: checks TEMP_DIR/OUTPUT_DIR, warms the OCR_ENGINE at boot, "
        "then takes jobs from the 'ocr' queue one at a time (solo pool). Run more processes "
        "to use more cores.",
    )
    parser.add_argument(
        "--name",
        help="worker id shown in /ready and read by `python -m worker.probe` (default: the host "
        "name; give each worker process on one host its own)",
    )
    args = parser.parse_args()
    settings = load_settings()
    configure_logging(settings.log_level)
    raise SystemExit(boot_and_consume(settings, args.name))


if __name__ == "__main__":
    main()
