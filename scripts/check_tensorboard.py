"""Reads a run directory's TensorBoard event file with TensorBoard's own EventAccumulator
and checks that it holds the same scalars as metrics.csv (to float32 precision).

    bash scripts/check-tensorboard.sh RUN_DIR [RUN_DIR…]

Prints one line per run and exits non-zero on any difference.
"""
import csv, math, struct, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def as_float32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


failures = 0
for run in sys.argv[1:]:
    accumulator = EventAccumulator(run, size_guidance={"scalars": 0})
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    with open(f"{run}/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in rows[0].keys() if c != "iteration"] if rows else []
    checked, problems = 0, []
    for column in columns:
        expected = {int(r["iteration"]): float(r[column]) for r in rows if r[column] != "" and math.isfinite(float(r[column]))}
        if column not in tags:
            problems.append(f"tag {column} missing")
            continue
        events = accumulator.Scalars(column)
        got = {e.step: e.value for e in events}
        if len(events) != len(got):
            problems.append(f"{column}: duplicate steps")
        if set(got) != set(expected):
            problems.append(f"{column}: steps differ ({len(got)} in events, {len(expected)} in metrics.csv)")
            continue
        for step, value in expected.items():
            if got[step] != as_float32(value):
                problems.append(f"{column} step {step}: {got[step]} in events, {value} in metrics.csv")
                break
            checked += 1
    extra = tags - set(columns)
    if extra:
        problems.append(f"tags not in metrics.csv: {sorted(extra)}")
    status = "OK" if not problems else "MISMATCH"
    print(f"{run}: {status}: {len(rows)} rows × {len(columns)} columns, {checked} scalars equal"
          + ("" if not problems else "; " + "; ".join(problems[:5])))
    failures += bool(problems)
sys.exit(1 if failures else 0)
