#!/usr/bin/env bash
# Make sure a Redis answers at $REDIS_HOST:$REDIS_PORT (default 127.0.0.1:6379): start one,
# installing Debian's redis-server first if it is missing.
set -euo pipefail
host=${REDIS_HOST:-127.0.0.1}
port=${REDIS_PORT:-6379}
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ping_redis() {
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG
  else
    (exec 3<>"/dev/tcp/$host/$port" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null
  fi
}

if ping_redis; then
  echo "redis: answering at $host:$port"
  exit 0
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis: redis-server not found, installing it (apt-get install redis-server)"
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq redis-server >/dev/null
fi
echo "redis: starting redis-server on $host:$port"
redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no
for _ in $(seq 1 50); do
  ping_redis && { echo "redis: up"; exit 0; }
  sleep 0.1
done
echo "redis: did not come up at $host:$port" >&2
exit 1
