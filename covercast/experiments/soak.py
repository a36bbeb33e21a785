"""Soak benchmark: millions of random-action steps through every environment, checked.

:func:`soak` steps every registered environment id (``PushTiming-v0``, ``CoverStyle-v0``,
``PushSchedule-v0``, ``CoverGeneration-v0``) and the population vector environment with
uniformly random actions for a fixed budget of env-steps (a vector-env step of ``N`` users
counts ``N``), resetting at episode ends as a training loop would, and reports per env:

* **non-finite values**: NaN or +-inf in observations, rewards and every numeric value of the
  ``info`` dicts (all must be 0);
* **memory**: the process's resident set size (RSS) after a warm-up (the first
  ``warmup_fraction`` of the env's steps) and at the end, the growth between them and the
  growth per million steps -- a leak shows as growth that scales with steps;
* **determinism**: two fresh runs of ``spot_steps`` steps from the same seed give bit-identical
  observations and rewards, and a third run from another seed differs;
* steps per second and episodes completed (figures, not targets).

The default budget is 10 M env-steps: half through the vector env (``n_users`` users at a
time) and half shared by the single-user envs, except ``CoverGeneration-v0``, which renders
covers with a learned generator at every step and so gets ``generation_steps`` steps (it is
soaked for leaks and NaN, not for volume). ``covercast bench soak`` and
``benchmarks/bench_soak.py`` print the table and write ``soak.csv`` and ``soak.md``.
"""

from __future__ import annotations

import gc
import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import atomic_write_csv, atomic_write_text, check_int, md_table
from covercast.experiments.bench import _rss_mib

__all__ = ["soak", "format_soak_table", "DEFAULT_SOAK_STEPS", "VECTOR_ID"]

#: Total env-steps of the default soak.
DEFAULT_SOAK_STEPS = 10_000_000
#: Name of the population vector environment in the table.
VECTOR_ID = "PopulationVectorEnv"


def _count_nonfinite(value: Any) -> int:
    """NaN/inf entries in a number, an array or (recursively) a dict/list of them.

    In a vector env's info dict, an array ``info[k]`` with Gymnasium's mask ``info["_" + k]``
    is checked where the mask is True only: elsewhere the entry is a documented filler (e.g.
    ``satisfaction`` is NaN for users who answered no survey).
    """
    if isinstance(value, Mapping):
        total = 0
        for k, v in value.items():
            mask = value.get(f"_{k}") if isinstance(k, str) else None
            if isinstance(v, np.ndarray) and isinstance(mask, np.ndarray) \
                    and mask.dtype == bool and mask.shape == v.shape[:1]:
                v = v[mask]
            total += _count_nonfinite(v)
        return total
    if isinstance(value, (list, tuple)):
        return sum(_count_nonfinite(v) for v in value)
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        return 0
    if isinstance(value, (int, float, np.number)):
        return 0 if math.isfinite(float(value)) else 1
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        return int(value.size - np.isfinite(value).sum())
    return 0


def _make(env_id: str, seed: int):
    import gymnasium as gym

    import covercast  # noqa: F401  (registers the ids)

    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def _single_run(env_id: str, steps: int, seed: int, *, check_info: bool = True,
                record: bool = False, progress: Any = None) -> dict[str, Any]:
    """``steps`` random-action steps of ``env_id``; counts, RSS, and (``record``) a digest."""
    env = _make(env_id, seed)
    digest = hashlib.sha256() if record else None
    nonfinite = {"obs": 0, "reward": 0, "info": 0}
    episodes, rss0, warm = 0, float("nan"), max(1, steps // 10)
    t0 = time.perf_counter()
    for t in range(steps):
        if t == warm:
            gc.collect()
            rss0 = _rss_mib()
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        nonfinite["obs"] += _count_nonfinite(obs)
        nonfinite["reward"] += _count_nonfinite(reward)
        if check_info:
            nonfinite["info"] += _count_nonfinite(info)
        if digest is not None:
            digest.update(np.asarray(obs).tobytes())
            digest.update(np.float64(reward).tobytes())
        if terminated or truncated:
            episodes += 1
            env.reset()
        if progress is not None and (t + 1) % 1000 == 0:
            progress.update(1000)
    seconds = time.perf_counter() - t0
    gc.collect()
    rss1 = _rss_mib()
    env.close()
    if progress is not None:
        progress.update(steps % 1000)
    return {"steps": steps, "episodes": episodes, "seconds": seconds, **{
        f"nonfinite_{k}": v for k, v in nonfinite.items()}, "rss_warm_mib": rss0,
        "rss_end_mib": rss1, "digest": digest.hexdigest() if digest is not None else ""}


def _vector_run(n_users: int, rounds: int, seed: int, *, record: bool = False,
                progress: Any = None) -> dict[str, Any]:
    """``rounds`` steps of the vector env at ``n_users`` users (``rounds * n_users`` env-steps)."""
    from covercast.envs.vector import PopulationVectorEnv

    env = PopulationVectorEnv(n_users)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    k = int(env.single_action_space.n)
    digest = hashlib.sha256() if record else None
    nonfinite = {"obs": 0, "reward": 0, "info": 0}
    episodes, rss0, warm = 0, float("nan"), max(1, rounds // 10)
    t0 = time.perf_counter()
    for t in range(rounds):
        if t == warm:
            gc.collect()
            rss0 = _rss_mib()
        obs, rewards, terminated, truncated, info = env.step(rng.integers(0, k, n_users))
        nonfinite["obs"] += _count_nonfinite(obs)
        nonfinite["reward"] += _count_nonfinite(rewards)
        nonfinite["info"] += _count_nonfinite(info)
        episodes += int(np.count_nonzero(terminated | truncated))
        if digest is not None:
            digest.update(obs.tobytes())
            digest.update(np.asarray(rewards, dtype=np.float64).tobytes())
        if progress is not None:
            progress.update(n_users)
    seconds = time.perf_counter() - t0
    gc.collect()
    rss1 = _rss_mib()
    env.close()
    return {"steps": rounds * n_users, "episodes": episodes, "seconds": seconds,
            **{f"nonfinite_{k}": v for k, v in nonfinite.items()}, "rss_warm_mib": rss0,
            "rss_end_mib": rss1, "digest": digest.hexdigest() if digest is not None else ""}


def _deterministic(run, seed: int) -> bool:
    """Same seed twice: identical digests; another seed: a different one."""
    a, b, c = run(seed)["digest"], run(seed)["digest"], run(seed + 1)["digest"]
    return a == b and a != c


def soak(steps: int = DEFAULT_SOAK_STEPS, *, n_users: int = 10_000, generation_steps: int = 300,
         spot_steps: int = 2000, env_ids: Sequence[str] | None = None, seed: int = 0,
         out: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Soak every environment with random actions; one row per env (see the module docstring).

    Parameters
    ----------
    steps:
        Total env-steps: half through the vector env (a step of ``n_users`` users counts
        ``n_users``), half shared equally by the single-user envs other than
        ``CoverGeneration-v0``.
    n_users:
        Users of the vector env.
    generation_steps:
        Steps of ``CoverGeneration-v0`` (each renders covers with a learned generator; 0 skips
        it, as does a missing torch).
    spot_steps:
        Steps of each determinism run (vector env: rounds of 10 users).
    env_ids:
        Restrict to these ids (``"PopulationVectorEnv"`` names the vector env); default all.
    seed:
        Seed of every run (the determinism check also uses ``seed + 1``).
    out:
        Folder for ``soak.csv`` and ``soak.md`` (written atomically); None writes nothing.
    progress:
        Show a progress bar over all env-steps.
    """
    from covercast.envs.registration import ENV_IDS, GENERATION_ENV_ID

    for name, value, low in (("steps", steps, 1), ("n_users", n_users, 1),
                             ("generation_steps", generation_steps, 0),
                             ("spot_steps", spot_steps, 1)):
        check_int(value, name, low)
    known = (*ENV_IDS, GENERATION_ENV_ID, VECTOR_ID)
    chosen = list(known if env_ids is None else env_ids)
    unknown = [e for e in chosen if e not in known]
    if unknown:
        raise ValueError(f"Unknown env ids {unknown}; choose from {list(known)}.")
    if GENERATION_ENV_ID in chosen and generation_steps:
        try:
            import torch  # noqa: F401
        except ImportError:
            chosen.remove(GENERATION_ENV_ID)
    elif GENERATION_ENV_ID in chosen:
        chosen.remove(GENERATION_ENV_ID)
    singles = [e for e in chosen if e in ENV_IDS]
    vector = VECTOR_ID in chosen
    half = steps // 2 if (vector and singles) else steps
    per_single = max(1, (steps - half if vector else steps) // max(1, len(singles)))
    rounds = max(1, (half if singles else steps) // n_users)
    plan = {e: per_single for e in singles}
    if GENERATION_ENV_ID in chosen:
        plan[GENERATION_ENV_ID] = generation_steps
    total = sum(plan.values()) + (rounds * n_users if vector else 0)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="soak", unit="step", unit_scale=True)
    rows = []
    try:
        for env_id, n in plan.items():
            r = _single_run(env_id, n, seed, progress=bar)
            r["deterministic"] = _deterministic(
                lambda s, e=env_id: _single_run(e, spot_steps if e != GENERATION_ENV_ID
                                                else min(spot_steps, 20), s, check_info=False,
                                                record=True), seed)
            rows.append({"env": env_id.removeprefix("covercast/"), **r})
        if vector:
            r = _vector_run(n_users, rounds, seed, progress=bar)
            r["deterministic"] = _deterministic(
                lambda s: _vector_run(10, max(1, spot_steps // 10), s, record=True), seed)
            rows.append({"env": f"{VECTOR_ID} (N={n_users:,})", **r})
    finally:
        if bar is not None:
            bar.close()
    df = pd.DataFrame(rows).drop(columns="digest")
    df["steps_per_s"] = df["steps"] / df["seconds"]
    df["rss_growth_mib"] = df["rss_end_mib"] - df["rss_warm_mib"]
    # per million steps only where there were enough steps after the warm-up to say
    df["rss_growth_mib_per_m_steps"] = np.where(
        df["steps"] >= 100_000, df["rss_growth_mib"] / (0.9 * df["steps"] / 1e6), np.nan)
    df["nonfinite"] = df[["nonfinite_obs", "nonfinite_reward", "nonfinite_info"]].sum(axis=1)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_csv(df, out / "soak.csv")
        atomic_write_text(out / "soak.md", _report(df, steps=steps, n_users=n_users, seed=seed))
    return df


def format_soak_table(df: pd.DataFrame) -> str:
    """The soak table as Markdown."""
    header = ["env", "env-steps", "episodes", "steps/s", "NaN/inf (obs, reward, info)",
              "RSS after warm-up (MiB)", "RSS at end (MiB)", "growth (MiB)",
              "growth per 1M steps (MiB)", "same seed same run"]
    rows = [[r.env, f"{r.steps:,}", f"{r.episodes:,}", f"{r.steps_per_s:,.0f}",
             f"{r.nonfinite_obs}, {r.nonfinite_reward}, {r.nonfinite_info}",
             f"{r.rss_warm_mib:,.1f}", f"{r.rss_end_mib:,.1f}", f"{r.rss_growth_mib:+.1f}",
             _or_na(r.rss_growth_mib_per_m_steps, "+.2f"), "yes" if r.deterministic else "NO"]
            for r in df.itertuples()]
    return "\n".join(md_table(header, rows, ["---"] + ["---:"] * 3 + ["---"] + ["---:"] * 4
                               + ["---"]))


def _or_na(value: float, fmt: str) -> str:
    return "n/a" if not np.isfinite(value) else format(value, fmt)


def _report(df: pd.DataFrame, *, steps: int, n_users: int, seed: int) -> str:
    total = int(df["steps"].sum())
    bad = int(df["nonfinite"].sum())
    det = bool(df["deterministic"].all())
    return "\n".join([
        "# Soak benchmark", "",
        f"Written by `covercast bench soak --steps {steps} --n-users {n_users} --seed {seed}` "
        "(random actions, resets at episode ends; RSS of this process from /proc).", "",
        f"- env-steps in all: **{total:,}**", f"- non-finite values (obs, rewards, infos): "
        f"**{bad}**", f"- same seed, same trajectory; other seed, other trajectory: "
        f"**{'every env' if det else 'NOT every env'}**",
        f"- largest RSS growth after warm-up: **{df['rss_growth_mib'].max():+.1f} MiB** "
        f"({df.loc[df['rss_growth_mib'].idxmax(), 'env']})", "",
        format_soak_table(df), ""])


def add_soak_arguments(parser: Any) -> None:
    """The options of ``covercast bench soak`` and ``benchmarks/bench_soak.py``."""
    parser.add_argument("--steps", type=int, default=DEFAULT_SOAK_STEPS,
                        help="env-steps in all (half through the vector env)")
    parser.add_argument("--n-users", type=int, default=10_000, help="users of the vector env")
    parser.add_argument("--generation-steps", type=int, default=300,
                        help="steps of CoverGeneration-v0 (0 skips it)")
    parser.add_argument("--spot-steps", type=int, default=2000,
                        help="steps of each determinism run")
    parser.add_argument("--envs", nargs="+", default=None, metavar="ID",
                        help=f"only these env ids ({VECTOR_ID} names the vector env; "
                             "default: all)")
    parser.add_argument("--seed", type=int, default=0, help="master seed")
    parser.add_argument("--out", default="runs/soak", help="folder for soak.csv and soak.md")


def soak_from_bench_args(args: Any, steps: int) -> int:
    """``covercast bench soak``: the bench command's ``--n-users``/``--seed``/``--out`` (default
    runs/soak), the other soak options at their defaults."""
    import argparse

    return run_soak(argparse.Namespace(
        steps=steps, n_users=args.n_users, generation_steps=300, spot_steps=2000, envs=None,
        seed=args.seed, out=args.out or "runs/soak", quiet=args.quiet))


def run_soak(args: Any) -> int:
    """Run :func:`soak` from parsed :func:`add_soak_arguments` options and print the table;
    returns 1 (a failure) if any env produced a non-finite value or was not deterministic."""
    df = soak(args.steps, n_users=args.n_users, generation_steps=args.generation_steps,
              spot_steps=args.spot_steps, env_ids=args.envs, seed=args.seed, out=args.out,
              progress=not getattr(args, "quiet", False))
    print(format_soak_table(df))
    print(f"report: {Path(args.out) / 'soak.md'}")
    return 0 if int(df["nonfinite"].sum()) == 0 and bool(df["deterministic"].all()) else 1
