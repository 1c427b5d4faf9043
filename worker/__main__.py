"""`python -m worker`: a supervised worker process (restarted if it dies), see worker.supervisor."""

from __future__ import annotations

import sys

from shared.logs import configure_logging
from shared.settings import load_settings
from worker.process import build_parser
from worker.supervisor import supervise


def main() -> None:
    build_parser("python -m worker").parse_args()  # --help, and bad flags fail here
    settings = load_settings()  # bad env vars fail here, before any child starts
    configure_logging(settings.log_level, settings.log_format)
    raise SystemExit(supervise(sys.argv[1:]))


if __name__ == "__main__":
    main()
