"""One worker process: boot (dirs, engine warm-up) then consume its engine's queues.

Started (and restarted) by `python -m worker`; run `python -m worker.process` directly to do
without the supervisor.
"""

from __future__ import annotations

import argparse

from shared.logs import configure_logging
from shared.settings import load_settings
from shared.tracing import start_tracing, stop_tracing
from worker.boot import boot_and_consume
from worker.parent_death import die_with_parent


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="OCR worker: checks TEMP_DIR/OUTPUT_DIR (and the bucket STORAGE_URL names, "
        "if set: then REDIS_URL and STORAGE_URL are all it shares), warms the OCR_ENGINE at boot, "
        "then takes jobs from its engine's queues (ocr.<OCR_ENGINE>.high, .normal, .batch, then "
        "the pre-upgrade 'ocr' queue) one at a time (solo pool; run more processes to "
        "use more cores). A batching engine (paddleocr-vl) holds BATCH_JOBS jobs at once and "
        "sends their pages in batches of up to BATCH_SIZE, waiting at most "
        "BATCH_FILL_SECONDS for a batch to fill; on a VL server backend up to "
        "BATCH_IN_FLIGHT batches are read at once. With WORKER_MAX_JOBS or WORKER_MAX_RSS_MB set, "
        "the process is recycled between jobs (the supervisor starts a fresh one at once).",
    )
    parser.add_argument(
        "--name",
        help="worker id shown in /ready and read by `python -m worker.probe` (default: the host "
        "name; give each worker process on one host its own)",
    )
    return parser


def main() -> None:
    parser = build_parser("python -m worker.process")
    # given by the supervisor (`python -m worker`): this process dies with it
    parser.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)
    # given by the supervisor when the previous process was recycled (worker/recycling.py)
    parser.add_argument("--recycled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.supervisor_pid is not None:
        die_with_parent(args.supervisor_pid)  # first: before the engine is warm for nothing
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    start_tracing(settings, "ocrq-worker")  # OTEL_EXPORTER_OTLP_ENDPOINT set: spans
    try:
        code = boot_and_consume(settings, args.name, recycled=args.recycled)
    finally:
        stop_tracing()  # the spans still buffered go out before the process ends
    raise SystemExit(code)


if __name__ == "__main__":
    main()
