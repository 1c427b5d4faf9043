"""`python -m api`: serve the API with uvicorn on $HOST:$PORT (0.0.0.0:8081)."""

from __future__ import annotations

import argparse
import gc
import logging
import socket

import uvicorn

from api.app import check_start, create_app
from api.connection_guard import guarded_protocol
from api.event_hub import EventHub
from api.listen import listening_socket
from shared.errors import StorageUnavailable
from shared.logs import configure_logging
from shared.settings import load_settings
from shared.storage import DirectoryNotWritable
from shared.tracing import start_tracing, stop_tracing

log = logging.getLogger("api")


def main() -> None:
    argparse.ArgumentParser(
        prog="python -m api",
        description="Serve the OCR job API. Configured by env vars, among them REDIS_URL, "
        "TEMP_DIR, OUTPUT_DIR, STORAGE_URL (empty: the folders; s3://bucket/prefix), HOST "
        "(0.0.0.0), PORT (8081), MAX_UPLOAD_MB, JOB_TTL_SECONDS, "
        "API_KEYS, API_SOCKET_RCVBUF (65536), MAX_FORM_FIELDS (16), MAX_FIELD_BYTES (4096), "
        "MAX_HEADER_BYTES (16384), HEADER_TIMEOUT_SECONDS (10), BODY_TIMEOUT_SECONDS (30), "
        "SYNC_WAIT_SECONDS (30), STREAM_KEEPALIVE_SECONDS (15), LOG_LEVEL; docs/configuration.md "
        "lists them all.",
    ).parse_args()
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        # before uvicorn: a failed check in its lifespan would end the process with uvicorn's 3
        check_start(settings)
    except (DirectoryNotWritable, StorageUnavailable) as exc:
        log.error("cannot start: %s", exc)
        raise SystemExit(2) from None
    try:
        sock = listening_socket(settings.host, settings.port, settings.api_socket_rcvbuf)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
        raise SystemExit(1) from exc
    start_tracing(settings, "ocrq-api")  # OTEL_EXPORTER_OTLP_ENDPOINT set: spans, else nothing
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        # httptools, the request head bounded in size and time (api/connection_guard.py)
        http=guarded_protocol(settings.max_header_bytes, settings.header_timeout_seconds),
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,  # uvicorn logs through our handler: same format, JSON included
    )
    log.info("listening on %s:%d", settings.host, settings.port)
    # The imports' and the app's objects (some 100k) live as long as the process: frozen, the
    # collector's full passes skip them; each such pass stops the event loop for as long as it
    # walks every tracked object, 0.3-1 s once thousands of streams are open.
    gc.freeze()
    StreamEndingServer(config, app.state.hub).run(sockets=[sock])


class StreamEndingServer(uvicorn.Server):
    """uvicorn's graceful shutdown waits for every response to finish: status streams and
    waiting requests are told to answer first (a stream's client resumes with Last-Event-ID).
    Then the spans still buffered are sent (traces on)."""

    def __init__(self, config: uvicorn.Config, hub: EventHub) -> None:
        super().__init__(config)
        self.hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.hub.close_streams()
        await super().shutdown(sockets)
        # here, not after run(): uvicorn raises the caught SIGTERM again once run() ends, and
        # the process dies of it before any `finally` or atexit handler
        stop_tracing()


if __name__ == "__main__":
    main()
