"""`python -m worker.webhooks`: the webhook dispatcher and sender alone, without an engine.

For deployments that want deliveries off the OCR workers (set WEBHOOK_DISPATCHER=false on
those); any number may run, beside the workers' own or instead of them.
"""

from __future__ import annotations

import argparse
import signal
from types import FrameType

from shared.logs import configure_logging
from shared.settings import load_settings
from worker.webhooks.service import WebhookService


def main() -> None:
    argparse.ArgumentParser(
        prog="python -m worker.webhooks",
        description="Send the webhook deliveries of job events (settings from the environment: "
        "REDIS_URL, WEBHOOK_SECRET, CALLBACK_ALLOWED_NETWORKS, WEBHOOK_*; see docs/webhooks.md).",
    ).parse_args()
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    service = WebhookService(settings)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        service.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    service.start()
    service.wait()
    service.stop()


if __name__ == "__main__":
    main()
