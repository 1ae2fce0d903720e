"""Meta-World ML1 as a MetaRL task family: `--env gym:Examples/MetaWorld/metaworld_ml1.py:ML1`.

    --env-arg env_name="'reach-v3'"   the ML1 environment (reach-v3, push-v3, pick-place-v3, ...)
    --env-arg split="'test'"          the benchmark's held-out goals (default: its 50 training goals)

Needs `metaworld` (PyPI) in the interpreter given with --python. A task is a Meta-World `Task`
(picklable); `sample_tasks(n)` draws from the chosen split, so training samples the train goals
and `metarl eval RUN --env-arg split="'test'"` evaluates on the test goals. `info["success"]`
is passed through as Meta-World reports it.
"""
import gymnasium as gym
import metaworld
import numpy as np


class ML1(gym.Env):
    """One ML1 environment with the benchmark's own train/test task split."""

    def __init__(self, env_name="reach-v3", split="train", benchmark_seed=0):
        if split not in ("train", "test"):
            raise ValueError(f"split={split!r}: expected 'train' or 'test'")
        benchmark = metaworld.ML1(env_name, seed=int(benchmark_seed))
        classes = benchmark.train_classes if split == "train" else benchmark.test_classes
        self.tasks = list(benchmark.train_tasks if split == "train" else benchmark.test_tasks)
        self.env = classes[env_name]()
        self.task = self.tasks[0]
        self.env.set_task(self.task)
        self.observation_space = self.env.observation_space
        self.action_space = self.env.action_space
        self.max_episode_steps = int(self.env.max_path_length)

    def sample_tasks(self, n):
        return [self.tasks[i] for i in np.random.randint(len(self.tasks), size=n)]

    def set_task(self, task):
        self.task = task
        self.env.set_task(task)

    def get_task(self):
        return self.task

    def reset(self, seed=None, options=None):
        return self.env.reset(seed=seed)

    def step(self, action):
        return self.env.step(action)
