"""Environment speed benchmark (figures, not tests): random-action steps per second.

:func:`bench_envs` times, in one run and on the same machine state:

* each single-user covercast environment through ``gym.make`` (with the ``OrderEnforcing``
  and ``PassiveEnvChecker`` wrappers; the env truncates itself at its horizon), stepping with
  ``env.action_space.sample()`` and resetting at episode ends;
* the population vector environment (``gym.make_vec(..., vectorization_mode=
  "vector_entry_point")``) at ``n_users`` users, in user-steps per second;
* Gymnasium's ``CartPole-v1`` through ``gym.make``, the same way;
* RecoGym's random agent on ``RecoEnv1`` when recogym is installed (the ``bench`` extra and
  ``make bench`` install it; see :data:`RECOGYM_INSTALL` for the recipe that works with
  NumPy 2).

Each entry is run ``repeats`` times; the median rate is reported next to the best (other
processes share a small machine, so the median is what to expect and the best is the code's
speed). Ratios are against RecoGym's and CartPole's medians of the same run. ``covercast bench
envs`` and ``benchmarks/bench_envs.py`` print the table.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import atomic_write_csv, check_int

__all__ = ["bench_envs", "format_env_table", "import_recogym", "recogym_steps_per_s",
           "RECOGYM_INSTALL", "TARGET_RECOGYM_RATIO", "TARGET_VECTOR_USER_STEPS_PER_S"]

#: How to install RecoGym beside covercast (what ``make bench`` runs): the ``bench`` extra has
#: the packages RecoGym imports; RecoGym itself goes in without its declared dependencies, which
#: include tensorflow and jupyter (never imported by its environments or random agent).
RECOGYM_INSTALL = ('pip install -e ".[bench]" && pip install --no-deps recogym==0.1.3.0')

#: Each single-user environment should step at least this many times faster than RecoGym
#: (issue 21; was 5).
TARGET_RECOGYM_RATIO = 10.0
#: Target of the population vector environment at 10,000 users (issue 21; issue 17's was 3 M).
TARGET_VECTOR_USER_STEPS_PER_S = 10_000_000

_SINGLE_IDS = ("covercast/PushTiming-v0", "covercast/CoverStyle-v0", "covercast/PushSchedule-v0")


def _time_gym(env_id: str, steps: int, seed: int) -> float:
    """Random-action steps per second of ``gym.make(env_id)`` over ``steps`` steps."""
    import gymnasium as gym

    import covercast  # noqa: F401  (registers the ids)

    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    sample, step, reset = env.action_space.sample, env.step, env.reset
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = step(sample())
        if terminated or truncated:
            reset()
    dt = time.perf_counter() - t0
    env.close()
    return steps / dt


def _time_vector(n_users: int, steps: int, seed: int) -> float:
    """Random-action user-steps per second of the population vector environment."""
    import gymnasium as gym

    import covercast  # noqa: F401

    env = gym.make_vec("covercast/PushSchedule-v0", num_envs=n_users,
                       vectorization_mode="vector_entry_point")
    env.reset(seed=seed)
    env.action_space.seed(seed)
    sample, step = env.action_space.sample, env.step
    step(sample())                                       # first-step allocations
    t0 = time.perf_counter()
    for _ in range(steps):
        step(sample())
    dt = time.perf_counter() - t0
    env.close()
    return steps * n_users / dt


def import_recogym() -> Any:
    """Import recogym 0.1.3 under NumPy 2 / SciPy 1.17; ``None`` if it is not installed.

    Returns ``(recogym, RecoEnv1, RandomAgent, random_args)``. recogym calls ``scipy.rand``
    (removed from SciPy) and imports the unmaintained ``gym``, which prints a deprecation
    notice; both are handled here. Install it with :data:`RECOGYM_INSTALL`.

    Raises
    ------
    ImportError
        When recogym is installed but one of the packages it imports is not (the message
        names it and the recipe).
    """
    import importlib.util

    import scipy

    if importlib.util.find_spec("recogym") is None:
        return None
    if not hasattr(scipy, "rand"):
        scipy.rand = np.random.rand          # what recogym 0.1.3 expects
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            import recogym
            from recogym.agents import RandomAgent, random_args
            from recogym.envs.reco_env_v1 import RecoEnv1
    except ImportError as exc:
        raise ImportError(f"RecoGym is installed but does not import ({exc}); install what it "
                          f"needs with `{RECOGYM_INSTALL}`.") from exc
    return recogym, RecoEnv1, RandomAgent, random_args


def recogym_steps_per_s(steps: int = 10_000, seed: int = 0) -> float:
    """Steps per second of RecoGym's random agent on ``RecoEnv1`` (NaN without recogym).

    Install it as ``make bench`` does (:data:`RECOGYM_INSTALL`)::

        pip install -e ".[bench]"
        pip install --no-deps recogym==0.1.3.0

    The loop is RecoGym's own: ``env.init_gym(env_1_args)`` (RecoGym's envs are not made with
    ``gym.make``), ``env.reset()``, ``env.step(None)`` to start a user, then ``action =
    agent.act(observation, reward, done)`` and ``env.step(action["a"])`` until ``done``; every
    ``env.step`` counts as a step.
    """
    mod = import_recogym()
    if mod is None:
        return math.nan
    recogym, RecoEnv1, RandomAgent, random_args = mod
    from recogym import Configuration

    args = dict(recogym.env_1_args)
    args["random_seed"] = seed
    env = RecoEnv1()
    env.init_gym(args)
    agent = RandomAgent(Configuration({**args, **random_args, "random_seed": seed}))
    env.reset()
    obs, reward, done, _ = env.step(None)
    n = 1
    t0 = time.perf_counter()
    while n < steps:
        if done:
            env.reset()
            obs, reward, done, _ = env.step(None)
        else:
            action = agent.act(obs, reward, done)
            obs, reward, done, _ = env.step(action["a"])
        n += 1
    return n / (time.perf_counter() - t0)


def bench_envs(*, steps: int = 20_000, n_users: int = 10_000, vector_steps: int = 100,
               recogym_steps: int = 10_000, repeats: int = 3, seed: int = 0,
               env_ids: Sequence[str] = _SINGLE_IDS, include_recogym: bool = True,
               verbose: bool = True, progress: bool = False,
               out: str | os.PathLike | None = None) -> pd.DataFrame:
    """Time every environment side by side with CartPole and RecoGym; print the table.

    Parameters
    ----------
    steps : int
        Steps per timed run of each single-user environment and of CartPole.
    n_users : int
        Users of the population vector environment (the target is set at 10,000).
    vector_steps : int
        Steps (slots) per timed run of the vector environment.
    recogym_steps : int
        Steps per timed run of RecoGym's random agent.
    repeats : int
        Timed runs of each entry (median and best reported).
    seed : int
        Seed of the environments and of the random actions.
    env_ids : sequence of str
        The single-user environments to time.
    include_recogym : bool
        Time RecoGym when it is installed.
    verbose : bool
        Print the table.
    progress : bool
        Show a tqdm progress bar over the entries.
    out : path, optional
        Also write the table as CSV (atomically).

    Returns
    -------
    pandas.DataFrame
        One row per entry: ``env``, ``kind`` (``single``, ``vector``, ``reference``), ``unit``
        (``steps/s`` or ``user-steps/s``), ``median``, ``best``, ``vs_recogym`` and
        ``vs_cartpole`` (median ratios), ``target`` (the rate to reach, NaN where none) and
        ``meets_target``.
    """
    steps = check_int(steps, "steps")
    n_users = check_int(n_users, "n_users")
    vector_steps = check_int(vector_steps, "vector_steps")
    recogym_steps = check_int(recogym_steps, "recogym_steps", 2)
    repeats = check_int(repeats, "repeats")
    from tqdm.auto import tqdm

    jobs: list[tuple[str, str, str, Any]] = [("CartPole-v1", "reference", "steps/s",
                                              lambda: _time_gym("CartPole-v1", steps, seed))]
    if include_recogym and import_recogym() is not None:
        jobs.append(("RecoGym RecoEnv1 (random agent)", "reference", "steps/s",
                     lambda: recogym_steps_per_s(recogym_steps, seed)))
    for env_id in env_ids:
        jobs.append((env_id, "single", "steps/s",
                     lambda env_id=env_id: _time_gym(env_id, steps, seed)))
    jobs.append((f"PopulationVectorEnv (N={n_users:,})", "vector", "user-steps/s",
                 lambda: _time_vector(n_users, vector_steps, seed)))

    rates: dict[str, list[float]] = {name: [] for name, *_ in jobs}
    with tqdm(total=len(jobs) * repeats, disable=not progress, desc="bench envs") as bar:
        for _ in range(repeats):                       # interleaved: load hits all alike
            for name, _kind, _unit, fn in jobs:
                rates[name].append(fn())
                bar.update(1)
    rows = []
    for name, kind, unit, _ in jobs:
        r = np.array(rates[name])
        rows.append({"env": name, "kind": kind, "unit": unit, "median": float(np.median(r)),
                     "best": float(r.max())})
    df = pd.DataFrame(rows)
    ref = df.set_index("env")["median"]
    recogym = ref.get("RecoGym RecoEnv1 (random agent)", math.nan)
    cartpole = ref["CartPole-v1"]
    single = df["kind"] == "single"
    df["vs_recogym"] = np.where(single, df["median"] / recogym, math.nan)
    df["vs_cartpole"] = np.where(single, df["median"] / cartpole, math.nan)
    df["target"] = np.where(single, TARGET_RECOGYM_RATIO * recogym,
                            np.where(df["kind"] == "vector", TARGET_VECTOR_USER_STEPS_PER_S,
                                     math.nan))
    df["meets_target"] = np.where(df["target"].notna(), df["median"] >= df["target"], pd.NA)
    if verbose:
        print(format_env_table(df))
    if out is not None:
        atomic_write_csv(df, out)
    return df


def format_env_table(df: pd.DataFrame) -> str:
    """The benchmark table as fixed-width text."""
    lines = [f"{'environment':<36} {'unit':<13} {'median':>12} {'best':>12} {'x RecoGym':>10} "
             f"{'x CartPole':>10} {'target':>12}  ok"]
    for r in df.itertuples():
        def num(x: float, fmt: str) -> str:
            return format(x, fmt) if isinstance(x, float) and math.isfinite(x) else "-"

        ok = "-" if pd.isna(r.meets_target) else ("yes" if r.meets_target else "NO")
        lines.append(f"{r.env:<36} {r.unit:<13} {num(r.median, ',.0f'):>12} "
                     f"{num(r.best, ',.0f'):>12} {num(r.vs_recogym, '.2f'):>10} "
                     f"{num(r.vs_cartpole, '.3f'):>10} {num(r.target, ',.0f'):>12}  {ok}")
    lines.append(f"targets: each single-user env >= {TARGET_RECOGYM_RATIO:g}x RecoGym's random "
                 f"agent (median of the same run); the vector env >= "
                 f"{TARGET_VECTOR_USER_STEPS_PER_S:,} user-steps/s at 10,000 users")
    lines.append("single-user envs: the compiled one-user stepper (covercast.simulators.user, "
                 "numba; compiled at the first reset, outside the timed steps)")
    if "RecoGym RecoEnv1 (random agent)" in set(df["env"]):
        lines.append("RecoGym compiles its numba functions in its first run; the median leaves "
                     "that warm-up out (with repeats >= 3)")
    else:
        lines.append(f"RecoGym is not installed: `{RECOGYM_INSTALL}` (or `make bench`)")
    return "\n".join(lines)
