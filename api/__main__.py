"""`python -m api`: serve the API with uvicorn on 0.0.0.0:$PORT."""

from __future__ import annotations

import argparse

import uvicorn

from api.app import create_app
from shared.logs import configure_logging
from shared.settings import load_settings


def main() -> None:
    argparse.ArgumentParser(
        prog="python -m api",
        description="Serve the OCR job API. Configured by env vars: REDIS_URL, TEMP_DIR, "
        "OUTPUT_DIR, PORT (8081), MAX_UPLOAD_MB, JOB_TTL_SECONDS, API_KEYS, LOG_LEVEL.",
    ).parse_args()
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,  # uvicorn logs through our handler: same format, JSON included
    )


if __name__ == "__main__":
    main()
