"""`python -m worker.webhooks`: the webhook dispatcher and sender alone, without an engine.

For deployments that want deliveries off the OCR workers (set WEBHOOK_DISPATCHER=false on
those); any number may run, beside the workers' own or instead of them.

`python -m worker.webhooks secret` reads API keys on stdin (one a line: never in argv, which
`ps` shows) and prints, for each, the Standard Webhooks secret (whsec_<base64>) that signs its
jobs' deliveries, for the operator to hand that key's tenant; with auth off, the one secret.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from shared.api_keys import owner_fingerprint, whsec
from shared.logs import configure_logging
from shared.settings import Settings, load_settings
from worker.webhooks.signing import key_for


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m worker.webhooks",
        description="Send the webhook deliveries of job events (settings from the environment: "
        "REDIS_URL, WEBHOOK_SECRET, CALLBACK_ALLOWED_NETWORKS, WEBHOOK_*; see docs/webhooks.md).",
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["send", "secret"],
        default="send",
        help="send (default): run the dispatcher and sender; secret: print the webhook secret "
        "of each API key read on stdin (one a line)",
    )
    command = parser.parse_args().command
    settings = load_settings()
    if command == "secret":
        sys.exit(print_secrets(settings, sys.stdin.read().split()))
    configure_logging(settings.log_level, settings.log_format)
    from worker.webhooks.service import WebhookService  # here: `secret` needs no Celery

    service = WebhookService(settings)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        service.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    service.start()
    service.wait()
    service.stop()


def print_secrets(settings: Settings, keys: list[str]) -> int:
    """One secret (whsec_<base64>) a line, in the keys' order; exit status 2 (and nothing
    printed) when a key is not one the service knows or has no secret. With auth off (no keys
    configured) the one secret that signs every delivery, whatever was read."""
    secret = settings.webhook_secret
    shared = secret.get_secret_value() if secret else None
    if not settings.api_key_set:
        keys = [""]
    secrets = []
    for number, key in enumerate(keys, 1):
        owner = owner_fingerprint(key) if key else None
        found = key_for(settings.key_ring, shared, owner)
        if found is None or (key and key not in settings.api_key_set):
            print(
                f"key {number}: not in API_KEYS / API_KEYS_FILE, or no secret (WEBHOOK_SECRET)",
                file=sys.stderr,
            )
            return 2
        secrets.append(whsec(found))
    print("\n".join(secrets))
    return 0


if __name__ == "__main__":
    main()
