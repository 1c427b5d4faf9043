#!/usr/bin/env bash
# Make sure the Debian packages the worker needs are installed: Tesseract with its Russian and
# English language data (the tesseract engine and `auto` script detection read them through
# tesserocr, whose wheel carries libtesseract), and poppler-utils, whose pdftotext reads back the
# searchable PDFs in the tests (format=pdf), and Chromium with its driver, in which
# tests/integration/test_ui_browser.py drives the web page (/ui). Installs with apt-get only
# what is missing.
set -euo pipefail
packages=(tesseract-ocr tesseract-ocr-rus tesseract-ocr-eng tesseract-ocr-osd poppler-utils
  chromium chromium-driver)
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

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
sudo_if_needed apt-get update -qq
sudo_if_needed env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system deps: installed ${missing[*]}"
