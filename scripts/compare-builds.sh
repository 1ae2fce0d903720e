#!/usr/bin/env bash
# Compares two release builds of metarl (say, main before and after a change), alternating
# them in one run so that the machine's drift hits both alike:
#   1. the final checkpoint of a short seeded run of every algorithm variant, byte for byte;
#   2. `metarl eval` of every zoo run (JSON, the `adaptation` key left out);
#   3. speed: bench maml, bench rl2 (LN-GRU, one update), bench envs, bench engine, printed as
#      each build's median and the median of the pairs' ratios (new / old).
# Usage: bash scripts/compare-builds.sh OLD_METARL NEW_METARL [PAIRS]   (PAIRS: 3 by default)
set -euo pipefail
old="$1"; new="$2"; pairs="${3:-3}"
cd "$(dirname "$0")/.."
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

echo "== final checkpoints, seed 2"
declare -A runs=(
  [rl2-ppo]="train rl2 --hidden 16 --trials-per-iteration 100 --iterations 3"
  [rl2-trpo]="train rl2 --algo trpo --hidden 16 --trials-per-iteration 100 --iterations 3"
  [rl2-lngru-seq]="train rl2 --env tabular-mdp --cell ln-gru --hidden 16 --trials-per-iteration 50 --max-seq-len 20 --iterations 2"
  [maml]="train maml --iterations 3 --meta-batch-size 6 --fast-batch-size 5"
  [maml-ppo]="train maml --outer ppo --iterations 3 --meta-batch-size 6 --fast-batch-size 5"
  [maml-fo]="train maml-fo --iterations 3 --meta-batch-size 6 --fast-batch-size 5"
  [meta-sgd]="train meta-sgd --iterations 3 --meta-batch-size 6 --fast-batch-size 5 --inner-steps 2"
  [reptile]="train reptile --iterations 3 --meta-batch-size 6 --fast-batch-size 5"
  [sac]="train sac --env point-nav --env-arg horizon=20 --hidden-sizes 16 --batch-size 16 --steps-per-iteration 60 --random-steps 40 --iterations 3"
  [pearl]="train pearl --env point-nav --env-arg horizon=10 --hidden-sizes 16 --encoder-hidden-sizes 16 --train-tasks 4 --meta-batch-size 2 --batch-size 16 --gradient-steps 5 --eval-tasks 2 --iterations 2 --initial-steps 20 --tasks-per-iteration 2"
)
for name in $(printf '%s\n' "${!runs[@]}" | sort); do
  "$old" ${runs[$name]} --seed 2 --out "$work/old-$name" >/dev/null 2>&1
  "$new" ${runs[$name]} --seed 2 --out "$work/new-$name" >/dev/null 2>&1
  last=$(ls "$work/new-$name/checkpoints" | tail -1)
  if cmp -s "$work/old-$name/checkpoints/$last" "$work/new-$name/checkpoints/$last"; then echo "$name: $last identical"
  else echo "$name: $last DIFFERENT"; fi
done

echo "== zoo evaluations, seed 7"
strip='import json,sys; d=json.load(sys.stdin); d.pop("adaptation",None); print(json.dumps(d,sort_keys=True))'
for spec in "rl2-bandit-k5-n10 --trials 2000" "rl2-bandit-k5-n100 --trials 1000" "rl2-gridworld --trials 1000" \
            "rl2-harlow --trials 1000 --env-arg balanced-sides=1" "rl2-mdp-n10 --trials 1000" \
            "maml-point-nav --adapt-steps 3 --tasks 40" "pearl-point-nav --trajectories 3 --tasks 100"; do
  set -- $spec; dir=$1; shift
  a=$("$old" eval "zoo/$dir" --seed 7 --json "$@" 2>/dev/null | python3 -c "$strip")
  b=$("$new" eval "zoo/$dir" --seed 7 --json "$@" 2>/dev/null | python3 -c "$strip")
  [ "$a" = "$b" ] && echo "$dir: identical" || echo "$dir: DIFFERENT"
done

echo "== speed, $pairs alternating pairs (old, then new)"
for _ in $(seq "$pairs"); do
  for tag in old new; do
    bin=$([ $tag = old ] && echo "$old" || echo "$new")
    echo "$tag maml $("$bin" bench maml --iterations 6 --json)"
    echo "$tag rl2 $("$bin" bench rl2 --iterations 1 --cell ln-gru --json)"
    echo "$tag envs $("$bin" bench envs --json)"
    echo "$tag engine $("$bin" bench engine --json)"
  done
done > "$work/speed.txt"
python3 - "$work/speed.txt" <<'PY'
import json, statistics as st, sys
rows = [l.split(' ', 2) for l in open(sys.argv[1])]
def series(kind, pick):
    return [[pick(json.loads(r[2])) for r in rows if r[0] == tag and r[1] == kind] for tag in ('old', 'new')]
def show(label, o, n):
    print(f"{label}: old {st.median(o):.4g}, new {st.median(n):.4g}, new/old {st.median([b / a for a, b in zip(o, n)]):.3f}")
show("bench maml s/iteration", *series('maml', lambda d: d['seconds_per_iteration']))
show("bench rl2 steps/s", *series('rl2', lambda d: d['steps_per_second']))
for fam in [r['family'] for r in json.loads(next(r for r in rows if r[1] == 'envs')[2])['rows']]:
    show(f"bench envs {fam} steps/s", *series('envs', lambda d: next(x['steps_per_second'] for x in d['rows'] if x['family'] == fam)))
for key in ['mlp_b1_us', 'mlp_b4096_us', 'gru_ms', 'hvp_ms']:
    show(f"bench engine {key}", *series('engine', lambda d: d[key]))
PY
