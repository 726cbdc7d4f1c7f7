#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/browser): Debian's `chromium` and
# `chromium-driver`, installed with apt-get when missing (needs root, as on CI and the dev
# container). Sourced by scripts/test.sh; without them the browser tests are skipped with a reason.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  return 0 2>/dev/null || exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "browser: chromium/chromium-driver missing and apt-get unavailable (not root?); browser tests will be skipped" >&2
  return 0 2>/dev/null || exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
