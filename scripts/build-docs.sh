#!/usr/bin/env bash
# Builds the DocC documentation (catalog: Sources/MetaRLCLI/MetaRLCLI.docc) with
# swiftlang/swift-docc-plugin and fails on any warning (a broken symbol link, say).
#   Usage: bash scripts/build-docs.sh        → .build/plugins/Swift-DocC/outputs/MetaRLCLI.doccarchive
set -euo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
swift package --disable-sandbox generate-documentation --target MetaRLCLI --warnings-as-errors 2>&1 | tee "$log"
if grep -E "^(warning|error):|: warning:|: error:" "$log" | grep -v "^warning: 'swift-docc-plugin'" >/dev/null; then
    echo "documentation has warnings (above)"; exit 1
fi
echo "documentation built without warnings"
