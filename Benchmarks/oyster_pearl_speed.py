"""Reference speed for `metarl bench pearl`: katerakelly/oyster (PEARL's own code) on its
point-robot configuration (configs/point-robot.json over configs/default.py).

Builds oyster's networks exactly as its `launch_experiment.py` does (context encoder
200-200-200, Q1, Q2, V and the policy 300-300-300, latent 5), on the CPU, then times:
  * environment steps: `collect_data` on training tasks with z from the prior, as oyster's
    initial pool is collected (one policy forward per step);
  * gradient steps: `_do_training` on meta-batches of 16 tasks, 256 RL and 64 context
    transitions per task, as oyster's training loop calls it.

oyster is not on PyPI; give a checkout (commit 44e20fd was measured). It needs torch, numpy,
gym (0.17 from PyPI works), gtimer, python-dateutil and joblib. Its `rlkit.envs` package
imports every environment, MuJoCo ones included, and `rlkit.envs.wrappers` imports
`mujoco_py` for a camera wrapper it does not use here: this script loads only the point
robot and gives `mujoco_py` an empty module. Its code is otherwise run as it is.

    OPENBLAS_CORETYPE=COOPERLAKE OPENBLAS_NUM_THREADS=1 VENV/bin/python \\
        Benchmarks/oyster_pearl_speed.py --checkout PATH [--gradient-steps 200] [--threads 1]

Prints one JSON line. Not part of the tests.
"""
import argparse, json, os, sys, time, types

parser = argparse.ArgumentParser()
parser.add_argument("--checkout", required=True, help="path of an oyster checkout")
parser.add_argument("--gradient-steps", type=int, default=200, help="gradient steps to time")
parser.add_argument("--environment-steps", type=int, default=4000, help="environment steps to time")
parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
args = parser.parse_args()
sys.path.insert(0, args.checkout)

import numpy as np  # noqa: E402
import numpy_aliases  # noqa: E402,F401  (the peer predates numpy 1.24/2.0)
import torch  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)
np.random.seed(0)

# `rlkit.envs` as a package that registers environments but imports none on its own.
envs = types.ModuleType("rlkit.envs")
envs.__path__ = [os.path.join(args.checkout, "rlkit", "envs")]
envs.ENVS = {}


def register_env(name):
    def register(fn):
        envs.ENVS[name] = fn
        return fn
    return register


envs.register_env = register_env
import rlkit  # noqa: E402
sys.modules["rlkit.envs"] = envs
sys.modules.setdefault("mujoco_py", types.ModuleType("mujoco_py"))
rlkit.envs = envs
import rlkit.envs.point_robot  # noqa: E402,F401
from rlkit.envs.wrappers import NormalizedBoxEnv  # noqa: E402
from rlkit.torch.sac.policies import TanhGaussianPolicy  # noqa: E402
from rlkit.torch.networks import FlattenMlp, MlpEncoder  # noqa: E402
from rlkit.torch.sac.sac import PEARLSoftActorCritic  # noqa: E402
from rlkit.torch.sac.agent import PEARLAgent  # noqa: E402
import rlkit.torch.pytorch_util as ptu  # noqa: E402
sys.path.insert(0, os.path.join(args.checkout, "configs"))
from default import default_config  # noqa: E402

with open(os.path.join(args.checkout, "configs", "point-robot.json")) as f:
    overrides = json.load(f)
variant = default_config
for key, value in overrides.items():
    if isinstance(value, dict):
        variant[key].update(value)
    else:
        variant[key] = value
ptu.set_gpu_mode(False)

env = NormalizedBoxEnv(envs.ENVS[variant["env_name"]](**variant["env_params"]))
tasks = env.get_all_task_idx()
obs_dim = int(np.prod(env.observation_space.shape))
action_dim = int(np.prod(env.action_space.shape))
latent = variant["latent_size"]
net = variant["net_size"]
encoder = MlpEncoder(hidden_sizes=[200, 200, 200], input_size=obs_dim + action_dim + 1, output_size=2 * latent)
qf1 = FlattenMlp(hidden_sizes=[net] * 3, input_size=obs_dim + action_dim + latent, output_size=1)
qf2 = FlattenMlp(hidden_sizes=[net] * 3, input_size=obs_dim + action_dim + latent, output_size=1)
vf = FlattenMlp(hidden_sizes=[net] * 3, input_size=obs_dim + latent, output_size=1)
policy = TanhGaussianPolicy(hidden_sizes=[net] * 3, obs_dim=obs_dim + latent, latent_dim=latent, action_dim=action_dim)
agent = PEARLAgent(latent, encoder, policy, **variant["algo_params"])
algorithm = PEARLSoftActorCritic(env=env, train_tasks=list(tasks[:variant["n_train_tasks"]]),
                                 eval_tasks=list(tasks[-variant["n_eval_tasks"]:]),
                                 nets=[agent, qf1, qf2, vf], latent_dim=latent, **variant["algo_params"])
algorithm.training_mode(True)
import gtimer as gt  # noqa: E402
gt.reset()
gt.set_def_unique(False)  # as oyster's train() does before its loop

# Environment steps: oyster's initial pool (z from the prior), task after task.
per_task = variant["algo_params"]["num_initial_steps"]
start = time.perf_counter()
collected, task = 0, 0
while collected < args.environment_steps:
    algorithm.task_idx = algorithm.train_tasks[task % len(algorithm.train_tasks)]
    env.reset_task(algorithm.task_idx)
    algorithm.collect_data(per_task, 1, np.inf)
    collected += per_task
    task += 1
collect_seconds = time.perf_counter() - start
# Every training task gets its initial pool before training, as in oyster.
for idx in algorithm.train_tasks[task:]:
    algorithm.task_idx = idx
    env.reset_task(idx)
    algorithm.collect_data(per_task, 1, np.inf)

meta_batch = variant["algo_params"]["meta_batch"]
for _ in range(5):  # warm-up
    algorithm._do_training(np.random.choice(algorithm.train_tasks, meta_batch))
start = time.perf_counter()
for _ in range(args.gradient_steps):
    algorithm._do_training(np.random.choice(algorithm.train_tasks, meta_batch))
train_seconds = time.perf_counter() - start

print(json.dumps({
    "implementation": "oyster", "torch": torch.__version__, "threads": args.threads,
    "environment_steps": collected, "environment_steps_per_second": round(collected / collect_seconds, 1),
    "gradient_steps": args.gradient_steps, "gradient_steps_per_second": round(args.gradient_steps / train_seconds, 2),
    "meta_batch": meta_batch, "batch_size": variant["algo_params"]["batch_size"],
    "context_batch_size": variant["algo_params"]["embedding_batch_size"], "net_size": net,
    "max_path_length": variant["algo_params"]["max_path_length"]}))
