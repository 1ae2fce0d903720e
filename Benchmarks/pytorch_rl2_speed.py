"""Reference speed for `metarl bench rl2`: lucaslingle/pytorch_rl2 at its default settings.

pytorch_rl2 (https://github.com/lucaslingle/pytorch_rl2) is the public PyTorch RL²
implementation whose settings `metarl bench rl2` copies: GRU-256 with LayerNorm, PPO with
8 epochs over minibatches of 60 meta-episodes, 240 000 observations per policy update,
bandits k = 5 with meta-episodes of 100 pulls. This script times its own `training_loop`
for a given number of policy updates and splits the time between sampling
(`generate_meta_episode` + `assign_credit`) and the PPO update.

pytorch_rl2 is not on PyPI; give the path of a checkout (commit 51afa4b was measured).
It runs under MPI. Without `--mpi` a one-process stand-in for `MPI.COMM_WORLD` is installed,
which is what `mpirun -np 1` gives. With `--mpi` (mpi4py from PyPI, built against Debian's
Open MPI) it runs as pytorch_rl2's README runs it, `mpirun -np P python -m train`: each of the
P processes samples 240 000 / P steps per update and the gradients are averaged; rank 0 prints.
`--compile` wraps both networks in `torch.compile` (torch ≥ 2).

    OPENBLAS_CORETYPE=COOPERLAKE OPENBLAS_NUM_THREADS=1 /usr/bin/python3 \
        Benchmarks/pytorch_rl2_speed.py --checkout PATH [--updates 1] [--threads 1]
    mpirun -np 2 VENV/bin/python Benchmarks/pytorch_rl2_speed.py --checkout PATH --mpi

Not part of the tests.
"""
import argparse, json, sys, time, types

parser = argparse.ArgumentParser()
parser.add_argument("--checkout", required=True, help="path of a pytorch_rl2 checkout")
parser.add_argument("--updates", type=int, default=1, help="policy updates to time")
parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
parser.add_argument("--meta-episode-len", type=int, default=100)
parser.add_argument("--mpi", action="store_true", help="use the real mpi4py (run under mpirun)")
parser.add_argument("--compile", action="store_true", help="torch.compile both networks")
args = parser.parse_args()


class OneProcessComm:
    """What mpi4py's COMM_WORLD does with a single process."""
    def Get_size(self): return 1
    def Get_rank(self): return 0
    def allgather(self, x): return [x]
    def allreduce(self, x, op=None): return x
    def bcast(self, x, root=0): return x
    def Bcast(self, x, root=0): return None
    def Allreduce(self, sendbuf, recvbuf, op=None): recvbuf[...] = sendbuf


if args.mpi:
    from mpi4py import MPI as mpi
else:
    mpi = types.ModuleType("mpi4py.MPI")
    mpi.COMM_WORLD = OneProcessComm()
    mpi.SUM = "sum"
    mpi.Comm = OneProcessComm
    package = types.ModuleType("mpi4py")
    package.MPI = mpi
    sys.modules["mpi4py"] = package
    sys.modules["mpi4py.MPI"] = mpi
comm = mpi.COMM_WORLD
sys.path.insert(0, args.checkout)

import torch as tc  # noqa: E402
tc.set_num_threads(args.threads)
tc.manual_seed(comm.Get_rank())

import numpy as np  # noqa: E402
np.random.seed(comm.Get_rank())
import train  # noqa: E402
from rl2.algos import ppo  # noqa: E402
from rl2.utils.optim_util import get_weight_decay_param_groups  # noqa: E402

timing = {"sample": 0.0}


def timed(fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        out = fn(*a, **k)
        timing["sample"] += time.perf_counter() - t
        return out
    return wrapper


ppo.generate_meta_episode = timed(ppo.generate_meta_episode)
ppo.assign_credit = timed(ppo.assign_credit)

defaults = train.create_argparser().parse_args([])
env = train.create_env("bandit", defaults.num_states, defaults.num_actions, defaults.max_episode_len)
nets = [train.create_net(kind, "bandit", "gru", defaults.num_states, defaults.num_actions,
                         defaults.num_features, args.meta_episode_len) for kind in ("policy", "value")]
optimizers = [tc.optim.AdamW(get_weight_decay_param_groups(n, defaults.adam_wd), lr=defaults.adam_lr,
                             eps=defaults.adam_eps) for n in nets]
if args.compile:
    nets = [tc.compile(n) for n in nets]
per_update = 240000 // (comm.Get_size() * args.meta_episode_len)

start = time.perf_counter()
ppo.training_loop(
    env=env, policy_net=nets[0], value_net=nets[1],
    policy_optimizer=optimizers[0], value_optimizer=optimizers[1],
    policy_scheduler=None, value_scheduler=None,
    meta_episodes_per_policy_update=per_update,
    meta_episodes_per_learner_batch=defaults.meta_episodes_per_learner_batch,
    meta_episode_len=args.meta_episode_len,
    ppo_opt_epochs=defaults.ppo_opt_epochs, ppo_clip_param=defaults.ppo_clip_param,
    ppo_ent_coef=defaults.ppo_ent_coef, discount_gamma=defaults.discount_gamma,
    gae_lambda=defaults.gae_lambda, standardize_advs=False,
    max_pol_iters=args.updates, pol_iters_so_far=0,
    policy_checkpoint_fn=lambda i: None, value_checkpoint_fn=lambda i: None,
    comm=comm)
total = time.perf_counter() - start
steps = args.updates * per_update * args.meta_episode_len * comm.Get_size()
if comm.Get_rank() == 0:
    print(json.dumps({
    "implementation": "pytorch_rl2", "torch": tc.__version__, "threads": args.threads,
    "processes": comm.Get_size(), "compiled": args.compile,
    "updates": args.updates, "environment_steps": steps,
    "seconds": round(total, 2), "sample_seconds": round(timing["sample"], 2),
    "update_seconds": round(total - timing["sample"], 2),
    "steps_per_second": round(steps / total, 1)}))
