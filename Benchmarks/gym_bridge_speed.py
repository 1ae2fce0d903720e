"""AsyncVectorEnv row of `metarl bench envs --bridge`: the same Gymnasium env stepped by
Gymnasium's AsyncVectorEnv (one env per process, the bridge's worker count), random actions,
auto-reset on episode end. (The plain-loop row is measured by the bridge's own workers.)
Prints one JSON line: {"async": steps/s of all AsyncVectorEnv processes}."""
import argparse, importlib.util, json, os, sys, time

import numpy as np
import gymnasium

parser = argparse.ArgumentParser()
parser.add_argument("--module", required=True)
parser.add_argument("--attr", required=True)
parser.add_argument("--processes", type=int, default=2)
parser.add_argument("--seconds", type=float, default=2.0)
args = parser.parse_args()

sys.path.insert(0, os.path.dirname(os.path.abspath(args.module)))
spec = importlib.util.spec_from_file_location("bench_env", args.module)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
make = getattr(module, args.attr)
horizon = 200

vector = gymnasium.vector.AsyncVectorEnv([lambda: gymnasium.wrappers.TimeLimit(make(), horizon)] * args.processes,
                                         autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP)
vector.reset(seed=0)
batch = np.stack([vector.action_space.sample() for _ in range(16)])
vector.step(batch[0])
rates = []
for sample in range(5):  # median of 5 samples of seconds / 5 each
    start, k = time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds / 5:
        vector.step(batch[k % 16])
        k += 1
    rates.append(k * args.processes / (time.perf_counter() - start))
vector.close()
print(json.dumps({"async": float(np.median(rates))}), flush=True)
