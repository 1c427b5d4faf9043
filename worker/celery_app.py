"""A module-level Celery app for Celery's own tools: `celery -A worker flower` (or
`-A worker.celery_app`), `celery -A worker inspect active`, `celery -A worker events`.

It carries the service's broker configuration (REDIS_URL with TLS or Sentinel, the transport
options), so those tools reach the same Redis the workers use. The service never imports this
module: `python -m worker` builds its own app at boot from its one Settings; this one is built
from the environment (load_settings) when a Celery command imports it, and building it opens no
connection and loads no OCR library.
"""

from __future__ import annotations

from shared.queue import make_celery
from shared.settings import load_settings

app = make_celery(load_settings())
