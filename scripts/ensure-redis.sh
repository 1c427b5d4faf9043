#!/usr/bin/env bash
# Make sure a Redis answers at $REDIS_HOST:$REDIS_PORT (default 127.0.0.1:6379): start one,
# installing Debian's redis-server first if it is missing.
#
# REDIS_DATA_DIR set (make run: ./var/redis): a Redis started here keeps an append-only file
# there (appendonly yes, appendfsync everysec), so the queue and the job records survive a
# restart of Redis, even a kill -9. Unset (make test): no persistence, the tests flush their dbs.
set -euo pipefail
host=${REDIS_HOST:-127.0.0.1}
port=${REDIS_PORT:-6379}
data_dir=${REDIS_DATA_DIR:-}
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
  if [ -n "$data_dir" ] && command -v redis-cli >/dev/null 2>&1 &&
    redis-cli -h "$host" -p "$port" config get appendonly 2>/dev/null | grep -qx no; then
    echo "redis: warning: that Redis runs without AOF; a restart of it loses every job" >&2
  fi
  exit 0
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis: redis-server not found, installing it (apt-get install redis-server)"
  # waits for another apt or dpkg to let go of its lock (up to 10 minutes) rather than failing
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq redis-server >/dev/null
fi
if [ -n "$data_dir" ]; then
  mkdir -p "$data_dir"
  data_dir=$(cd "$data_dir" && pwd)
  echo "redis: starting redis-server on $host:$port, AOF in $data_dir"
  persistence=(--dir "$data_dir" --appendonly yes --appendfsync everysec --save ""
    --pidfile "$data_dir/redis.pid" --logfile "$data_dir/redis.log")
else
  echo "redis: starting redis-server on $host:$port (no persistence)"
  persistence=(--save "" --appendonly no)
fi
redis-server --daemonize yes --bind "$host" --port "$port" "${persistence[@]}"
for _ in $(seq 1 50); do
  ping_redis && { echo "redis: up"; exit 0; }
  sleep 0.1
done
echo "redis: did not come up at $host:$port" >&2
exit 1
