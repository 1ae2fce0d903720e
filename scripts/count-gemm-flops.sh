#!/usr/bin/env bash
# How much of a benchmark is matrix products, and at what rate: builds metarl (release) from a
# temporary copy of this checkout with Benchmarks/gemm-flop-count.patch applied (it adds up
# 2·m·n·k and the time of every Float matrix product and prints both at exit; the shipped
# build counts nothing), then runs the given metarl command with it.
# Usage: bash scripts/count-gemm-flops.sh [METARL ARGUMENTS]   (default: bench maml --threads 1 --iterations 4)
# Prints the command's own output, then `GEMM: X GFLOP in Y s`; X / Y is the products' rate.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
git archive HEAD | tar -x -C "$work"
patch -d "$work" -p1 -s < Benchmarks/gemm-flop-count.patch
echo "== building the counting metarl (release) in $work"
(cd "$work" && swift build -c release --product metarl 2>&1 | tail -n 1)
[ $# -gt 0 ] || set -- bench maml --threads 1 --iterations 4
"$work/.build/release/metarl" "$@"
