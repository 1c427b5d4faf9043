#!/usr/bin/env bash
# Redis, the API, optionally a VL server, and one worker in a single container, for platforms
# that run one container with one port and one probe path. Start command of the worker image:
# `/app/deploy/all-in-one.sh [worker flags]` (e.g. `--name NAME`; default: the host name).
#
# Probe path: GET /health on $PORT (default 8081), for liveness and readiness alike. It answers
# within a few seconds of start and stays 200 while the worker loads its models, however long
# that takes; uploads are queued meanwhile and run once the engine is warm (GET /ready shows
# when). It answers 503 `worker_unresponsive` once the worker's heartbeat has been missing for
# LIVENESS_STALE_SECONDS (60; before its first beat: LIVENESS_START_GRACE_SECONDS, 300, from
# the API's start): this script sets LIVENESS_WORKER to the worker's name (LIVENESS_WORKER=""
# turns the check off). The script itself polls /health every 2 s and, on two 503
# `worker_unresponsive` in a row, kills the worker and exits 75, so the platform restarts the
# container even with a lax probe.
#
# Start order, one log line each with the seconds since start ("all-in-one: +2.1 s ..."):
#  1. Redis: with REDIS_URL unset, Debian's redis-server on 127.0.0.1:$EMBEDDED_REDIS_PORT
#     (6379), append-only file in $DATA_DIR/redis (appendonly yes, save "", noeviction); the
#     script waits for its PING and exports REDIS_URL. With REDIS_URL set, that Redis is used.
#  2. the API (`python -m api`); the script waits for /health.
#  3. with VL_SERVER_CMD set, that command (e.g. a vLLM server; a simple command, or a script
#     that ends with `exec`, so it gets the SIGTERM): the script waits until
#     $PADDLEOCR_VL_SERVER_URL/models answers 200 (Authorization with PADDLEOCR_VL_API_KEY),
#     at most VL_SERVER_START_TIMEOUT seconds (900), else exits 1. /health answers meanwhile;
#     LIVENESS_START_GRACE_SECONDS defaults to VL_SERVER_START_TIMEOUT + 300 then.
#  4. the worker (`python -m worker "$@"`); later "engine warm" once /ready shows it warm.
#
# Data: one volume. DATA_DIR set: TEMP_DIR, OUTPUT_DIR (unless set to other paths than the
# images' /app/temp and /app/output), TMPDIR (unless set) and Redis's folder all go under it
# (temp, output, tmp, redis). DATA_DIR unset: TEMP_DIR and OUTPUT_DIR stay as they are
# (/app/temp, /app/output) and an embedded Redis keeps its AOF in /app/data/redis (TMPDIR
# /app/data/tmp); when /app/data cannot be made, in /tmp/ocrq-data, lost with the container
# (a warning says so). Folders made here are group-writable (umask 002), for platforms that
# run the image under an arbitrary uid in group 0.
#
# If any of them exits (Redis included: the platform restarts the container and the AOF brings
# the jobs back), the others are stopped and the container exits with that status; SIGTERM or
# SIGINT stops them all once (the worker finishes or hands back its job, Redis last).
# Exit codes: a process's own status; 1 a start step timed out; 2 bad configuration; 75 the
# worker stopped beating.
set -u
umask 0002

t0=${EPOCHREALTIME//[!0-9]/}
say() {
  local ms=$(((${EPOCHREALTIME//[!0-9]/} - t0) / 1000))
  printf 'all-in-one: +%d.%d s %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}
die() { # status message
  say "$2" >&2
  stop_all "$1"
}

pids=()   # every process started here, Redis first
names=()  # their names, same order
stopping=0
start() { # name command...: start it in the background, remember it
  local name=$1
  shift
  "$@" &
  pids+=($!)
  names+=("$name")
}
alive() { # pid: a process started here that still runs (bash's own record: a container's
  # /proc may show another PID namespace than the script's)
  local pid
  for pid in $(jobs -rp); do [ "$pid" = "$1" ] && return 0; done
  return 1
}
name_of() {
  local i
  for i in "${!pids[@]}"; do [ "${pids[$i]}" = "$1" ] && echo "${names[$i]}" && return; done
  echo "process $1"
}
# Stop everything and exit with $1: the API, the worker and the VL server first (SIGTERM, the
# worker finishes its job), then Redis. Only once: a second SIGTERM would cut a graceful
# shutdown short (uvicorn then force-exits). $2 = "bounded": SIGKILL what is left after 30 s.
stop_all() {
  [ "$stopping" = 1 ] && return
  stopping=1
  local status=$1 bounded=${2:-} i pid rest=()
  for i in "${!pids[@]}"; do
    [ "${names[$i]}" = redis ] || rest+=("${pids[$i]}")
  done
  stop_pids "$bounded" "${rest[@]}"
  for i in "${!pids[@]}"; do
    [ "${names[$i]}" = redis ] && stop_pids "$bounded" "${pids[$i]}"
  done
  wait
  exit "$status"
}
stop_pids() { # bounded pid...
  local bounded=$1 pid deadline=$((SECONDS + 30)) left
  shift
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null && kill -CONT "$pid" 2>/dev/null; done
  while :; do
    left=()
    for pid in "$@"; do alive "$pid" && left+=("$pid"); done
    [ ${#left[@]} = 0 ] && return
    if [ -n "$bounded" ] && [ $SECONDS -ge $deadline ]; then
      say "still running after 30 s: $(for pid in "${left[@]}"; do name_of "$pid"; done | tr '\n' ' ')(SIGKILL)"
      kill -KILL "${left[@]}" 2>/dev/null
      return
    fi
    sleep 0.2
  done
}
on_signal() {
  say "$1: stopping"
  stop_all $((128 + $2))
}
trap 'on_signal SIGTERM 15' TERM
trap 'on_signal SIGINT 2' INT

# ---- HTTP and Redis without curl or redis-cli (bash's /dev/tcp) -------------------------------
http_status=0
http_body=""
http_get() { # host port path [header line]: sets http_status and http_body; 1 when no answer
  local line extra=""
  http_status=0 http_body=""
  [ -n "${4:-}" ] && extra=$4$'\r\n'
  { exec 3<>"/dev/tcp/$1/$2"; } 2>/dev/null || return 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n%s\r\n' "$3" "$1" "$extra" >&3 2>/dev/null
  if ! read -r -t 5 line <&3; then
    exec 3<&-
    return 1
  fi
  line=${line#* }
  http_status=${line%% *}
  while IFS= read -r -t 5 line <&3 && [ "$line" != $'\r' ]; do :; done
  while IFS= read -r -t 5 line <&3 || [ -n "$line" ]; do http_body+=$line; done
  exec 3<&-
}
redis_pid() { # port: the process id of the Redis answering there (empty while loading)
  local line
  { exec 4<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'INFO server\r\n' >&4
  while IFS= read -r -t 2 line <&4; do
    case $line in
      -*) break ;; # -LOADING: the AOF is being read
      process_id:*) line=${line#process_id:} && echo "${line%$'\r'}" && break ;;
    esac
  done
  exec 4<&-
}

# ---- data folders ------------------------------------------------------------------------------
IMAGE_TEMP_DIR=/app/temp
IMAGE_OUTPUT_DIR=/app/output
if [ -n "${DATA_DIR:-}" ]; then
  [ "${TEMP_DIR:-$IMAGE_TEMP_DIR}" = "$IMAGE_TEMP_DIR" ] && export TEMP_DIR=$DATA_DIR/temp
  [ "${OUTPUT_DIR:-$IMAGE_OUTPUT_DIR}" = "$IMAGE_OUTPUT_DIR" ] && export OUTPUT_DIR=$DATA_DIR/output
  export TMPDIR=${TMPDIR:-$DATA_DIR/tmp}
  mkdir -p "$DATA_DIR" "$TEMP_DIR" "$OUTPUT_DIR" "$TMPDIR" ||
    die 2 "DATA_DIR=$DATA_DIR: cannot make its folders as uid $(id -u) (mount a writable volume there)"
  data_dir=$DATA_DIR
  say "data in $DATA_DIR: TEMP_DIR=$TEMP_DIR OUTPUT_DIR=$OUTPUT_DIR TMPDIR=$TMPDIR"
elif [ -z "${REDIS_URL:-}" ]; then
  data_dir=/app/data
  if ! mkdir -p "$data_dir/redis" 2>/dev/null; then
    data_dir=/tmp/ocrq-data
    say "warning: /app/data cannot be made as uid $(id -u): Redis keeps its AOF in $data_dir, lost with the container; mount a volume and set DATA_DIR" >&2
  fi
  export TMPDIR=${TMPDIR:-$data_dir/tmp}
  mkdir -p "$TMPDIR" || die 2 "cannot make TMPDIR=$TMPDIR as uid $(id -u)"
fi

# ---- the worker's name, watched by /health -----------------------------------------------------
worker_name=""
previous=""
for arg in "$@"; do
  [ "$previous" = --name ] && worker_name=$arg
  case $arg in --name=*) worker_name=${arg#--name=} ;; esac
  previous=$arg
done
if [ -z "$worker_name" ]; then
  worker_name=${HOSTNAME:-$(hostname)}
  set -- "$@" --name "$worker_name"
fi
export LIVENESS_WORKER=${LIVENESS_WORKER-$worker_name}

VL_SERVER_START_TIMEOUT=${VL_SERVER_START_TIMEOUT:-900}
if [ -n "${VL_SERVER_CMD:-}" ]; then
  [[ $VL_SERVER_START_TIMEOUT =~ ^[0-9]+$ ]] ||
    die 2 "VL_SERVER_START_TIMEOUT=$VL_SERVER_START_TIMEOUT: a whole number of seconds, please"
  vl_url=${PADDLEOCR_VL_SERVER_URL:-}
  [[ $vl_url =~ ^http://([^/:]+)(:([0-9]+))?(/.*)?$ ]] ||
    die 2 "VL_SERVER_CMD is set: PADDLEOCR_VL_SERVER_URL must be the server's http:// URL, e.g. http://127.0.0.1:8118/v1 (got '$vl_url')"
  vl_host=${BASH_REMATCH[1]}
  vl_port=${BASH_REMATCH[3]:-80}
  vl_path=${BASH_REMATCH[4]%/}/models
  export LIVENESS_START_GRACE_SECONDS=${LIVENESS_START_GRACE_SECONDS:-$((VL_SERVER_START_TIMEOUT + 300))}
fi

# ---- 1. Redis ----------------------------------------------------------------------------------
if [ -z "${REDIS_URL:-}" ]; then
  redis_port=${EMBEDDED_REDIS_PORT:-6379}
  redis_dir=$data_dir/redis
  mkdir -p "$redis_dir" || die 2 "cannot make $redis_dir as uid $(id -u)"
  command -v redis-server >/dev/null ||
    die 2 "REDIS_URL is unset and this image has no redis-server: set REDIS_URL"
  start redis redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$redis_dir" \
    --appendonly yes --appendfsync everysec --save "" --maxmemory-policy noeviction \
    --daemonize no --logfile "" --protected-mode yes
  # up to 5 min: reading a large append-only file back takes a while
  until [ "$(redis_pid "$redis_port")" = "${pids[0]}" ]; do
    alive "${pids[0]}" || die 1 "redis-server exited at start (port $redis_port taken? $redis_dir writable?)"
    [ $SECONDS -lt 300 ] || die 1 "redis-server did not answer within 300 s"
    sleep 0.05
  done
  export REDIS_URL=redis://127.0.0.1:$redis_port/0
  say "redis up on 127.0.0.1:$redis_port, append-only file in $redis_dir"
fi

# ---- 2. the API --------------------------------------------------------------------------------
api_port=${PORT:-8081}
case ${HOST:-0.0.0.0} in
  0.0.0.0 | "" | :: | "[::]") api_host=127.0.0.1 ;;
  *) api_host=$HOST ;;
esac
start api python -m api
api_pid=$!
until http_get "$api_host" "$api_port" /health && [ "$http_status" = 200 ]; do
  alive "$api_pid" || {
    wait "$api_pid"
    die $? "the API exited at start"
  }
  [ $SECONDS -lt 120 ] || die 1 "the API's /health did not answer 200 within 120 s"
  sleep 0.05
done
say "API /health up on port $api_port"

# ---- 3. the VL server --------------------------------------------------------------------------
if [ -n "${VL_SERVER_CMD:-}" ]; then
  say "starting the VL server: $VL_SERVER_CMD"
  start vl-server bash -c "$VL_SERVER_CMD"
  vl_pid=$!
  auth=""
  [ -n "${PADDLEOCR_VL_API_KEY:-}" ] && auth="Authorization: Bearer $PADDLEOCR_VL_API_KEY"
  vl_deadline=$((SECONDS + VL_SERVER_START_TIMEOUT))
  until http_get "$vl_host" "$vl_port" "$vl_path" "$auth" && [ "$http_status" = 200 ]; do
    alive "$vl_pid" || {
      wait "$vl_pid"
      die $? "the VL server exited at start"
    }
    [ $SECONDS -lt $vl_deadline ] ||
      die 1 "the VL server did not answer GET $vl_url/models with 200 within VL_SERVER_START_TIMEOUT=$VL_SERVER_START_TIMEOUT s"
    sleep 0.5
  done
  say "VL server up ($vl_url/models answers 200)"
fi

# ---- 4. the worker -----------------------------------------------------------------------------
start worker python -m worker "$@"
worker_pid=$!
if [ -n "$LIVENESS_WORKER" ]; then
  say "worker $worker_name started; /health watches the heartbeat of $LIVENESS_WORKER"
else
  say "worker $worker_name started; /health does not watch it (LIVENESS_WORKER empty)"
fi

# ---- then: watch ------------------------------------------------------------------------------
worker_warm() { # the worker's entry of /ready says warm
  local rest
  http_get "$api_host" "$api_port" /ready || return 1
  [[ $http_body == *"\"worker_id\":\"$worker_name\","* ]] || return 1
  rest=${http_body#*\"worker_id\":\""$worker_name"\",}
  [[ ${rest%%\}*} == *'"warm":true'* ]]
}
warm=0
strikes=0
while :; do
  sleep 2 &
  sleeper=$!
  who=""
  wait -n -p who "${pids[@]}" "$sleeper"
  status=$?
  [ "$stopping" = 1 ] && break
  if [ "$who" != "$sleeper" ]; then
    kill "$sleeper" 2>/dev/null
    [ -n "$who" ] || continue
    say "$(name_of "$who") exited with status $status: stopping the others"
    stop_all "$status" bounded
  fi
  if [ "$warm" = 0 ] && worker_warm; then
    warm=1
    say "engine warm (worker $worker_name)"
  fi
  if [ -n "$LIVENESS_WORKER" ] && http_get "$api_host" "$api_port" /health &&
    [ "$http_status" = 503 ] && [[ $http_body == *worker_unresponsive* ]]; then
    strikes=$((strikes + 1))
    if [ "$strikes" -ge 2 ]; then
      say "/health: worker $worker_name unresponsive (${http_body}): killing it and exiting 75"
      kill -KILL "$worker_pid" 2>/dev/null
      stop_all 75 bounded
    fi
  else
    strikes=0
  fi
done
