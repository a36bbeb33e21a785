"""Does GRU-PPO learn reliably? The one-active-hour task over many seeds, with ablations.

The task (:func:`one_active_hour_params`): users are active only at one hour of the day (12:00
by default). A push then is seen and opened at once; a push at any other hour waits in the tray
until the next active hour and is nearly worthless by then (``stale_tau_h`` 0.5 h) but adds
fatigue (``beta_fatigue`` 2) and opt-out risk (5 % a push). The optimal policy pushes at the
active hour only; :class:`~covercast.agents.baselines.StaticScheduler` at that hour is it,
and the benchmark divides GRU-PPO's greedy return by that policy's on the same evaluation users
(a true upper reference: it pushes exactly when a push can pay).

:func:`bench_one_active_hour` trains GRU-PPO with its **default config** (the task sets only
the environment, its reward weights, the number of users and the step budget) on every seed
and every variant, evaluates each greedily on 200 two-day users, and reports the ratio per
seed, the share of seeds at >= 0.9, and the collapse flag of each run. The variants undo one
fix of issue 15 at a time (``entropy_bonus="joint"``, ``hour_one_hot=False``), so the table
says what each fix contributes.

``python benchmarks/bench_learning.py [--seeds 0-19] [--variants default joint-entropy
no-hour-one-hot before-issue-15] [--workers 2] [--out reports/bench_learning]`` writes ``one_active_hour.csv`` and ``report.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import atomic_write_csv
from covercast.simulators.params import PopulationParams, atomic_write_text, peaked_params

__all__ = ["one_active_hour_params", "ONE_HOUR_VARIANTS", "ONE_HOUR_TASK",
           "train_one_active_hour", "bench_one_active_hour", "main"]

#: The task's environment settings (the only GRU-PPO settings the benchmark and the test set).
ONE_HOUR_TASK: dict[str, Any] = {
    "env_id": "covercast/PushTiming-v0", "num_envs": 32, "horizon_days": 2,
    "total_steps": 60_000, "env_kwargs": {"w_dwell": 0.0, "w_optout": 1.0}}

#: Variants: GRU-PPO config overrides on top of the defaults (``default``: none).
ONE_HOUR_VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "joint-entropy": {"entropy_bonus": "joint"},
    "no-hour-one-hot": {"hour_one_hot": False},
    "before-issue-15": {"entropy_bonus": "joint", "hour_one_hot": False},
}


def one_active_hour_params(hour: int = 12) -> PopulationParams:
    """Users active only at ``hour`` every day: a push then is seen and opened at once, a push
    at any other hour is seen late (nearly worthless: ``stale_tau_h`` 0.5 h) but adds fatigue
    (which lowers the next open) and opt-out risk (``base_hazard`` 0.05). Optimal: push at
    ``hour`` only. Built on ``peaked-v0`` (its relative-activity term, beta_activity 0.5, is
    part of the task)."""
    if isinstance(hour, bool) or not isinstance(hour, (int, np.integer)) or not 0 <= hour < 24:
        raise ValueError(f"`hour` must be an integer in [0, 23], got {hour!r}.")
    p = peaked_params()
    act = [0.0] * 168
    for d in range(7):
        act[d * 24 + int(hour)] = 6.0
    seg = dataclasses.replace(p.segments[0], name="one_hour", weight=1.0, activity=act,
                              activity_shape=50.0, open_intercept=1.0)
    return dataclasses.replace(
        p, segments=[seg], opt_out=dataclasses.replace(p.opt_out, base_hazard=0.05),
        open=dataclasses.replace(p.open, stale_tau_h=0.5, beta_fatigue=2.0))


def train_one_active_hour(seed: int, overrides: Mapping[str, Any] | None = None, *,
                          hour: int = 12, episodes: int = 200, eval_seed: int = 7
                          ) -> dict[str, float]:
    """Train GRU-PPO on the task with ``seed`` (default config plus ``overrides``) and evaluate
    it greedily on ``episodes`` users; returns the run's figures (``ratio`` = its mean return
    over the push-at-``hour`` policy's on the same users)."""
    from covercast.agents.baselines import StaticScheduler
    from covercast.agents.gru_ppo import GRUPPOConfig, GRUPPOTrainer
    from covercast.experiments.evaluate import evaluate

    params = one_active_hour_params(hour)
    cfg = GRUPPOConfig(**{**ONE_HOUR_TASK, "tensorboard": False, "seed": int(seed),
                          **dict(overrides or {})})
    env_kwargs = {"params": params, "horizon_days": cfg.horizon_days, **cfg.env_kwargs}
    t0 = time.perf_counter()
    import warnings

    with warnings.catch_warnings():           # the collapse flag is a column of the table
        warnings.simplefilter("ignore")
        tr = GRUPPOTrainer(cfg, params=params, progress=False)
        tr.train()
    seconds = time.perf_counter() - t0
    got = evaluate(tr.agent(seed=0), cfg.env_id, episodes=episodes, seed=eval_seed,
                   env_kwargs=env_kwargs, deterministic=True)
    best = evaluate(StaticScheduler(mode="timing", hours=(int(hour),)), cfg.env_id,
                    episodes=episodes, seed=eval_seed, env_kwargs=env_kwargs)
    ref = float(best["return"].mean())
    return {"seed": int(seed), "return": float(got["return"].mean()), "optimum": ref,
            "ratio": float(got["return"].mean()) / ref, "pushes": float(got["pushes"].mean()),
            "final_training_return": float(tr.history[-1]["episode_return"]),
            "collapse": tr.collapse or "", "seconds": seconds}


def _task(args: tuple[str, dict[str, Any], int]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    variant, overrides, seed = args
    return {"variant": variant, **train_one_active_hour(seed, overrides)}


def bench_one_active_hour(seeds: Sequence[int] = tuple(range(20)),
                          variants: Sequence[str] = tuple(ONE_HOUR_VARIANTS), *,
                          workers: int = 1, progress: bool = True) -> pd.DataFrame:
    """One row per (variant, seed): see :func:`train_one_active_hour`."""
    unknown = [v for v in variants if v not in ONE_HOUR_VARIANTS]
    if unknown:
        raise ValueError(f"Unknown variants {unknown}; known: {list(ONE_HOUR_VARIANTS)}.")
    if not seeds:
        raise ValueError("`seeds` is empty.")
    tasks = [(v, ONE_HOUR_VARIANTS[v], int(s)) for v in variants for s in seeds]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), disable=not progress, desc="one-active-hour runs")
    rows = []
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for row in pool.imap(_task, tasks):
                rows.append(row)
                bar.update()
    else:
        for t in tasks:
            rows.append(_task(t))
            bar.update()
    bar.close()
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per variant: seeds, seeds at >= 0.9 of the optimum, mean / min ratio, collapses."""
    g = df.groupby("variant", sort=False)
    return pd.DataFrame({
        "seeds": g["seed"].count(),
        "at_least_0_9": g["ratio"].apply(lambda r: int((r >= 0.9).sum())),
        "mean_ratio": g["ratio"].mean(), "min_ratio": g["ratio"].min(),
        "collapsed": g["collapse"].apply(lambda c: int((c != "").sum())),
        "seconds_per_run": g["seconds"].mean()}).reset_index()


def write_report(df: pd.DataFrame, out: Path, command: str) -> Path:
    """``one_active_hour.csv`` and ``report.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(df, out / "one_active_hour.csv")
    s = summary(df)
    lines = ["# GRU-PPO on the one-active-hour task", "",
             f"Command: `{command}`", "",
             "GRU-PPO with its default config (the task sets only the environment, the reward "
             f"weights, users and budget: `{json.dumps(ONE_HOUR_TASK)}`), greedy return on 200 "
             "two-day users divided by the push-at-12:00-only policy's on the same users (the "
             "optimum). Variants undo one fix at a time "
             f"(`{json.dumps(ONE_HOUR_VARIANTS)}`).", "",
             "| variant | seeds | >= 0.9 of optimum | mean ratio | min ratio | collapsed | s/run |",
             "|---|---|---|---|---|---|---|"]
    for r in s.itertuples(index=False):
        lines.append(f"| {r.variant} | {r.seeds} | {r.at_least_0_9} | {r.mean_ratio:.3f} | "
                     f"{r.min_ratio:.3f} | {r.collapsed} | {r.seconds_per_run:.1f} |")
    lines += ["", "Per seed (ratio, greedy pushes in two days, collapse flag):", ""]
    for v, g in df.groupby("variant", sort=False):
        cells = ", ".join(f"{int(x.seed)}: {x.ratio:.2f}/{x.pushes:.1f}"
                          + (f" ({x.collapse})" if x.collapse else "")
                          for x in g.itertuples(index=False))
        lines.append(f"- **{v}**: {cells}")
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return out / "report.md"


def _seed_list(text: str) -> list[int]:
    """``"0-19"`` or ``"0,3,5"``."""
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", default="0-19", help="training seeds, e.g. 0-19 or 0,3,5")
    p.add_argument("--variants", nargs="+", default=list(ONE_HOUR_VARIANTS),
                   choices=list(ONE_HOUR_VARIANTS))
    p.add_argument("--workers", type=int, default=1, help="processes")
    p.add_argument("--out", default="reports/bench_learning")
    p.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace, command: str) -> int:
    df = bench_one_active_hour(_seed_list(args.seeds), args.variants, workers=args.workers,
                               progress=not args.quiet)
    path = write_report(df, Path(args.out), command)
    print(summary(df).to_string(index=False))
    print(f"report: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_learning.py",
                                description="GRU-PPO on the one-active-hour task, many seeds")
    add_arguments(p)
    a = p.parse_args(argv)
    import sys

    return run(a, "python benchmarks/bench_learning.py " + " ".join(
        sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
