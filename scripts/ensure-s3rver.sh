#!/usr/bin/env bash
# Make sure s3rver (an S3 server on Node.js, from npm) is installed in var/s3rver: the tests'
# S3 server that enforces a pre-signed URL's expiry (moto's serves any pre-signed GET, expired
# or not; s3rver does not check V4 signatures either). Installs Debian's nodejs and npm first if
# they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
version=3.7.1
dir=var/s3rver
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -f "$dir/node_modules/s3rver/package.json" ] &&
  grep -q "\"version\": \"$version\"" "$dir/node_modules/s3rver/package.json"; then
  echo "s3rver: $version in $dir"
  exit 0
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "s3rver: node or npm not found, installing them (apt-get install nodejs npm)"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq nodejs npm >/dev/null
fi
mkdir -p "$dir"
npm install --prefix "$dir" --no-audit --no-fund --no-save --silent "s3rver@$version"
echo "s3rver: $version installed in $dir"
