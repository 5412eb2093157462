#!/usr/bin/env bash
# Makes sure the dashboard's browser tests have their browser: Debian's chromium and
# chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver).
#
#   scripts/browser.sh ensure   installs both with apt-get when missing and possible (root, apt
#                               available); otherwise says what to install. On CI (CI set) a
#                               browser that cannot be had fails; elsewhere the browser tests
#                               skip themselves with the same note.
set -euo pipefail

have_browser() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }

case "${1:-ensure}" in
  ensure)
    if have_browser; then exit 0; fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "--- installing chromium and chromium-driver (dashboard browser tests)"
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; } \
        || true
    fi
    if have_browser; then exit 0; fi
    echo "the dashboard's browser tests need Chromium: apt-get install chromium chromium-driver" >&2
    if [ -n "${CI:-}" ]; then exit 1; fi
    echo "(they are skipped until then)" >&2
    ;;
  *)
    echo "usage: scripts/browser.sh ensure" >&2
    exit 2
    ;;
esac
