"""RLlib-style PendulumMassEnv: Pendulum whose mass and length vary per task."""
import numpy as np
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from gymnasium.spaces import Discrete


class PendulumMassEnv(PendulumEnv):
    """Pendulum with task = (mass, length), sampled uniformly as in RLlib's example."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.m, self.l = 1.0, 1.0

    def sample_tasks(self, n_tasks):
        return [np.random.uniform([0.5, 0.5], [2.0, 2.0]) for _ in range(n_tasks)]

    def set_task(self, task):
        self.m, self.l = float(task[0]), float(task[1])

    def get_task(self):
        return np.array([self.m, self.l])


class DiscretePendulumMass(PendulumMassEnv):
    """The same tasks with three torques (-2, 0, +2), for discrete-action learners like RL²."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.action_space = Discrete(3)

    def step(self, action):
        return super().step(np.array([2.0 * (int(action) - 1)], dtype=np.float32))
