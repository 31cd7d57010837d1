#!/usr/bin/env bash
# Installs the validators of tests/deploy that do not come from PyPI: promtool, from Debian's
# `prometheus` package. Idempotent: does nothing when promtool is already on PATH.
# Only promtool is taken from the package (extracted with dpkg-deb): no service is installed or started.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi

destination="${PROMTOOL_DIR:-/usr/local/bin}"
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
chmod 0755 "$workdir"  # apt-get download runs as _apt

if ! apt-cache show prometheus >/dev/null 2>&1; then
    apt-get update -qq
fi
(cd "$workdir" && apt-get download -qq prometheus)
dpkg-deb --extract "$workdir"/prometheus_*.deb "$workdir/root"
install -m 0755 "$workdir/root/usr/bin/promtool" "$destination/promtool"
echo "install-tools.sh: $("$destination/promtool" --version 2>&1 | head -n 1) -> $destination/promtool"
