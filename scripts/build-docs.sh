#!/usr/bin/env bash
# Builds the DocC documentation of every library target of the package (the articles'
# catalog is Sources/MetaRLCLI/MetaRLCLI.docc) with swiftlang/swift-docc-plugin, and fails
# on any warning (a broken symbol link, an undocumented parameter). Dependencies (Yams,
# swift-argument-parser) are not built: their warnings are not ours.
#   Usage: bash scripts/build-docs.sh   → .build/plugins/Swift-DocC/outputs/<Target>.doccarchive
set -euo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
targets=(TensorCore NN Envs GymBridge Baselines RL MetaRL Runs OpenMPI Benchmarks MetaRLCLI)
swift package --disable-sandbox generate-documentation "${targets[@]/#/--target=}" --warnings-as-errors 2>&1 | tee "$log"
if grep -E "^(warning|error):|: warning:|: error:" "$log" | grep -v "^warning: 'swift-docc-plugin'" >/dev/null; then
    echo "documentation has warnings (above)"; exit 1
fi
echo "documentation built without warnings"
