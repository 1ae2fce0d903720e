"""Gymnasium row of `metarl bench envs --mujoco`: Gymnasium's own MuJoCo env (HalfCheetah-v5, Ant-v5,
Hopper-v5 or Walker2d-v5) stepped in a plain Python loop with random actions, reset at episode ends, one process.
Prints one JSON line: {"steps_per_second": median of the samples}."""
import argparse, json, time

import numpy as np
import gymnasium

parser = argparse.ArgumentParser()
parser.add_argument("--env", required=True)
parser.add_argument("--seconds", type=float, default=1.0)
parser.add_argument("--samples", type=int, default=3)
args = parser.parse_args()

env = gymnasium.make(args.env, max_episode_steps=200)
env.reset(seed=0)
actions = np.random.default_rng(2).uniform(-1, 1, size=(16,) + env.action_space.shape).astype(np.float32)
rates = []
for _ in range(args.samples + 1):
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        _, _, terminated, truncated, _ = env.step(actions[steps & 15])
        steps += 1
        if terminated or truncated:
            env.reset()
    rates.append(steps / (time.perf_counter() - start))
print(json.dumps({"steps_per_second": float(np.median(rates[1:]))}), flush=True)
