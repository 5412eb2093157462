#!/usr/bin/env bash
# Checks the systemd units in deploy/systemd with `systemd-analyze verify`, against the binaries
# built in this checkout (the units name /usr/local/bin, where they are installed in production).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze is not installed: units not verified"
  exit 0
fi
bin="$(cd "${CARGO_TARGET_DIR:-target}/debug" && pwd)"
for binary in mailtrail-receiver mailtrail-worker mailtrail-api mailtrail; do
  [ -x "$bin/$binary" ] || { echo "error: build $binary first (cargo build --bins)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in deploy/systemd/*.service deploy/systemd/*.timer; do
  sed -e "s#/usr/local/bin/#$bin/#" \
      -e "s#/etc/mailtrail/mailtrail.env#$PWD/deploy/mailtrail.env.example#" \
      "$unit" >"$work/$(basename "$unit")"
done
(cd "$work" && systemd-analyze verify ./*.service ./*.timer)
echo "systemd units verified: $(ls deploy/systemd | tr '\n' ' ')"
