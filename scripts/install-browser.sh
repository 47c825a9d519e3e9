#!/usr/bin/env bash
# Debian's Chromium for the Playwright end-to-end tests (tests/e2e).
# Playwright cannot download its own browser on this machine's closed network, so the tests
# drive /usr/bin/chromium instead. Idempotent and quiet: does nothing when it is installed.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
/usr/bin/chromium --version
