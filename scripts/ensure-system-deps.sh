#!/usr/bin/env bash
# Make sure the Debian packages ocrq needs are installed; installs with apt-get only what is
# missing, waiting for another apt or dpkg to let go of its lock (up to 10 minutes) rather
# than failing.
#
#   scripts/ensure-system-deps.sh          what serving needs (make run, make bench): Tesseract
#                                          with its Russian, English and orientation data (the
#                                          tesseract engine and `auto` script detection read
#                                          them through tesserocr, whose wheel carries
#                                          libtesseract)
#   scripts/ensure-system-deps.sh --tests  that, and what the tests need (make test):
#                                          poppler-utils, whose pdftotext reads back the
#                                          searchable PDFs (format=pdf), and Chromium with its
#                                          driver, in which tests/integration/test_ui_browser.py
#                                          drives the web page (/ui)
set -euo pipefail
packages=(tesseract-ocr tesseract-ocr-rus tesseract-ocr-eng tesseract-ocr-osd)
case "${1:-}" in
  "") ;;
  --tests) packages+=(poppler-utils chromium chromium-driver) ;;
  *) echo "usage: $0 [--tests]" >&2; exit 2 ;;
esac
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_get() { sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"; }

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system deps: ${packages[*]} installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system deps: missing ${missing[*]} and no apt-get here; install Tesseract with its" \
    "rus and eng data yourself (or set TESSERACT_DATA_DIR)" >&2
  exit 1
fi
echo "system deps: installing ${missing[*]} (apt-get)"
apt_get update -qq
apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system deps: installed ${missing[*]}"
