"""MetaRL's Gymnasium bridge: one worker process owning a batch of env copies.

metarl starts several of these (`python -u metarl_gym_worker.py`), one per process it
steps Python envs in. Control messages are text lines on stdin, replies text lines on
stdout ("ok [payload]" or "error <one line>"); observations, actions, rewards, flags and
seeds travel through a shared-memory file the parent creates (see `Layout`). Needs only the
standard library, numpy and (for `gym:id:NAME` targets) gymnasium.

Messages (slot lists are comma-separated indices into the shared arrays):
  init <json>          import the target, build the task env, check its methods; reply with the spaces
  map <path> <cap>     map the shared arrays for `cap` copies
  make <slots>         build an env copy for each slot (kept and reused until the worker ends)
  task <slot> <b64>    set_task(pickle.loads(b64)) on a copy
  reset <slots>        reset each copy with seed seeds[slot]; write its observation
  step <slots>         step each copy with actions[slot]; write observation, reward, flags, success
  sample <n> <seed>    sample_tasks(n) on the task env with every RNG seeded by seed; reply b64 pickles
  sample_each <seeds>  for each comma-separated seed, what `sample 1 <seed>` replies, space-separated
  plain <slots> <sec>  (benchmark) step the copies in a plain Python loop for sec seconds; reply steps/s
  close                exit
"""

import ast
import base64
import importlib
import importlib.util
import json
import math
import mmap
import os
import pickle
import random
import signal
import sys
import time
import traceback

import numpy as np


class BridgeError(Exception):
    """A fault of the env (not of the bridge), reported to metarl as one line."""


def describe(error):
    """One line: the exception, and the innermost frame of user code that raised it."""
    frames = traceback.extract_tb(error.__traceback__)
    own = os.path.abspath(__file__)
    where = ""
    for frame in reversed(frames):
        if os.path.abspath(frame.filename) != own:
            where = " (%s:%d)" % (os.path.basename(frame.filename), frame.lineno)
            break
    text = str(error).replace("\n", " ")
    if isinstance(error, BridgeError):
        return text + where
    return "%s: %s%s" % (type(error).__name__, text, where)


def literal(text):
    """An --env-arg value as Python reads it (1, 0.5, True, 'text', [1, 2]); else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def load_factory(target):
    """The class or function a `gym:MODULE:ATTR` target names, or gymnasium.make for `gym:id:NAME`."""
    module_name, attr = target["module"], target["attr"]
    if module_name == "id":
        import gymnasium

        return lambda **kwargs: gymnasium.make(attr, **kwargs)
    if module_name.endswith(".py"):
        if not os.path.exists(module_name):
            raise BridgeError("module file %s does not exist" % module_name)
        sys.path.insert(0, os.path.dirname(module_name))
        spec = importlib.util.spec_from_file_location(os.path.basename(module_name)[:-3], module_name)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            raise BridgeError("cannot import module %s: %s" % (module_name, error))
    if not hasattr(module, attr):
        names = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))
                       and getattr(getattr(module, n), "__module__", None) == module.__name__)
        raise BridgeError("module %s has no attribute %s; it has: %s" % (module_name, attr, ", ".join(names[:20])))
    return getattr(module, attr)


def space_of(space, role):
    """A Gymnasium Discrete or Box space as {"discrete": n} or {"low", "high", "shape"} (duck-typed)."""
    if hasattr(space, "n") and not hasattr(space, "nvec"):
        return {"discrete": int(space.n)}
    if hasattr(space, "low") and hasattr(space, "high") and hasattr(space, "shape"):
        low = np.broadcast_to(np.asarray(space.low, dtype=np.float64), space.shape).reshape(-1)
        high = np.broadcast_to(np.asarray(space.high, dtype=np.float64), space.shape).reshape(-1)
        clip = lambda v: [float(min(max(x, -3.0e38), 3.0e38)) for x in v]
        return {"low": clip(low), "high": clip(high), "shape": [int(d) for d in space.shape]}
    raise BridgeError("%s space %s is neither Discrete nor Box" % (role, space))


def scalar(value, role):
    """A number, also from a one-element array (`np.array([r])`, as some envs return rewards)."""
    array = np.asarray(value, dtype=np.float64)
    if array.size != 1:
        raise BridgeError("%s has shape %s; expected a number" % (role, array.shape))
    return float(array.reshape(-1)[0])


def horizon_of(env, given):
    """The episode's time limit: the max_episode_steps argument, else the env's spec, else 200."""
    if given:
        return int(given)
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "max_episode_steps", None):
        return int(spec.max_episode_steps)
    for name in ("max_episode_steps", "_max_episode_steps", "max_path_length"):
        value = getattr(env, name, None) or getattr(getattr(env, "unwrapped", env), name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 200


def seed_everything(env, seed):
    """Seeds the global RNGs and the env's own, so a seed reproduces what follows."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    unwrapped = getattr(env, "unwrapped", env)
    try:
        import gymnasium.utils.seeding as seeding

        unwrapped._np_random, _ = seeding.np_random(seed)
    except Exception:
        pass


class Layout:
    """The shared arrays for `capacity` copies, in this order, each 64-byte aligned:
    actions f32[cap, m], observations f32[cap, n], rewards f32[cap], success f32[cap],
    seeds u64[cap], flags u8[cap, 2] (terminated, truncated)."""

    def __init__(self, path, capacity, n, m):
        fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            self.memory = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        offset = 0

        def take(dtype, shape):
            nonlocal offset
            count = int(np.prod(shape))
            array = np.frombuffer(self.memory, dtype=dtype, count=count, offset=offset).reshape(shape)
            offset += (count * np.dtype(dtype).itemsize + 63) // 64 * 64
            return array

        self.actions = take(np.float32, (capacity, m))
        self.observations = take(np.float32, (capacity, n))
        self.rewards = take(np.float32, (capacity,))
        self.success = take(np.float32, (capacity,))
        self.seeds = take(np.uint64, (capacity,))
        self.flags = take(np.uint8, (capacity, 2))
        if offset > size:
            raise BridgeError("shared memory %s holds %d bytes, the layout needs %d" % (path, size, offset))


class Worker:
    """The env copies of one worker process and the handlers of the control messages."""

    def __init__(self):
        self.envs = {}
        self.counts = None      # steps of each slot's episode so far
        self.batches = {}       # a step message's slot list → (slots, rows, envs, slot indices)
        self.layout = None

    def init(self, text):
        config = json.loads(text)
        self.name = config["name"]
        self.kwargs = {k: literal(v) for k, v in config["kwargs"].items()}
        given_horizon = self.kwargs.pop("max_episode_steps", None)
        factory = load_factory(config["target"])
        if config["target"]["module"] == "id" and given_horizon:
            self.kwargs["max_episode_steps"] = int(given_horizon)
        self.factory = factory
        self.task_env = self.build()
        missing = [m for m in ("sample_tasks", "set_task", "get_task") if not callable(getattr(self.task_env, m, None))
                   and not callable(getattr(getattr(self.task_env, "unwrapped", None), m, None))]
        if missing:
            raise BridgeError("the env has no %s method%s (a task family needs sample_tasks(n), set_task(task), get_task())"
                              % (", ".join(missing), "s" if len(missing) > 1 else ""))
        self.observation = space_of(self.task_env.observation_space, "observation")
        self.action = space_of(self.task_env.action_space, "action")
        self.horizon = horizon_of(self.task_env, given_horizon)
        self.n = self.observation["discrete"] if "discrete" in self.observation else int(np.prod(self.observation["shape"]))
        self.m = 1 if "discrete" in self.action else int(np.prod(self.action["shape"]))
        self.action_shape = (self.m,) if "discrete" in self.action else tuple(self.action["shape"])
        # Discrete(n, start=s): metarl's indices 0..n-1 are the values s..s+n-1.
        self.action_start = int(getattr(self.task_env.action_space, "start", 0)) if "discrete" in self.action else 0
        self.observation_start = int(getattr(self.task_env.observation_space, "start", 0)) if "discrete" in self.observation else 0
        dtype = getattr(self.task_env.action_space, "dtype", np.float32)
        self.action_dtype = np.dtype(dtype) if dtype is not None else np.dtype(np.float32)
        task = self.call(self.task_env, "get_task")
        return json.dumps({"observation": self.observation, "action": self.action, "horizon": self.horizon,
                           "task": self.pickled(task)})

    def build(self):
        env = self.factory(**self.kwargs)
        if not hasattr(env, "step") or not hasattr(env, "reset"):
            raise BridgeError("%s returned %s, which is not a Gymnasium env (no step/reset)" % (self.name, type(env).__name__))
        return env

    @staticmethod
    def call(env, method, *args):
        function = getattr(env, method, None)
        if not callable(function):
            function = getattr(env.unwrapped, method)
        return function(*args)

    @staticmethod
    def pickled(task):
        try:
            return base64.b64encode(pickle.dumps(task, protocol=4)).decode("ascii")
        except Exception as error:
            raise BridgeError("a task (%r) cannot be pickled: %s" % (task, error))

    def map(self, path, capacity):
        self.layout = Layout(path, int(capacity), self.n, self.m)
        counts = np.zeros(int(capacity), dtype=np.int64)
        if self.counts is not None:
            counts[:len(self.counts)] = self.counts[:int(capacity)]
        self.counts = counts

    def make(self, slots):
        for s in slots:
            if s not in self.envs:
                self.envs[s] = self.build()
                self.counts[s] = 0

    def task(self, slot, payload):
        self.call(self.envs[slot], "set_task", pickle.loads(base64.b64decode(payload)))

    def write_observation(self, slot, observation):
        row = self.layout.observations[slot]
        if "discrete" in self.observation:
            index = int(observation) - self.observation_start
            if not 0 <= index < self.n:
                raise BridgeError("observation %r is outside Discrete(%d, start=%d)" % (observation, self.n, self.observation_start))
            row[:] = 0
            row[index] = 1
            return
        values = np.asarray(observation, dtype=np.float32)
        if values.size != self.n:
            raise BridgeError("observation has shape %s, the observation space %s" % (values.shape, tuple(self.observation["shape"])))
        row[:] = values.reshape(-1)

    def reset(self, slots):
        layout = self.layout
        for s in slots:
            env = self.envs[s]
            seed = int(layout.seeds[s])
            seed_everything(env, seed)
            try:
                result = env.reset(seed=seed)
            except TypeError as error:
                if "seed" not in str(error):
                    raise
                result = env.reset()  # a reset(self) without Gymnasium's seed: seeded above all the same
            observation = result[0] if isinstance(result, tuple) and len(result) == 2 else result
            self.write_observation(s, observation)
            self.counts[s] = 0

    def step(self, text):
        """Steps the copies listed in `text`; the shared arrays are read and written once per
        batch, and the batch's envs are looked up once per distinct list of slots."""
        batch = self.batches.get(text)
        if batch is None:
            slots = slots_of(text)
            batch = (slots, rows_of(slots), [self.envs[s] for s in slots], np.asarray(slots, dtype=np.int64))
            if len(self.batches) >= 64:  # slot lists that come and go (copies leased anew) do not pile up
                self.batches.clear()
            self.batches[text] = batch
        slots, rows, envs, indices = batch
        layout = self.layout
        # One copy of the batch's actions (the env may keep the array it is given).
        if "discrete" in self.action:
            actions = (layout.actions[rows, 0].astype(np.int64) + self.action_start).tolist()
        else:
            actions = layout.actions[rows].astype(self.action_dtype, copy=True)
            if self.action_shape != (self.m,):  # a Box of another shape: each action in that shape
                actions = actions.reshape((len(slots),) + self.action_shape)
        results = [env.step(action) for env, action in zip(envs, actions)]
        try:
            observations, rewards, terminated, truncated, infos = zip(*results)
        except (TypeError, ValueError):
            observations = None
        if observations is None or len(observations) != len(slots):
            for result in results:
                if not (isinstance(result, tuple) and len(result) == 5):
                    raise BridgeError("step returned %s; a Gymnasium env returns (obs, reward, terminated, truncated, info)"
                                      % ("%d values" % len(result) if hasattr(result, "__len__") else type(result).__name__))
            raise BridgeError("step returned results that do not unpack")
        counts = self.counts
        counts[indices] += 1
        self.write_observations(slots, rows, observations)
        try:
            layout.rewards[rows] = np.fromiter(rewards, dtype=np.float64, count=len(rewards))
        except (TypeError, ValueError):
            layout.rewards[rows] = [scalar(r, "reward") for r in rewards]
        try:
            terminated, truncated = np.array(terminated, dtype=bool), np.array(truncated, dtype=bool)
            if terminated.shape != (len(slots),) or truncated.shape != (len(slots),):
                raise ValueError("not one flag per copy")
        except (TypeError, ValueError):  # one-element arrays, as some envs return
            terminated = np.array([scalar(x, "terminated") != 0 for x in terminated], dtype=bool)
            truncated = np.array([scalar(x, "truncated") != 0 for x in truncated], dtype=bool)
        layout.flags[rows, 0] = terminated
        layout.flags[rows, 1] = np.logical_or(truncated, counts[indices] >= self.horizon)
        if any(infos):
            nan = math.nan
            layout.success[rows] = [info.get("success", nan) if info else nan for info in infos]
        else:
            layout.success[rows] = math.nan

    def write_observations(self, slots, rows, observations):
        """Writes a batch of observations in one assignment where they stack to the space's
        flat shape (Box) or are indices inside it (Discrete); else row by row, with checks."""
        table = self.layout.observations
        try:
            if "discrete" in self.observation:
                indices = np.asarray(observations, dtype=np.int64) - self.observation_start
                if indices.shape == (len(slots),) and (indices >= 0).all() and (indices < self.n).all():
                    table[rows] = 0
                    table[slots, indices] = 1
                    return
            else:
                stacked = np.asarray(observations, dtype=np.float32)
                if stacked.size == len(slots) * self.n and stacked.shape[:1] == (len(slots),):
                    stacked = stacked.reshape(len(slots), self.n)
                    table[rows] = stacked
                    return
        except (TypeError, ValueError):
            pass
        for s, observation in zip(slots, observations):
            self.write_observation(s, observation)

    def plain(self, slots, seconds):
        """The reference of `metarl bench envs --bridge`: the same copies stepped in a plain
        Python loop, as a user would write it (random actions, reset when an episode ends),
        for `seconds`; returns steps/s. Run in the worker so both see the same process and envs."""
        envs = [self.envs[s] for s in slots]
        actions = [[env.action_space.sample() for _ in range(16)] for env in envs]
        counts = [0] * len(envs)
        steps, start, horizon = 0, time.perf_counter(), self.horizon
        while time.perf_counter() - start < float(seconds):
            for i, env in enumerate(envs):
                _, _, terminated, truncated, _ = env.step(actions[i][counts[i] % 16])
                counts[i] += 1
                if terminated or truncated or counts[i] % horizon == 0:
                    env.reset()
            steps += len(envs)
        return "%.1f" % (steps / (time.perf_counter() - start))

    def sample(self, n, seed):
        seed_everything(self.task_env, int(seed))
        tasks = self.call(self.task_env, "sample_tasks", int(n))
        tasks = list(tasks)
        if len(tasks) != int(n):
            raise BridgeError("sample_tasks(%d) returned %d tasks" % (int(n), len(tasks)))
        return " ".join(self.pickled(t) for t in tasks)

    def sample_each(self, seeds):
        """One task per seed, each as `sample 1 SEED` gives it (copies starting trials together)."""
        return " ".join(self.sample(1, seed) for seed in seeds.split(","))


def slots_of(text):
    return [int(s) for s in text.split(",")] if text else []


def rows_of(slots):
    """The shared arrays' index for `slots`: a slice when they are ascending and contiguous (as
    the bridge leases them), which numpy reads and writes several times faster than a list."""
    if slots and slots[-1] - slots[0] == len(slots) - 1 and slots == list(range(slots[0], slots[-1] + 1)):
        return slice(slots[0], slots[-1] + 1)
    return slots


def main():
    # Ctrl-C at a terminal reaches the whole process group: end quietly, metarl reports it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:  # End with the parent even if it is killed outright (Linux).
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
    except Exception:
        pass
    # The control socket is fds 0 and 1. Keep private handles on it and send whatever the env
    # prints (to sys.stdout or fd 1) to stderr instead, where it cannot be taken for a reply.
    control_in = os.fdopen(os.dup(0), "rb")
    control_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = Worker()
    handlers = {
        "init": lambda rest: worker.init(rest),
        "map": lambda rest: worker.map(*rest.split(" ")),
        "make": lambda rest: worker.make(slots_of(rest)),
        "task": lambda rest: worker.task(int(rest.split(" ", 1)[0]), rest.split(" ", 1)[1]),
        "reset": lambda rest: worker.reset(slots_of(rest)),
        "step": lambda rest: worker.step(rest),
        "sample": lambda rest: worker.sample(*rest.split(" ")),
        "sample_each": lambda rest: worker.sample_each(rest),
        "plain": lambda rest: worker.plain(slots_of(rest.partition(" ")[0]), rest.partition(" ")[2]),
    }
    for line in control_in:
        command, _, rest = line.decode().rstrip("\n").partition(" ")
        if command == "close":
            break
        try:
            payload = handlers[command](rest)
            reply = b"ok\n" if payload is None else ("ok " + payload + "\n").encode()
        except KeyError as error:
            if command not in handlers:
                reply = ("error unknown message %r\n" % command).encode()
            else:
                reply = ("error " + describe(error) + "\n").encode()
        except BaseException as error:  # the env's own exceptions, reported as one line
            reply = ("error " + describe(error) + "\n").encode()
        view = memoryview(reply)
        while view:
            view = view[control_out.write(view):]


if __name__ == "__main__":
    main()
