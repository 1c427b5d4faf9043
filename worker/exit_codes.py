"""Exit codes a worker process ends with on purpose, read by its supervisor (worker.supervisor).

Kept apart from the modules that use them so the supervisor imports no Celery and no engine.
"""

from __future__ import annotations

# Recycled between jobs (WORKER_MAX_JOBS / WORKER_MAX_RSS_MB, worker/recycling.py): the
# supervisor starts a fresh process at once, without the crash backoff.
EXIT_RECYCLE = 76
