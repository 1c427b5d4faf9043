#!/usr/bin/env bash
# Run the service locally: Redis (started if none answers), one worker, and the API on $PORT.
# Ctrl-C stops the API and the worker.
set -euo pipefail
cd "$(dirname "$0")/.."
export TEMP_DIR=${TEMP_DIR:-$PWD/var/temp}
export OUTPUT_DIR=${OUTPUT_DIR:-$PWD/var/output}
export PORT=${PORT:-8081}
# a Redis started here keeps its AOF under ./var/redis: jobs survive a restart of Redis
REDIS_DATA_DIR=${REDIS_DATA_DIR:-$PWD/var/redis} scripts/ensure-redis.sh
py=.venv/bin/python
$py -m worker &
worker_pid=$!
trap 'kill -TERM $worker_pid 2>/dev/null; wait $worker_pid 2>/dev/null' EXIT INT TERM
echo "API on http://localhost:$PORT (docs at /docs); results under $OUTPUT_DIR"
$py -m api
