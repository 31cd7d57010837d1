#!/usr/bin/env bash
# Installs the tools of the tests that do not come from PyPI: promtool (tests/deploy) and the
# prometheus server (tests/e2e scrapes the running services with it), from Debian's `prometheus`
# package. Idempotent: does nothing when both are already on PATH or in the destination.
# Only the two binaries are taken from the package (extracted with dpkg-deb): no service is installed or started.
set -euo pipefail

destination="${PROMTOOL_DIR:-/usr/local/bin}"
missing=0
for binary in promtool prometheus; do
    if ! command -v "${binary}" >/dev/null 2>&1 && [[ ! -x "${destination}/${binary}" ]]; then
        missing=1
    fi
done
if [[ ${missing} == 0 ]]; then
    exit 0
fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
chmod 0755 "$workdir"  # apt-get download runs as _apt

if ! apt-cache show prometheus >/dev/null 2>&1; then
    apt-get update -qq
fi
(cd "$workdir" && apt-get download -qq prometheus)
dpkg-deb --extract "$workdir"/prometheus_*.deb "$workdir/root"
install -m 0755 "$workdir/root/usr/bin/promtool" "$destination/promtool"
install -m 0755 "$workdir/root/usr/bin/prometheus" "$destination/prometheus"
echo "install-tools.sh: $("$destination/promtool" --version 2>&1 | head -n 1) -> $destination/{promtool,prometheus}"
