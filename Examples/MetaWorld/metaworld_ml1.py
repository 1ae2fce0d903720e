"""Meta-World's meta-RL benchmarks as MetaRL task families, with their own train/test splits:

    --env gym:Examples/MetaWorld/metaworld_ml1.py:ML1    goal variation within one environment
        --env-arg env_name="'reach-v3'"                  which one (reach-v3, push-v3, pick-place-v3, ...)
    --env gym:Examples/MetaWorld/metaworld_ml1.py:ML10   10 training environments, 5 held-out ones
    --env gym:Examples/MetaWorld/metaworld_ml1.py:ML45   45 training environments, 5 held-out ones
        --env-arg split="'test'"                         the held-out tasks (default: the training tasks)

Needs `metaworld` (PyPI) in the interpreter given with --python. A task is a Meta-World `Task`
(picklable; it names its environment); `sample_tasks(n)` draws from the chosen split, so training
samples the training tasks and `metarl eval RUN --env-arg split="'test'"` evaluates on the held-out
ones. `info["success"]` is passed through as Meta-World reports it.
"""
import functools

import gymnasium as gym
import metaworld
import numpy as np


@functools.lru_cache(maxsize=None)
def benchmark(kind, seed, *args):
    """A benchmark's task lists, built once per worker process (building one instantiates every
    environment class it has to sample goals: seconds for ML1, a minute for ML45)."""
    return getattr(metaworld, kind)(*args, seed=seed)


class MetaWorldTasks(gym.Env):
    """The tasks of one split of a Meta-World benchmark; each copy builds an environment of a
    class the first time one of its tasks is set, and keeps it."""

    def __init__(self, benchmark, split):
        if split not in ("train", "test"):
            raise ValueError(f"split={split!r}: expected 'train' or 'test'")
        self.classes = benchmark.train_classes if split == "train" else benchmark.test_classes
        self.tasks = list(benchmark.train_tasks if split == "train" else benchmark.test_tasks)
        self.envs = {}
        self.set_task(self.tasks[0])
        # Every Meta-World environment has the same spaces and horizon.
        self.observation_space = self.env.observation_space
        self.action_space = self.env.action_space
        self.max_episode_steps = int(self.env.max_path_length)

    def sample_tasks(self, n):
        return [self.tasks[i] for i in np.random.randint(len(self.tasks), size=n)]

    def set_task(self, task):
        if task.env_name not in self.envs:
            self.envs[task.env_name] = self.classes[task.env_name]()
        self.task, self.env = task, self.envs[task.env_name]
        self.env.set_task(task)

    def get_task(self):
        return self.task

    def reset(self, seed=None, options=None):
        return self.env.reset(seed=seed)

    def step(self, action):
        return self.env.step(action)


class ML1(MetaWorldTasks):
    """One ML1 environment: 50 training goals, 50 held-out goals."""

    def __init__(self, env_name="reach-v3", split="train", benchmark_seed=0):
        super().__init__(benchmark("ML1", int(benchmark_seed), env_name), split)


class ML10(MetaWorldTasks):
    """ML10: 10 training environments (50 goals each), 5 held-out environments."""

    def __init__(self, split="train", benchmark_seed=0):
        super().__init__(benchmark("ML10", int(benchmark_seed)), split)


class ML45(MetaWorldTasks):
    """ML45: 45 training environments (50 goals each), 5 held-out environments."""

    def __init__(self, split="train", benchmark_seed=0):
        super().__init__(benchmark("ML45", int(benchmark_seed)), split)
