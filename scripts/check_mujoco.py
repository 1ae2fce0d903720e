"""Step MetaRL's half-cheetah / ant / hopper / walker families and Gymnasium's HalfCheetah-v5 /
Ant-v5 / Hopper-v5 / Walker2d-v5 from the
same states with the same actions; print the largest deviation of each quantity.

Two comparisons per model, both held to TOLERANCE:
- one step: before every step MetaRL is set to Gymnasium's state (qpos, qvel), so each deviation
  is the error of one step. The Ant's forward velocity is left out here: like gym's
  get_body_com, both read the torso frame MuJoCo computed at the start of the last substep,
  which a state set from qpos and qvel does not carry;
- open loop: both run free for the whole episode from the same initial state.
TOLERANCE is 1e-3: MetaRL's observations and rewards are float32 (about 1e-6 at these
magnitudes), and MuJoCo 2.2.2 (MetaRL) and the wheel's 2.3.2 agree to about 1e-7 per step
here; chaotic contact dynamics grow differences over an episode, hence the margin.
"""
import argparse, json, os, subprocess, sys, tempfile

import gymnasium as gym
import mujoco
import numpy as np

# MuJoCo 2.3 warns that our cheetah's settotalmass is deprecated, on stdout and in MUJOCO_LOG.TXT.
mujoco.set_mju_user_warning(lambda message: None)

MODELS = {"half-cheetah": "HalfCheetah-v5", "ant": "Ant-v5", "hopper": "Hopper-v5", "walker": "Walker2d-v5"}
# MetaRL's MJCF file and Gymnasium's, per family.
FILES = {"half-cheetah": "half_cheetah.xml", "ant": "ant.xml", "hopper": "hopper.xml", "walker": "walker2d_v5.xml"}


def same_model(family, steps=1000):
    """Both MJCF files loaded in this MuJoCo and stepped with the same controls: the largest
    difference of qpos and qvel (0 when the models are the same)."""
    ours = mujoco.MjModel.from_xml_path(os.path.join(os.path.dirname(__file__), "..", "Sources", "Locomotion", "Resources", FILES[family]))
    theirs = mujoco.MjModel.from_xml_path(os.path.join(os.path.dirname(gym.__file__), "envs", "mujoco", "assets", FILES[family]))
    a, b = mujoco.MjData(ours), mujoco.MjData(theirs)
    rng, worst = np.random.default_rng(0), 0.0
    for _ in range(steps):
        a.ctrl[:] = b.ctrl[:] = rng.uniform(-1, 1, ours.nu)
        mujoco.mj_step(ours, a)
        mujoco.mj_step(theirs, b)
        worst = max(worst, float(np.abs(a.qpos - b.qpos).max()), float(np.abs(a.qvel - b.qvel).max()))
    return worst
# Reward terms as Gymnasium's info names them, with MetaRL's name for each.
TOLERANCE = 1e-3
# Quantities the one-step comparison cannot hold (see above), per model.
NOT_ONE_STEP = {"ant": {"reward", "reward_forward", "x_velocity"}}
TERMS = {"half-cheetah": {"reward_forward": "objective", "reward_ctrl": "control", "x_velocity": "xVelocity"},
         "ant": {"reward_forward": "objective", "reward_ctrl": "control", "reward_contact": "contact",
                 "reward_survive": "survival", "x_velocity": "xVelocity"}}
TERMS["hopper"] = TERMS["walker"] = {"reward_forward": "objective", "reward_ctrl": "control", "reward_survive": "survival",
                                     "x_velocity": "xVelocity"}


def gymnasium_episode(env_id, seed, steps, rng):
    env = gym.make(env_id)
    env.reset(seed=seed)
    data = env.unwrapped.data
    initial = {"qpos": data.qpos.tolist(), "qvel": data.qvel.tolist()}
    obs = [env.unwrapped._get_obs().tolist()]
    actions, states, rewards, infos, terminated = [], [], [], [], []
    for _ in range(steps):
        a = rng.uniform(-1, 1, size=env.action_space.shape).astype(np.float32)
        o, r, term, trunc, info = env.step(a)
        actions.append(a.tolist())
        states.append({"qpos": data.qpos.tolist(), "qvel": data.qvel.tolist()})
        obs.append(o.tolist()); rewards.append(r); infos.append(info); terminated.append(term)
        if term:
            break
    env.close()
    return initial, actions, states, obs, rewards, infos, terminated


def metarl_replay(metarl, env, replay):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(replay, f)
        path = f.name
    try:
        out = subprocess.run([metarl, "mujoco-replay", "--env", env, path], capture_output=True, text=True, timeout=600)
    finally:
        os.unlink(path)
    if out.returncode != 0:
        sys.exit(f"metarl mujoco-replay failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--metarl", default=".build/release/metarl")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--steps", type=int, default=200)
    args = p.parse_args()
    print(f"MuJoCo (Gymnasium side) {mujoco.__version__}, gymnasium {gym.__version__}; "
          f"{args.episodes} episodes × up to {args.steps} steps of uniform random actions per model")
    held = {}
    for family, env_id in MODELS.items():
        rng = np.random.default_rng(7)
        dev = {"one step": {}, "open loop": {}}
        steps_compared = 0
        for episode in range(args.episodes):
            initial, actions, states, obs, rewards, infos, terminated = gymnasium_episode(env_id, 100 + episode, args.steps, rng)
            steps_compared += len(actions)
            for mode, replay in (("one step", {"initial": initial, "actions": actions, "states": states}),
                                 ("open loop", {"initial": initial, "actions": actions})):
                record = metarl_replay(args.metarl, family, replay)
                d = dev[mode]
                skip = NOT_ONE_STEP.get(family, set()) if mode == "one step" else set()
                def note(name, a, b):
                    if name in skip:
                        return
                    d[name] = max(d.get(name, 0.0), float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))))
                note("observation", record["observations"], obs)
                note("reward", record["rewards"], rewards)
                for gym_name, ours in TERMS[family].items():
                    note(gym_name, record[ours], [i[gym_name] for i in infos])
                d["terminated (mismatches)"] = d.get("terminated (mismatches)", 0) + sum(
                    int(a != b) for a, b in zip(record["terminated"], terminated))
        print(f"\n{family} vs {env_id}: {steps_compared} steps; "
              f"MetaRL's MJCF vs Gymnasium's, 1000 mj_steps in this MuJoCo: max |Δqpos|, |Δqvel| = {same_model(family):.1e}")
        for mode in ("one step", "open loop"):
            print(f"  {mode}: " + ", ".join(f"{k} {v:.2e}" if isinstance(v, float) else f"{k} {v}" for k, v in dev[mode].items()))
        held[family] = dev
    failed = [f"{fam} {mode} {k} {v:.2e}" for fam, dev in held.items() for mode, d in dev.items()
              for k, v in d.items() if isinstance(v, float) and v > TOLERANCE]
    mismatches = sum(d["terminated (mismatches)"] for dev in held.values() for d in dev.values())
    if failed or mismatches:
        sys.exit(f"deviations above {TOLERANCE}: {', '.join(failed) or 'none'}; termination mismatches {mismatches}")
    print(f"\nok: every deviation ≤ {TOLERANCE}, no termination mismatch")


if __name__ == "__main__":
    main()
