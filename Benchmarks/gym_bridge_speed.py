"""Reference rows of `metarl bench envs --bridge`: the same Gymnasium env stepped in a plain
Python loop (as many processes as the bridge has workers, running at once, each with the
bridge's copies per worker) and in Gymnasium's AsyncVectorEnv (one env per process, the
bridge's worker count), random actions, auto-reset on episode end. Prints one JSON line:
{"plain": mean steps/s of one plain-loop process, "async": steps/s of all AsyncVectorEnv processes}."""
import argparse, importlib.util, json, multiprocessing, os, sys, time

import numpy as np
import gymnasium

parser = argparse.ArgumentParser()
parser.add_argument("--module", required=True)
parser.add_argument("--attr", required=True)
parser.add_argument("--copies-per-process", type=int, default=32)
parser.add_argument("--processes", type=int, default=2)
parser.add_argument("--seconds", type=float, default=2.0)
args = parser.parse_args()

sys.path.insert(0, os.path.dirname(os.path.abspath(args.module)))
spec = importlib.util.spec_from_file_location("bench_env", args.module)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
make = getattr(module, args.attr)


def timed(step_batch, steps_per_batch):
    """Median steps/s over 5 samples of about `seconds` / 5 each (after one warm-up batch)."""
    step_batch()
    rates = []
    for _ in range(5):
        start, steps = time.perf_counter(), 0
        while time.perf_counter() - start < args.seconds / 5:
            step_batch()
            steps += steps_per_batch
        rates.append(steps / (time.perf_counter() - start))
    return float(np.median(rates))


horizon = 200


def plain_loop(seed, results):
    """One process stepping its copies in a plain loop; puts its steps/s on `results`."""
    envs = [make() for _ in range(args.copies_per_process)]
    for i, env in enumerate(envs):
        env.set_task(env.sample_tasks(1)[0])
        env.reset(seed=seed * 1000 + i)
    actions = [[env.action_space.sample() for _ in range(16)] for env in envs]
    counters = [0] * len(envs)

    def batch():
        for i, env in enumerate(envs):
            _, _, terminated, truncated, _ = env.step(actions[i][counters[i] % 16])
            counters[i] += 1
            if terminated or truncated or counters[i] % horizon == 0:
                env.reset()

    results.put(timed(batch, len(envs)))


# As many plain-loop processes as the bridge has workers, running at once (as the workers do).
results = multiprocessing.Queue()
loops = [multiprocessing.Process(target=plain_loop, args=(p, results)) for p in range(args.processes)]
for loop in loops:
    loop.start()
rates = [results.get(timeout=600) for _ in loops]
for loop in loops:
    loop.join()
plain = float(np.mean(rates))

vector = gymnasium.vector.AsyncVectorEnv([lambda: gymnasium.wrappers.TimeLimit(make(), horizon)] * args.processes,
                                         autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP)
vector.reset(seed=0)
batch = np.stack([vector.action_space.sample() for _ in range(16)])
k = [0]


def async_batch():
    vector.step(batch[k[0] % 16])
    k[0] += 1


asynchronous = timed(async_batch, args.processes)
vector.close()
print(json.dumps({"plain": plain, "async": asynchronous}), flush=True)
