"""What the Gymnasium bridge's worker adds to a step, inside one process (no messages).

Builds the bridge's `Worker` on Benchmarks/pendulum_mass_env.py (or --module/--attr), maps
its shared arrays over a scratch file and times, per message of --copies copies:
  * the whole step handler (`Worker.step`) against the same copies' bare `env.step` calls;
  * a seeded reset as the bridge does it (`seed_everything`, then `reset(seed=…)`) against a
    bare `reset()`.
Run it with the bridge's interpreter: ~/.cache/metarl/python/bin/python Benchmarks/bridge_handler_cost.py
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Sources", "GymBridge", "Resources"))
import metarl_gym_worker as bridge  # noqa: E402


def worker_with_copies(module, attr, copies):
    """A worker holding `copies` reset copies in slots 0..copies-1, episodes never truncated."""
    worker = bridge.Worker()
    worker.init(json.dumps({"name": "bench", "kwargs": {}, "target": {"module": module, "attr": attr}}))
    scratch = tempfile.NamedTemporaryFile(delete=False)
    scratch.write(b"\0" * (copies * (8 * (worker.n + worker.m) + 64) + (1 << 16)))
    scratch.close()
    worker.map(scratch.name, copies)
    os.unlink(scratch.name)
    slots = list(range(copies))
    worker.make(slots)
    worker.layout.seeds[:] = np.arange(copies, dtype=np.uint64)
    worker.reset(slots)
    worker.layout.actions[:] = np.asarray([worker.task_env.action_space.sample() for _ in slots], dtype=np.float32).reshape(copies, -1)
    worker.counts[:] = -(1 << 40)  # no time-limit truncation during the timing
    return worker, ",".join(map(str, slots))


def median_us(function, repeats, rounds=7):
    """Median over `rounds` of the mean time of `repeats` calls, in µs."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            function()
        times.append((time.perf_counter() - start) / repeats * 1e6)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--module", default=os.path.join(HERE, "pendulum_mass_env.py"))
    parser.add_argument("--attr", default="PendulumMassEnv")
    parser.add_argument("--copies", type=int, default=64, help="copies in one step message")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    worker, text = worker_with_copies(args.module, args.attr, args.copies)
    worker.step(text)
    _, _, envs, _ = worker.batches[text]
    actions = [np.array(a) for a in worker.layout.actions[: args.copies]]
    bare = median_us(lambda: [env.step(a) for env, a in zip(envs, actions)], args.repeats)
    handler = median_us(lambda: worker.step(text), args.repeats)
    print("step message of %d copies: handler %.1f µs, bare env.step calls %.1f µs: %.1f µs added (%.2f µs a copy, %.1f %%)"
          % (args.copies, handler, bare, handler - bare, (handler - bare) / args.copies, 100 * (handler - bare) / bare))
    env, seed = envs[0], 12345
    seeded = median_us(lambda: (bridge.seed_everything(env, seed), env.reset(seed=seed)), args.repeats * 10)
    plain = median_us(lambda: env.reset(), args.repeats * 10)
    print("reset: seeded as the bridge does %.1f µs, bare reset() %.1f µs: %.1f µs more a reset" % (seeded, plain, seeded - plain))


if __name__ == "__main__":
    main()
