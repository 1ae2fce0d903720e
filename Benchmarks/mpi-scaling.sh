#!/usr/bin/env bash
# Data-parallel scaling of `metarl train` over Open MPI on this machine.
#
# Trains the same run (default: RL² at the pytorch_rl2 settings, bandits k = 5, n = 10,
# GRU-256, 240 000 steps per iteration) as 1 process × 1 and × 2 threads, and as N processes
# × 1 thread for N = 2 and 4 (4 oversubscribed on two cores), each for ITERATIONS iterations,
# and prints per configuration: seconds per iteration (median over ROUNDS), environment steps per second, the speed
# against 1 process × 2 threads, the share of each rank's wall-clock spent in collectives
# (waiting for slower ranks included) and the bytes each rank sent per iteration.
#
#   bash Benchmarks/mpi-scaling.sh [ITERATIONS] [-- extra metarl train arguments]
# Environment: METARL (the metarl binary; default .build/release/metarl), ALGORITHM (rl2),
# SHARDS (4: every configuration trains the same numbers, whatever its process count),
# CONFIGS (processes x threads, "1x1 1x2 2x1 4x1"; 1x2 is the reference and must be among them),
# ROUNDS (1: each round runs every configuration once, in order, so they alternate; medians
# over the rounds are printed, the ratio to 1 × 2 taken round by round).
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-2}
shift || true
[[ ${1:-} == "--" ]] && shift
metarl=${METARL:-.build/release/metarl}
algorithm=${ALGORITHM:-rl2}
shards=${SHARDS:-4}
[[ -x $metarl ]] || { echo "error: $metarl not found: swift build -c release --product metarl" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "error: mpirun not found: apt-get install openmpi-bin" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
split=(--shards "$shards")
[[ $algorithm == rl2 ]] || split=()

# One configuration: processes, threads; prints "seconds steps" and the traffic lines to $work/NAME.
run() {
    local name=$1 ranks=$2 threads=$3 log="$work/$1.log"
    local args=(train "$algorithm" "${split[@]}" --iterations "$iterations" --threads "$threads" --seed 1
                --checkpoint-every 1000000 --out "$work/$name" "${@:4}")
    if [[ $ranks == 0 ]]; then
        timeout 7200 "$metarl" "${args[@]}" >"$log" 2>&1
    else
        timeout 7200 mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks" "$metarl" "${args[@]}" >"$log" 2>&1
    fi
    grep -q '^trained ' "$log" || { echo "error: $name failed:" >&2; tail -5 "$log" >&2; exit 1; }
}

configs=()
for c in ${CONFIGS:-1x1 1x2 2x1 4x1}; do configs+=("$c $([[ ${c%x*} == 1 ]] && echo 0 || echo "${c%x*}") ${c#*x}"); done
rounds=${ROUNDS:-1}
for ((r = 1; r <= rounds; r++)); do
    for c in "${configs[@]}"; do
        read -r name ranks threads <<<"$c"
        run "$name-$r" "$ranks" "$threads" "$@"
    done
done

# "seconds steps" of a run's log, and its traffic lines.
timing() { sed -n 's/^trained [0-9]* iterations, \([0-9]*\) environment steps, in \([0-9.]*\) s.*/\1 \2/p' "$work/$1.log"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '%-20s %13s %10s %9s %29s %18s\n' "processes × threads" "s/iteration" "steps/s" "vs 1×2" "in collectives (rank 0/max)" "MB sent/iteration"
for c in "${configs[@]}"; do
    read -r name ranks threads <<<"$c"
    perRound=(); ratios=(); steps=0
    for ((r = 1; r <= rounds; r++)); do
        read -r steps seconds < <(timing "$name-$r")
        read -r _ reference < <(timing "1x2-$r")
        perRound+=("$(echo "$seconds / $iterations" | bc -l)")
        ratios+=("$(echo "$reference / $seconds" | bc -l)")
    done
    seconds=$(printf '%s\n' "${perRound[@]}" | median)
    ratio=$(printf '%s\n' "${ratios[@]}" | median)
    share="-"; sent="-"
    log="$work/$name-1.log"
    if grep -q '^mpi rank' "$log"; then
        share=$(cat "$work/$name"-*.log | sed -n 's/^mpi rank \([0-9]*\) .*(\([0-9.]*\)%).*/\1 \2/p' | awk '$1 == 0 { r += $2; n++ } $2 > m { m = $2 } END { printf "%.1f%% / %.1f%%", r / n, m }')
        sent=$(awk -v it="$iterations" '/^mpi rank/ { for (i = 1; i <= NF; i++) if ($i == "sent,") b = $(i - 2); if (b > m) m = b } END { printf "%.1f", m / it / 1e6 }' "$log")
    fi
    printf '%-20s %13.2f %10.0f %8.2fx %29s %18s   rounds: %s\n' "${ranks/#0/1} × $threads" "$seconds" "$(echo "$steps / $iterations / $seconds" | bc -l)" \
        "$ratio" "$share" "$sent" "$(printf '%.1f ' "${perRound[@]}")"
done
