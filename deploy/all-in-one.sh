#!/usr/bin/env bash
# The API and one worker in a single container, for platforms that run one container with one
# port and one health-check path (point that path at /health on $PORT, default 8081).
#
# /health answers within about a second, while the worker is still loading its models, so the
# platform's probe never kills a warming container; uploads are queued and run once the engine
# is warm (GET /ready shows when). If either process exits, the other is stopped and the
# container exits with that status, so the platform restarts it instead of serving a half.
set -u

python -m worker "$@" &
worker=$!
python -m api &
api=$!

stopping=0
# Once: a second SIGTERM would cut a graceful shutdown short (uvicorn then force-exits).
stop() {
  [ "$stopping" = 1 ] && return
  stopping=1
  kill -TERM "$api" "$worker" 2>/dev/null
}
trap stop TERM INT

wait -n "$api" "$worker"
status=$?
stop
wait
exit "$status"
