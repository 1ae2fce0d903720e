"""Reference for `metarl train maml` on point-nav: tristandeleu/pytorch-maml-rl at its
2D-navigation settings (configs/maml/2d-navigation.yaml: 20 tasks × 20 episodes, one inner
step of 0.1, TRPO δ 0.01, hidden 64-64 tanh), timed per meta-iteration, with the mean
return before and after adaptation of each meta-batch (as `metarl`'s metrics.csv logs).

pytorch-maml-rl is not on PyPI; give a checkout (commit 21d4ba1 was measured). It needs
gym 0.17 (PyPI) and torch (Debian's python3-torch):

    /usr/bin/python3 -m venv --system-site-packages VENV && VENV/bin/pip install gym==0.17.3 tqdm pyyaml
    OPENBLAS_CORETYPE=COOPERLAKE OPENBLAS_NUM_THREADS=1 VENV/bin/python \\
        Benchmarks/pytorch_maml_rl_run.py --checkout PATH --iterations 50 --seed 1 > pytorch-maml.jsonl

The only change to its code: `torch.lstsq`, removed from recent torch, is routed to
`torch.linalg.lstsq` (same solution). One JSON line per meta-iteration: seconds, pre- and post-adaptation mean return.
"""
import argparse, json, multiprocessing, os, sys, threading, time

parser = argparse.ArgumentParser()
parser.add_argument("--checkout", required=True)
parser.add_argument("--iterations", type=int, default=50)
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--num-workers", type=int, default=1)
parser.add_argument("--threads", type=int, default=1)
args = parser.parse_args()
sys.path.insert(0, args.checkout)

import gym  # noqa: E402
import numpy as np  # noqa: E402
import numpy_aliases  # noqa: E402,F401  (the peer predates numpy 1.24/2.0)
import torch  # noqa: E402
import yaml  # noqa: E402

torch.set_num_threads(args.threads)
# torch.lstsq, which the baseline's fit calls, is gone from torch ≥ 1.13 (it raises);
# the same solve through torch.linalg.
torch.lstsq = lambda b, a: (torch.linalg.lstsq(a, b).solution, None)
import maml_rl.envs  # noqa: E402,F401
from maml_rl.metalearners import MAMLTRPO  # noqa: E402
from maml_rl.baseline import LinearFeatureBaseline  # noqa: E402
from maml_rl.samplers import MultiTaskSampler  # noqa: E402
from maml_rl.utils.helpers import get_policy_for_env, get_input_size  # noqa: E402
from maml_rl.utils.reinforcement_learning import get_returns  # noqa: E402

with open(f"{args.checkout}/configs/maml/2d-navigation.yaml") as f:
    config = yaml.load(f, Loader=yaml.FullLoader)
torch.manual_seed(args.seed)
env = gym.make(config["env-name"], **config.get("env-kwargs", {}))
env.close()
policy = get_policy_for_env(env, hidden_sizes=config["hidden-sizes"], nonlinearity=config["nonlinearity"])
policy.share_memory()
baseline = LinearFeatureBaseline(get_input_size(env))
sampler = MultiTaskSampler(config["env-name"], env_kwargs=config.get("env-kwargs", {}), batch_size=config["fast-batch-size"],
                           policy=policy, baseline=baseline, env=env, seed=args.seed, num_workers=args.num_workers)


closing = threading.Event()


def watch_workers(workers, parent):
    """Ends the run and its workers when a sampler worker dies or metarl goes away:
    pytorch-maml-rl itself would wait on the dead worker's queue forever."""
    while not closing.wait(0.5):
        dead = [w for w in workers if w.exitcode is not None]
        if dead or os.getppid() != parent:
            reason = ("sampler worker %s exited with %s" % (dead[0].name, dead[0].exitcode)) if dead else "metarl is gone"
            print(json.dumps({"error": reason}), flush=True)
            for w in workers:
                if w.exitcode is None:
                    w.kill()
            os._exit(3)


threading.Thread(target=watch_workers, args=(multiprocessing.active_children(), os.getppid()), daemon=True).start()
metalearner = MAMLTRPO(policy, fast_lr=config["fast-lr"], first_order=config["first-order"], device="cpu")
for iteration in range(1, args.iterations + 1):
    start = time.perf_counter()
    tasks = sampler.sample_tasks(num_tasks=config["meta-batch-size"])
    futures = sampler.sample_async(tasks, num_steps=config["num-steps"], fast_lr=config["fast-lr"], gamma=config["gamma"],
                                   gae_lambda=config["gae-lambda"], device="cpu")
    metalearner.step(*futures, max_kl=config["max-kl"], cg_iters=config["cg-iters"], cg_damping=config["cg-damping"],
                     ls_max_steps=config["ls-max-steps"], ls_backtrack_ratio=config["ls-backtrack-ratio"])
    train_episodes, valid_episodes = sampler.sample_wait(futures)
    seconds = time.perf_counter() - start
    pre = float(np.mean(get_returns(train_episodes[0])))
    post = float(np.mean(get_returns(valid_episodes)))
    print(json.dumps({"iteration": iteration, "seconds": round(seconds, 3), "torch": torch.__version__, "episode_reward_mean": pre,
                      "episode_reward_mean_adapt_1": post}), flush=True)
closing.set()
sampler.close()
