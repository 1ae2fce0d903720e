#!/usr/bin/env bash
# Builds this example package against the toolkit beside it and runs a short
# train → eval → resume → eval cycle on its own family (dark-corridor) through its own
# `metarl`-equivalent executable. Fails unless the resumed run's final checkpoint and
# evaluation equal a straight run's, and the agent beats a random policy on the family.
set -euo pipefail
cd "$(dirname "$0")"
swift build
bin="$(swift build --show-bin-path)/corridor-metarl"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
train=(train rl2 --env dark-corridor --episodes-per-trial 2 --hidden 32 --trials-per-iteration 200 --learning-rate 0.003
       --seed 1 --checkpoint-every 5)

"$bin" "${train[@]}" --iterations 10 --out "$work/straight" 2>/dev/null
"$bin" "${train[@]}" --iterations 5 --out "$work/resumed" 2>/dev/null
"$bin" train rl2 --resume "$work/resumed" --iterations 10 2>/dev/null
cmp "$work/straight/checkpoints/00000010.ckpt" "$work/resumed/checkpoints/00000010.ckpt"
echo "resumed checkpoint equals the straight run's ($(wc -c < "$work/straight/checkpoints/00000010.ckpt") bytes)"

straight=$("$bin" eval "$work/straight" --trials 2000 --seed 7 --json)
resumed=$("$bin" eval "$work/resumed" --trials 2000 --seed 7 --json)
[ "$straight" = "$resumed" ] || { echo "evaluations differ"; exit 1; }
random=$("$bin" baseline random --env dark-corridor --episodes-per-trial 2 --trials 2000 --seed 7 --json)
"$bin" eval "$work/straight" --trials 2000 --seed 7
"$bin" baseline random --env dark-corridor --episodes-per-trial 2 --trials 2000 --seed 7

number() { sed -E "s/.*\"$1\":([-0-9.e]+).*/\1/" <<< "$2"; }
agent=$(number mean_return "$straight"); agent_se=$(number stderr "$straight")
floor=$(number mean_return "$random"); floor_se=$(number stderr "$random")
awk -v a="$agent" -v sa="$agent_se" -v r="$floor" -v sr="$floor_se" 'BEGIN {
    margin = 3 * sqrt(sa * sa + sr * sr)
    printf "RL² %.3f against random %.3f (3 s.e. of the difference: %.3f)\n", a, r, margin
    exit !(a > r + margin) }'
echo "example package: OK"
