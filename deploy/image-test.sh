#!/usr/bin/env bash
# Build Dockerfile.api and the CPU worker target, start both images and run jobs through them,
# without a Docker engine or a registry (notes on the method: docs/deploy.md, "Image check").
#
#   sudo deploy/image-test.sh      # or: make image-test   (root: buildah, mmdebstrap, chroot)
#
# 1. installs buildah, mmdebstrap, gpgv and redis-server with apt when missing;
# 2. makes a local stand-in for python:3.12-slim-bookworm: a minbase Debian bookworm
#    (mmdebstrap) with this machine's CPython 3.12 in /usr/local, or, when there is none,
#    Debian's python3 tagged python:3.11-slim-bookworm (and PYTHON_VERSION=3.11);
# 3. builds both images unchanged with buildah (chroot isolation, --format docker);
# 4. starts them against a Redis with AOF on loopback (ports of its own) and checks: /health,
#    the API image's HEALTHCHECK, /ready, the worker's probe, that both run as their non-root
#    user, that the API image holds no OCR engine and the worker image its engines, that no
#    file of the host's CA or pip configuration is in an image; sends rendered pages through
#    them, checks the text, kills Redis mid-queue and checks that no job is lost;
# 5. runs the CPU worker image alone with its one-container start command
#    (/app/deploy/all-in-one.sh), no REDIS_URL, in a network namespace of its own (no Redis of
#    the host reachable), as an arbitrary uid in group 0 on a data volume owned by root:0 with
#    group write (deploy/image_aio.py): /health within 3 s, a job sent during warm-up, a SIGKILL
#    of every process and a restart that keep every job, a hung worker that fails /health and
#    ends the container, the start order with testkit's stand-in VL server; prints the timeline;
# 6. removes everything it made (images, containers, mounts, the stand-in base, Redis, the
#    network namespace), even on failure.
#
# OCRQ_IMAGE_TEST_BENCHMARKS=1 rewrites the `images` section of BENCHMARKS.md from this run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
APP_UID=10001
log() { printf 'image-test: %s\n' "$*"; }
fail() {
  printf 'image-test: FAILED: %s\n' "$*" >&2
  exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }
started=$(now)

[ "$(id -u)" = 0 ] || fail "run as root (buildah, mmdebstrap and chroot need it)"
[ -x "$PY" ] || fail "no $PY: run make (it creates .venv) or set PY"

need=()
for tool in buildah mmdebstrap gpgv redis-server; do # gpgv: mmdebstrap checks Release files
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

# apt verifies Release files as its _apt user, which must write /dev/null: on a machine whose
# /dev/null lost its usual mode 666 (seen on these), mmdebstrap and the worker's apt-get fail
# with "gpgv ... required". Give it back that mode for the run; the old mode returns on exit.
null_mode=$(stat -c %a /dev/null)
[ "$null_mode" = 666 ] || { log "/dev/null is mode $null_mode: 666 for this run"; chmod 666 /dev/null; }
WORK=$(mktemp -d /var/tmp/ocrq-image-test.XXXXXX)
B=(buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver overlay)
running=()
netns=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${running[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${running[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -f "$WORK/redis/redis.pid" ]; then kill -KILL "$(cat "$WORK/redis/redis.pid")" 2>/dev/null || true; fi
  if [ -n "$netns" ]; then # the all-in-one's processes, then the namespace
    ip netns pids "$netns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    sleep 0.5
    ip netns del "$netns" 2>/dev/null || true
  fi
  "${B[@]}" rm --all >/dev/null 2>&1 || true
  "${B[@]}" rmi --all --force >/dev/null 2>&1 || true
  # whatever is still mounted below WORK (layers, chroot binds), deepest first
  findmnt -rn -o TARGET | grep "^$WORK/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
  [ "$null_mode" = 666 ] || chmod "$null_mode" /dev/null
  [ ! -e "$WORK" ] || printf 'image-test: could not remove %s\n' "$WORK" >&2
  if [ "$status" = 0 ]; then log "passed in $(since "$started") s"; else log "failed (exit $status)" >&2; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The image's Cmd or Healthcheck (config of its Docker manifest) as NUL-separated words, "CMD"
# dropped (buildah 1.28's --format has no json function).
argv_of() {
  "${B[@]}" inspect --type image "$1" | "$PY" -c '
import json, sys
value = json.load(sys.stdin)["Docker"]["config"].get(sys.argv[1]) or []
words = value["Test"] if isinstance(value, dict) else value
sys.stdout.write("".join(w + "\0" for w in words if w != "CMD"))' "$2"
}
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---- 1. the stand-in base --------------------------------------------------------------------
python_home=""
for candidate in ${OCRQ_IMAGE_PYTHON_HOME:-} /root/.pyenv/versions/3.12* /usr/local; do
  [ -x "$candidate/bin/python3.12" ] || continue
  # built for this Debian: every shared library its modules need resolves here
  if ! ldd "$candidate"/bin/python3.12 "$candidate"/lib/python3.12/lib-dynload/*.so 2>/dev/null |
    grep -q "not found"; then python_home=$candidate && break; fi
done
libs=ca-certificates,netbase,tzdata,libffi8,libsqlite3-0,libssl3,libncursesw6,libuuid1,libnsl2,libreadline8,libexpat1
if [ -n "$python_home" ]; then
  py_version=3.12
  includes=$libs
  log "stand-in base: Debian bookworm minbase + CPython from $python_home"
else
  py_version=3.11
  includes=$libs,python3,python3-venv,python-is-python3
  log "stand-in base: no CPython 3.12 built for bookworm here; Debian's python3 as 3.11"
fi
base_tag=docker.io/library/python:$py_version-slim-bookworm
cat >"$WORK/add-python.sh" <<EOF
#!/bin/sh
# mmdebstrap customize hook: \$1 is the new root. No file of the host's CA or pip config
# goes in; the two mount points of the build (-v) exist, so the build leaves them unchanged.
set -eu
root=\$1
if [ -n "$python_home" ]; then
  tar -C "$python_home" -cf - --exclude=./lib/python3.12/test --exclude=./lib/python3.12/idlelib \\
    --exclude=./lib/python3.12/tkinter --exclude=./lib/python3.12/turtledemo \\
    --exclude='./lib/python3.12/lib-dynload/_tkinter*' --exclude='./lib/python3.12/site-packages/*' \\
    --exclude='*.a' --exclude='*.pyc' --exclude=tests --exclude=idle_test . | tar -C "\$root/usr/local" -xf -
  cp -a "$python_home"/lib/python3.12/site-packages/pip "$python_home"/lib/python3.12/site-packages/pip-*.dist-info \\
    "\$root/usr/local/lib/python3.12/site-packages/"
  for script in "\$root"/usr/local/bin/*; do
    [ -L "\$script" ] || sed -i '1s|^#!$python_home/bin/|#!/usr/local/bin/|' "\$script" 2>/dev/null || true
  done
  chroot "\$root" ldconfig
fi
: >"\$root/etc/pip.conf"
rm -rf "\$root"/var/lib/apt/lists/* "\$root"/var/cache/apt/*.bin
EOF
chmod +x "$WORK/add-python.sh"
mkdir -p "$WORK/base"
t=$(now)
mmdebstrap --quiet --variant=minbase --mode=root --format=tar --include="$includes" \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --customize-hook="$WORK/add-python.sh \"\$1\"" bookworm "$WORK/base/rootfs.tar" >"$WORK/mmdebstrap.log" 2>&1 ||
  { tail -30 "$WORK/mmdebstrap.log" >&2; fail "mmdebstrap could not make the base"; }
printf 'FROM scratch\nADD rootfs.tar /\nENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8\nCMD ["python3"]\n' \
  >"$WORK/base/Containerfile"
"${B[@]}" bud --quiet --isolation chroot --pull=never --format docker -t "$base_tag" "$WORK/base" >/dev/null
rm -f "$WORK/base/rootfs.tar"
base_seconds=$(since "$t")
log "stand-in $base_tag made in $base_seconds s"

# ---- 2. the images ---------------------------------------------------------------------------
build=("${B[@]}" bud --isolation chroot --network host --pull=never --format docker --layers
  --build-arg "PYTHON_VERSION=$py_version")
# Downloads in RUN steps need the host's CA bundle and pip configuration, as pip on the host
# does; mounted into the build only, never copied into a layer (checked below).
for file in /etc/ssl/certs/ca-certificates.crt /etc/pip.conf; do
  if [ -f "$file" ]; then build+=(-v "$file:$file:ro"); fi
done
API_IMAGE=localhost/ocrq-api:image-test
WORKER_IMAGE=localhost/ocrq-worker-cpu:image-test
t=$(now)
"${build[@]}" -f Dockerfile.api -t "$API_IMAGE" . >"$WORK/build-api.log" 2>&1 ||
  { tail -30 "$WORK/build-api.log" >&2; fail "Dockerfile.api did not build"; }
api_seconds=$(since "$t")
t=$(now)
"${build[@]}" -f Dockerfile.worker --target cpu -t "$WORKER_IMAGE" . >"$WORK/build-worker.log" 2>&1 ||
  { tail -30 "$WORK/build-worker.log" >&2; fail "Dockerfile.worker --target cpu did not build"; }
worker_seconds=$(since "$t")
size_of() { "${B[@]}" images --format '{{.Size}}' "$1"; }
log "built $API_IMAGE in $api_seconds s ($(size_of "$API_IMAGE")), $WORKER_IMAGE in $worker_seconds s ($(size_of "$WORKER_IMAGE"))"

api_ctr=$("${B[@]}" from --pull-never "$API_IMAGE")
worker_ctr=$("${B[@]}" from --pull-never "$WORKER_IMAGE")
base_ctr=$("${B[@]}" from --pull-never "$base_tag")
base_root=$("${B[@]}" mount "$base_ctr")
for ctr in "$api_ctr" "$worker_ctr"; do
  root=$("${B[@]}" mount "$ctr")
  for file in /etc/ssl/certs/ca-certificates.crt /etc/pip.conf; do
    cmp -s "$root$file" "$base_root$file" || fail "$ctr: $file differs from the base's: the host's is in the image"
  done
done
log "ok: neither image holds the host's CA bundle or pip configuration"
worker_root=$("${B[@]}" mount "$worker_ctr")
du -sm "$worker_root"/opt/venv/lib/python*/site-packages/* "$worker_root"/usr/share/tesseract-ocr \
  "$worker_root"/usr/lib/x86_64-linux-gnu "$worker_root"/usr/local "$worker_root"/usr/share 2>/dev/null |
  sed "s|$worker_root||" | sort -rn >"$WORK/worker-du.txt"
log "the biggest parts of the CPU worker image (MB): $(head -8 "$WORK/worker-du.txt" | awk '{ printf "%s %s, ", $2, $1 }')"
chroot "$worker_root" dpkg-query -W -f '${Installed-Size} ${Package}\n' | sort -rn >"$WORK/worker-debs.txt"
log "its biggest Debian packages (KB): $(head -12 "$WORK/worker-debs.txt" | awk '{ printf "%s %s, ", $2, $1 }')"
# A trim candidate: the engine loads the libtesseract of the tesserocr wheel and needs only the
# eng/rus/osd data packages (no dependencies); what would Debian's tesseract-ocr take with it?
chroot "$worker_root" apt-get -s -qq purge --auto-remove tesseract-ocr 2>/dev/null |
  awk '/^Purg/ { print $2 }' >"$WORK/trim-tesseract.txt" || true
trim_kb=$(awk 'NR == FNR { gone[$1] = 1; next } ($2 in gone) { kb += $1 } END { print kb + 0 }' \
  "$WORK/trim-tesseract.txt" "$WORK/worker-debs.txt")
log "trim candidate: without Debian's tesseract-ocr (CLI) the worker image would lose $(wc -l <"$WORK/trim-tesseract.txt") packages, $((trim_kb / 1024)) MB"

for image in "$API_IMAGE" "$WORKER_IMAGE"; do
  user=$("${B[@]}" inspect --type image --format '{{.Docker.Config.User}}' "$image")
  [ "${user%%:*}" = "$APP_UID" ] || fail "$image runs as '$user', not $APP_UID"
done
# Pillow is allowed: pikepdf brings it, and format=pdf of an image upload reads the image with
# it (imported only then, never at start); no OCR engine, numpy or OpenCV.
"${B[@]}" run --isolation chroot "$api_ctr" -- python -c '
import importlib.util, shutil, sys
found = [m for m in ("rapidocr", "onnxruntime", "tesserocr", "paddle", "paddleocr", "paddlex", "cv2", "numpy") if importlib.util.find_spec(m)]
found += ["tesseract (binary)"] if shutil.which("tesseract") else []
sys.exit(f"the API image holds {found}" if found else 0)' || fail "the API image holds an OCR engine"
"${B[@]}" run --isolation chroot "$worker_ctr" -- python -c '
import glob, importlib.util, sys
import tesserocr  # loads the libtesseract its wheel carries
missing = [m for m in ("rapidocr", "onnxruntime") if not importlib.util.find_spec(m)]
langs = {p.split("/")[-1].split(".")[0] for p in glob.glob("/usr/share/tesseract-ocr/*/tessdata/*.traineddata")}
missing += [f"tesseract data {lang}" for lang in ("eng", "rus", "osd") if lang not in langs]
sys.exit(f"missing: {missing}" if missing else 0)' ||
  fail "the CPU worker image lacks an engine"
log "ok: the API image holds no OCR engine; the CPU worker image has rapidocr, onnxruntime, tesserocr with eng, rus, osd data"

# ---- 3. start them ---------------------------------------------------------------------------
redis_port=$(free_port)
api_port=$(free_port)
REDIS_PORT=$redis_port REDIS_DATA_DIR=$WORK/redis scripts/ensure-redis.sh >/dev/null
mkdir -p "$WORK/app/temp" "$WORK/app/output"
chown "$APP_UID:$APP_UID" "$WORK/app/temp" "$WORK/app/output"
chmod 2775 "$WORK/app/temp" "$WORK/app/output"
env=(-e "REDIS_URL=redis://127.0.0.1:$redis_port/0" -e HOST=127.0.0.1 -e "PORT=$api_port")
mounts=(-v "$WORK/app/temp:/app/temp" -v "$WORK/app/output:/app/output")
start() { # name container: the image's own CMD, in a PID namespace SIGKILL ends as a whole
  local cmd
  mapfile -d '' cmd < <(argv_of "$1" Cmd)
  unshare --pid --fork --kill-child "${B[@]}" run --isolation chroot --network host "${env[@]}" \
    "${mounts[@]}" "$2" -- "${cmd[@]}" >"$WORK/$(basename "${1%%:*}").log" 2>&1 &
  running+=($!)
}
t=$(now)
start "$API_IMAGE" "$api_ctr"
api_pid=$!
start "$WORKER_IMAGE" "$worker_ctr"
worker_pid=$!
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$api_port/health" >/dev/null 2>&1 && break
  kill -0 "$api_pid" 2>/dev/null || { tail -20 "$WORK/ocrq-api.log" >&2; fail "the API image exited"; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$api_port/health" >/dev/null || fail "no /health after 60 s"
health_seconds=$(since "$t")
log "ok: /health 200 after $health_seconds s"
# the web page and the docs' assets are package data: the image must carry them (no CDN)
for path in /ui/ /ui/ocrq.js /ui/ocrq.css /docs /docs-assets/swagger-ui-bundle.js /docs-assets/redoc.standalone.js; do
  curl -fsS -o /dev/null "http://127.0.0.1:$api_port$path" || fail "the API image does not serve $path"
done
log "ok: /ui and the /docs and /redoc assets served from the image"
mapfile -d '' healthcheck < <(argv_of "$API_IMAGE" Healthcheck)
[ ${#healthcheck[@]} -gt 0 ] || fail "the API image has no HEALTHCHECK (built without --format docker?)"
"${B[@]}" run --isolation chroot --network host -e "PORT=$api_port" "$api_ctr" -- "${healthcheck[@]}" ||
  fail "the API image's HEALTHCHECK failed"
log "ok: the API image's HEALTHCHECK exits 0"
warm=""
for _ in $(seq 1 900); do
  ready=$(curl -sS "http://127.0.0.1:$api_port/ready" 2>/dev/null || true)
  if "$PY" -c 'import json, sys; sys.exit(0 if json.loads(sys.argv[1])["engines_warm"] else 1)' "$ready" 2>/dev/null; then
    warm=$(since "$t") && break
  fi
  kill -0 "$worker_pid" 2>/dev/null || { tail -20 "$WORK/ocrq-worker-cpu.log" >&2; fail "the worker image exited"; }
  sleep 0.2
done
[ -n "$warm" ] || { tail -20 "$WORK/ocrq-worker-cpu.log" >&2; fail "no warm worker in /ready after 180 s"; }
curl -fsS -o /dev/null "http://127.0.0.1:$api_port/ready" || fail "/ready is not 200"
log "ok: /ready 200, worker warm after $warm s"
mapfile -d '' probe < <(argv_of "$WORKER_IMAGE" Healthcheck)
[ "${probe[*]}" = "python -m worker.probe" ] || fail "the worker image's HEALTHCHECK is '${probe[*]}'"
"${B[@]}" run --isolation chroot --network host "${env[@]}" "$worker_ctr" -- "${probe[@]}" ||
  fail "the worker's probe failed"
log "ok: the worker image's HEALTHCHECK (python -m worker.probe) exits 0"
# every python process of both containers runs as the image's user
ps -e -o pid=,ppid=,uid=,comm= >"$WORK/ps.txt"
for pid in "$api_pid" "$worker_pid"; do
  uids=$(awk -v top="$pid" '{ parent[$1] = $2; uid[$1] = $3; comm[$1] = $4 }
    END { for (p in parent) { q = p; while (q in parent && q != top) q = parent[q];
      if (q == top && comm[p] ~ /^python/) print uid[p] } }' "$WORK/ps.txt" | sort -u | tr '\n' ' ')
  [ "$uids" = "$APP_UID " ] || fail "the python processes of container $pid run as uid(s) '$uids', not $APP_UID"
done
log "ok: the API and the worker (supervisor and worker process) run as uid $APP_UID"

# ---- 4. jobs through them, Redis restarted mid-queue ------------------------------------------
echo "{\"base_seconds\": $base_seconds, \"api_build_seconds\": $api_seconds, \"worker_build_seconds\": $worker_seconds, \"api_size\": \"$(size_of "$API_IMAGE")\", \"worker_size\": \"$(size_of "$WORKER_IMAGE")\", \"base_size\": \"$(size_of "$base_tag")\", \"python\": \"$py_version\", \"health_seconds\": $health_seconds, \"warm_seconds\": $warm, \"trim_tesseract_mb\": $((trim_kb / 1024)), \"trim_tesseract_packages\": \"$(tr '\n' ' ' <"$WORK/trim-tesseract.txt")\"}" >"$WORK/figures.json"
PYTHONPATH=$ROOT "$PY" deploy/image_jobs.py --api "http://127.0.0.1:$api_port" --redis-port "$redis_port" \
  --redis-dir "$WORK/redis" --figures "$WORK/figures.json" ||
  { tail -20 "$WORK/ocrq-worker-cpu.log" >&2; fail "jobs through the images"; }
owners=$(find "$WORK/app/output" -name result.json -printf '%U\n' | sort -u | tr '\n' ' ')
[ "$owners" = "$APP_UID " ] || fail "results owned by '$owners', not $APP_UID"

# ---- 5. the worker image alone: all-in-one, an embedded Redis, nothing outside ---------------
# A network namespace of its own (only its loopback): no Redis of the host is reachable. The
# container runs as an arbitrary uid in group 0 (as some platforms run images) on a data volume
# owned by root:0 with group write, with testkit mounted for the stand-in VL server.
for pid in "${running[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done # stages 3-4 are done
netns=ocrq-image-test-$$
ip netns add "$netns"
ip netns exec "$netns" ip link set lo up
aio_ctr=$("${B[@]}" from --pull-never "$WORKER_IMAGE")
aio_data=$WORK/aio-data
mkdir -p "$aio_data"
chown 0:0 "$aio_data"
chmod 2775 "$aio_data"
aio_user=1000650000:0
{
  printf '#!/usr/bin/env bash\n# [-e NAME=VALUE]...: the CPU worker image started with its one-container command\n'
  printf 'exec unshare --pid --fork --kill-child'
  printf ' %q' "${B[@]}" run --isolation chroot --network host --user "$aio_user" \
    -v "$aio_data:/app/data" -v "$ROOT/testkit:/app/testkit:ro"
  printf ' "$@"'
  printf ' %q' "$aio_ctr" -- /app/deploy/all-in-one.sh --name aio
  printf '\n'
} >"$WORK/aio-run.sh"
chmod +x "$WORK/aio-run.sh"
log "all-in-one: the CPU worker image alone in network namespace $netns, uid $aio_user, data volume root:0 2775"
ip netns exec "$netns" env PYTHONPATH="$ROOT" "$PY" deploy/image_aio.py --run "$WORK/aio-run.sh" \
  --data "$aio_data" --log "$WORK/aio.log" --host-redis-port "$redis_port" --health-within 3 \
  --figures "$WORK/figures.json" ||
  { tail -40 "$WORK/aio.log" >&2; fail "the worker image's all-in-one"; }
aio_owners=$(find "$aio_data" -mindepth 1 -printf '%U:%G\n' | sort -u | tr '\n' ' ')
[ "$aio_owners" = "${aio_user} " ] || fail "files in the data volume owned by '$aio_owners', not $aio_user"
log "ok: everything in the data volume written as $aio_user"
log "figures: $(tr -d '\n ' <"$WORK/figures.json")"
if [ "${OCRQ_IMAGE_TEST_BENCHMARKS:-0}" = 1 ]; then
  "$PY" -m bench.images "$WORK/figures.json" "$WORK/worker-du.txt" "$(since "$started")"
fi
