#!/usr/bin/env bash
# Install Debian's Chromium for the viewer's browser tests (Playwright drives it through
# executable_path=/usr/bin/chromium; Playwright's own browser download is never used).
# Idempotent: does nothing when /usr/bin/chromium is there. Needs root (or sudo) and apt-get.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/chromium.sh: $CHROMIUM is missing and apt-get is not available;" \
         "install Chromium so that $CHROMIUM runs it (the browser tests skip without it)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "scripts/chromium.sh: installing Debian's chromium for the browser tests" >&2
$SUDO apt-get update -q >/dev/null || true  # a stale package list may miss chromium
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >/dev/null
"$CHROMIUM" --version >&2
