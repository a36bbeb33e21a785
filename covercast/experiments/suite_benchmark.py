"""``covercast experiment scheduling --suite``: the scheduling benchmark on the population suite.

The protocol (fixed before any run; see :mod:`covercast.simulators.suite` for the populations):

* **Train and tune on the training population only.** The learners (GRU-PPO) train on
  ``train_population`` (default ``calibrated-v1``, the default population), and the tuned
  control's hours and style are chosen by grid search on *its* simulated users
  (:func:`covercast.agents.tuned.tune_static_schedule`, a seed branch of its own). No policy is
  trained or tuned on any other population.
* **Evaluate on every population**: the training split (new users of the training
  populations) and the **held-out test split** (``high-fatigue-v1``, ``irregular-v1``,
  ``fitted-v1``, ``obd-timing-v1``), which no training or tuning saw. Every policy of a seed
  meets the same ``eval_users`` users of a population (the population vector environment reset
  with the same seed: common random numbers), ``horizon_days`` days each, with
  ``history_days`` of their organic sessions already seen (existing users).
* **Policies**: the seed paper's untuned control (``static``: 08:00 and 20:00, the first
  style), the **tuned control** (``static-tuned``: the benchmark's control, at two pushes a
  day), the activity heuristic (two a day), Thompson sampling of the style, GRU-PPO (held to
  the untuned control's volume band by its Lagrangian constraints, evaluated greedily, its best
  validated policy), and two hidden-state references that are not deployable: the
  ``lookahead-oracle`` (a heuristic) and the ``planning-oracle`` (dynamic programming over each
  user's state: the upper reference, checked against every policy).
* **Metrics per user per day** (over the ``horizon_days`` window, so an opted-out user counts
  zero after leaving): opens, dwell minutes, sessions (organic + pushed), pushes, and the
  share of users who opted out; return per user; CTR shown, never ranked alone.
* **Matched volume.** Lifts are read against the tuned control at the same pushes per day;
  the **Pareto figure** draws the tuned control's whole frontier (tuned at 1-4 pushes a day,
  ``pareto_volumes``) in opens per user-day against pushes per user-day, with every policy as
  a point.
* **Statistics**: the seed is the replication unit (mean over seeds, Student-t 95 % CI);
  Welch tests against the tuned control over seed means (Holm within a metric); user-level
  paired tests (same users) in ``paired_vs_control.csv``.
* **Sensitivity**: the parameters no published figure pins (``sensitivity_params``) are moved
  by -50 % and +50 % (``beta_activity`` to the ends of the OBD slope's 95 % interval, as it
  is 0) on the training population, every policy (GRU-PPO as trained, not retrained) is
  evaluated there on one seed, and the report says whether the ranking by return flips.

* **Covers** (``bank``, ``--bank``): every environment of a run -- GRU-PPO's training and
  validation, the control's tuning, the evaluation, the sensitivity -- pushes covers from one
  bank: procedural (default) or a learned generator's (``diffusion``, ``vae-iat``, ``dcgan``:
  :func:`covercast.generators.banks.named_bank`) or a bank file. Several banks
  (:func:`run_suite_banks`; ``--bank procedural diffusion vae-iat``) run the benchmark once per
  bank with the same seeds -- the same users -- and :func:`bank_comparison` writes them side by
  side (``banks.md``).

Results go to ``out``: ``cells/*/`` (resumable), ``episodes.csv``, ``seed_means.csv``,
``summary.csv``, ``vs_control.csv``, ``paired_vs_control.csv``, ``pareto.csv``,
``sensitivity.csv``, ``upper_bound.csv``, ``benchmark.md`` and the figures.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import (
    atomic_write_csv,
    atomic_write_text,
    check_fields,
    md_frame,
    pyplot,
    save_figure,
)

__all__ = ["SUITE_POLICIES", "DEPLOYABLE", "SuiteConfig", "run_suite", "aggregate_suite",
           "write_suite_report", "gru_return_vs_control", "return_decomposition",
           "gru_push_by_hour", "run_suite_banks", "bank_comparison",
           "OPENS_LIFT_BAND", "GRU_SEED_SHARE"]

#: Policies of the suite benchmark, in table order.
SUITE_POLICIES: tuple[str, ...] = ("static", "static-tuned", "heuristic", "bandit", "gru-ppo",
                                   "lookahead-oracle", "planning-oracle")
#: Policies a platform could deploy (no hidden state), other than the controls.
DEPLOYABLE: tuple[str, ...] = ("heuristic", "bandit", "gru-ppo")
#: What the labels mean in the report.
POLICY_LABELS = {
    "static": "static (seed paper's control, 08:00/20:00, first style, untuned)",
    "static-tuned": "static, tuned (the control: hours and style by grid search on training "
                    "users, 2 pushes a day)",
    "heuristic": "activity heuristic (2 a day at the user's most active seen hours)",
    "bandit": "Thompson sampling of the style, at the activity heuristic's hours (one "
              "posterior shared by all users, learning continually across them as a deployed "
              "bandit does)",
    "gru-ppo": "GRU-PPO (trained on the training population, best validated, greedy with the "
               "push threshold chosen on validation users of the training population)",
    "lookahead-oracle": "lookahead oracle (hidden state; a heuristic, not deployable)",
    "planning-oracle": "planning oracle (hidden state, dynamic programming; the upper "
                       "reference, not deployable)",
}
#: The target band of the best deployable policy's lift in opens per user-day over the tuned
#: control on the default population (published whole-system and send-time results).
OPENS_LIFT_BAND = (0.05, 0.40)
#: Per-user-day metrics and the others, as summarised.
METRICS: tuple[str, ...] = ("return", "opens_per_day", "dwell_min_per_day", "sessions_per_day",
                            "pushes_per_day", "opted_out", "ctr")

#: Parameter -> (path in PopulationParams.with_parts, values) of the sensitivity table; None:
#: -50 % and +50 % of the training population's value.
SENSITIVITY: dict[str, tuple[str, str, tuple[float, float] | None]] = {
    "beta_fatigue": ("open", "beta_fatigue", None),
    "opt_out.fatigue_coef": ("opt_out", "fatigue_coef", None),
    "stale_tau_h": ("open", "stale_tau_h", None),
    "beta_taste": ("open", "beta_taste", None),
    "fatigue.half_life_h": ("fatigue", "half_life_h", None),
    "beta_activity": ("open", "beta_activity", (-0.25, 0.25)),
}


@dataclass
class SuiteConfig:
    """Settings of a suite benchmark run (saved as ``config.json``)."""

    seeds: int = 5
    """Replications: each trains its own learners, tunes its own control, meets its own users."""
    seed: int = 0
    """Master seed; replication ``i`` uses ``SeedSequence([seed, i])``."""
    train_population: str = "calibrated-v1"
    """Where the learners train and the control is tuned."""
    eval_populations: list[str] = field(default_factory=lambda: [
        "calibrated-v1", "flat-activity-v1", "weak-taste-v1", "high-fatigue-v1",
        "irregular-v1", "fitted-v1", "obd-timing-v1"])
    """Populations every policy is evaluated on (suite names)."""
    policies: list[str] = field(default_factory=lambda: [
        p for p in SUITE_POLICIES if p != "lookahead-oracle"])
    """Policies run (the lookahead oracle is left out by default: a heuristic superseded by
    the planning oracle, and slow -- about 80 s per 1,000 users x 14 days on one core against
    the planning oracle's 17 s)."""
    eval_users: int = 1000
    """Users per seed, policy and population (population vector env, one episode each)."""
    horizon_days: float = 14.0
    history_days: float = 14.0
    pushes_per_day: int = 2
    """The tuned control's volume (the untuned control's)."""
    pareto_volumes: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    """Volumes the tuned control is also tuned at, for the Pareto frontier."""
    tune_users: int = 500
    """Users per candidate schedule in the control's grid search."""
    gru_steps: int = 6_000_000
    """GRU-PPO training env-steps (the scheduling benchmark's; about 4-5 minutes a run)."""
    sensitivity: bool = True
    """Run the sensitivity table (one seed, ``sensitivity_users`` users per cell)."""
    sensitivity_users: int = 500
    bank: str = "procedural"
    """The covers of every environment (training, tuning, evaluation, sensitivity):
    ``"procedural"``, ``"diffusion"``, ``"vae-iat"``, ``"dcgan"`` (a bank built from the
    committed generator, :func:`covercast.generators.banks.named_bank`) or a bank ``.npz``
    path."""
    workers: int = 2
    fast: bool = False

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        from covercast.simulators.suite import resolve_name

        check_fields(self, at_least=(("seeds", 1), ("eval_users", 2), ("gru_steps", 1),
                                     ("tune_users", 2), ("pushes_per_day", 1), ("workers", 1),
                                     ("seed", 0), ("sensitivity_users", 2)))
        resolve_name(self.train_population)
        from covercast.generators.banks import check_bank_spec

        check_bank_spec(self.bank)
        for p in self.eval_populations:
            resolve_name(p)
        bad = [p for p in self.policies if p not in SUITE_POLICIES]
        if bad or "static-tuned" not in self.policies:
            raise ValueError(f"`policies` must be a subset of {list(SUITE_POLICIES)} that "
                             f"includes the control 'static-tuned', got {self.policies!r}.")
        if not self.pareto_volumes or any(not isinstance(v, int) or not 1 <= v <= 24
                                          for v in self.pareto_volumes):
            raise ValueError(f"`pareto_volumes` must be pushes per day in 1-24, got "
                             f"{self.pareto_volumes!r}.")

    @classmethod
    def fast_config(cls, **overrides: Any) -> SuiteConfig:
        """Tiny sizes for smoke tests: 2 seeds, 12 users x 2 days, two populations."""
        kw: dict[str, Any] = dict(seeds=2, eval_users=12, horizon_days=2.0, history_days=2.0,
                                  policies=list(SUITE_POLICIES),
                                  gru_steps=1536, tune_users=4, pareto_volumes=[1, 2],
                                  eval_populations=["calibrated-v1", "high-fatigue-v1"],
                                  sensitivity_users=8, fast=True)
        kw.update(overrides)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _scheduling_config(config: SuiteConfig) -> Any:
    """The scheduling benchmark's config the GRU-PPO training helpers read."""
    from covercast.experiments.scheduling import SchedulingConfig

    kw: dict[str, Any] = dict(seeds=config.seeds, seed=config.seed,
                              horizon_days=config.horizon_days,
                              history_days=config.history_days, gru_steps=config.gru_steps,
                              bank=config.bank)
    if config.fast:
        return SchedulingConfig.fast_config(**kw, train_horizon_days=min(1.0,
                                                                          config.horizon_days))
    return SchedulingConfig(**kw)


def _seeds(config: SuiteConfig, i: int) -> dict[str, int]:
    """Independent seeds of replication ``i``: training, tuning, evaluation, agents."""
    train, tune, ev, agents = np.random.SeedSequence([config.seed, i]).generate_state(4)
    return {"train": int(train) % 2**31, "tune": int(tune), "eval": int(ev),
            "agents": int(agents)}


def _env_kwargs(config: SuiteConfig, population: str | Any) -> dict[str, Any]:
    from covercast.generators.banks import bank_kwargs

    # (the hyperparameter search's config has no bank: it trains on the procedural covers)
    kw: dict[str, Any] = {"horizon_days": config.horizon_days, "population": population,
                          **bank_kwargs(getattr(config, "bank", None))}
    if config.history_days:
        kw["history_days"] = float(config.history_days)
    return kw


def _tune(config: SuiteConfig, volume: int, seed: int) -> Any:
    from covercast.agents.tuned import TunedStaticScheduler
    from covercast.generators.banks import bank_kwargs

    return TunedStaticScheduler.tune(
        config.train_population, volume, n_users=config.tune_users, seed=seed,
        horizon_days=config.horizon_days, history_days=config.history_days,
        env_kwargs=bank_kwargs(config.bank) or None,
        name="static-tuned" if volume == config.pushes_per_day else f"static-tuned-{volume}")


def _baselines(config: SuiteConfig, seeds: dict[str, int], control: Any) -> dict[str, Any]:
    """Fresh non-learning policies (their state must not leak between populations)."""
    from covercast.agents import ActivityHeuristic, StaticScheduler, ThompsonStyleAgent
    from covercast.agents.oracle import LookaheadOracle
    from covercast.agents.planning import PlanningOracle
    from covercast.agents.tuned import TunedStaticScheduler

    s = [int(x) for x in np.random.SeedSequence([seeds["agents"], 7]).generate_state(6)]
    make = {
        "static": lambda: StaticScheduler(hours=(8, 20), style=0, seed=s[0], name="static"),
        "static-tuned": lambda: TunedStaticScheduler.from_dict(control.to_dict()),
        "heuristic": lambda: ActivityHeuristic(pushes_per_day=config.pushes_per_day, seed=s[1],
                                               name="heuristic"),
        "bandit": lambda: ThompsonStyleAgent(seed=s[2], name="bandit"),
        "lookahead-oracle": lambda: LookaheadOracle(seed=s[3], name="lookahead-oracle"),
        "planning-oracle": lambda: PlanningOracle(seed=s[4], name="planning-oracle"),
    }
    return {k: make[k]() for k in config.policies if k in make}


def _per_user_day(df: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
    """Per-user-day columns over the experiment window (zero after an opt-out)."""
    df = df.copy()
    df["opens_per_day"] = df["opens"] / horizon_days
    df["dwell_min_per_day"] = df["dwell_min"] / horizon_days
    df["sessions_per_day"] = (df["sessions"] + df["opens"]) / horizon_days
    df["pushes_per_day"] = df["pushes"] / horizon_days
    return df


def _evaluate(agent: Any, config: SuiteConfig, population: str | Any, users: int, seed: int,
              label: str) -> pd.DataFrame:
    """``agent`` on ``users`` users of ``population`` (a suite name or a PopulationParams),
    one row per user with the per-user-day columns."""
    from covercast.experiments.evaluate import evaluate_vector

    df = evaluate_vector(agent, users, seed, env_kwargs=_env_kwargs(config, population),
                         deterministic=label == "gru-ppo", name=label)
    df = _per_user_day(df, config.horizon_days).rename(columns={"agent": "policy"})
    df.insert(0, "population", population if isinstance(population, str) else population.name)
    return df


def run_suite_cell(task: dict[str, Any]) -> dict[str, Any]:
    """One replication: tune the control (every Pareto volume), train GRU-PPO, evaluate every
    policy on every population; writes ``episodes.csv``, ``pareto.csv``, ``curves.csv``,
    ``control.json`` and ``cell.json`` in ``task["dir"]``."""
    import torch

    torch.set_num_threads(1)
    config = SuiteConfig(**task["config"])
    i = int(task["index"])
    d = Path(task["dir"])
    d.mkdir(parents=True, exist_ok=True)
    seeds = _seeds(config, i)
    t0 = time.perf_counter()
    controls = {v: _tune(config, v, seeds["tune"] + v) for v in
                sorted(set(config.pareto_volumes) | {config.pushes_per_day})}
    control = controls[config.pushes_per_day]
    t_tune = time.perf_counter() - t0
    facts: dict[str, Any] = {"control": control.to_dict(), "tune_seconds": t_tune}
    learned: dict[str, Any] = {}
    curve = pd.DataFrame()
    if "gru-ppo" in config.policies:
        from covercast.experiments.scheduling import _train_gru
        from covercast.simulators.suite import load_population

        sc = _scheduling_config(config)
        agent, rows, f = _train_gru(sc, load_population(config.train_population),
                                    seeds["train"], d / "gru_ppo", False)
        learned["gru-ppo"] = agent
        facts["gru-ppo"] = f
        curve = pd.DataFrame(rows)
    frames, pareto = [], []
    for pop in config.eval_populations:
        agents = _baselines(config, seeds, control)
        agents.update(learned)
        for label in [p for p in SUITE_POLICIES if p in agents]:
            df = _evaluate(agents[label], config, pop, config.eval_users, seeds["eval"], label)
            frames.append(df)
        for v, ctl in controls.items():
            df = _evaluate(ctl, config, pop, config.eval_users, seeds["eval"], ctl.name)
            pareto.append({"population": pop, "volume": v, "hours": list(ctl.hours),
                           "style": int(ctl.style), **{m: float(df[m].mean()) for m in (
                               "opens_per_day", "pushes_per_day", "dwell_min_per_day",
                               "return", "opted_out")}})
    episodes = pd.concat(frames, ignore_index=True)
    episodes.insert(1, "seed_index", i)
    atomic_write_csv(episodes, d / "episodes.csv")
    pdf = pd.DataFrame(pareto)
    pdf.insert(0, "seed_index", i)
    atomic_write_csv(pdf, d / "pareto.csv")
    if not curve.empty:
        curve.insert(0, "seed_index", i)
    atomic_write_csv(curve, d / "curves.csv")
    if config.sensitivity and i == 0:
        sens = _sensitivity(config, seeds, control, learned)
        atomic_write_csv(sens, d / "sensitivity.csv")
    info = {"index": i, "seeds": seeds, "facts": facts, "seconds": time.perf_counter() - t0}
    atomic_write_text(d / "cell.json", json.dumps(info, indent=2, default=float) + "\n")
    return info


def _sensitivity(config: SuiteConfig, seeds: dict[str, int], control: Any,
                 learned: dict[str, Any]) -> pd.DataFrame:
    """Every policy on the training population with one parameter at -50 % / +50 %."""
    from covercast.simulators.suite import load_population

    base = load_population(config.train_population)
    cases: list[tuple[str, str, float, float, Any]] = [("none", "unchanged", math.nan,
                                                         math.nan, base)]
    for param, (part, fld, values) in SENSITIVITY.items():
        v0 = float(getattr(getattr(base, part), fld))
        for k, v in enumerate(values if values is not None else (0.5 * v0, 1.5 * v0)):
            p = base.with_parts(**{part: {fld: v}})
            change = (("-50 %", "+50 %") if values is None else ("CI low", "CI high"))[k]
            cases.append((param, change, v, v0,
                          dataclasses.replace(p, name=f"{base.name}:{param}={v:g}")))
    rows = []
    for param, change, v, v0, p in cases:
        agents = _baselines(config, seeds, control)
        agents.update(learned)
        for label in [q for q in SUITE_POLICIES if q in agents]:
            df = _evaluate(agents[label], config, p, config.sensitivity_users, seeds["eval"],
                           label)
            rows.append({"parameter": param, "change": change, "value": v, "base_value": v0,
                         "policy": label, "return": float(df["return"].mean()),
                         "return_se": float(df["return"].std(ddof=1) / np.sqrt(len(df))),
                         "opens_per_day": float(df["opens_per_day"].mean()),
                         "opted_out": float(df["opted_out"].mean())})
    return pd.DataFrame(rows)


def run_suite(out_dir: str | os.PathLike = "runs/scheduling_suite",
              config: SuiteConfig | None = None, *, backend: str = "auto",
              address: str | None = None, progress: bool = True) -> Path:
    """Run (or resume) the suite benchmark and write its report; returns ``benchmark.md``."""
    from covercast.experiments.scheduling import _run_tasks

    config = config or SuiteConfig()
    config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.exists():
        old = {"bank": "procedural", **json.loads(cfg_path.read_text())}   # runs before --bank
        if old != config.to_dict():
            raise ValueError(f"{cfg_path} holds another configuration; resume with the same "
                             "settings or use another --out.")
    else:
        atomic_write_text(cfg_path, json.dumps(config.to_dict(), indent=2) + "\n")
    if config.bank != "procedural":     # build (or load) a bank by name once, before the cells
        from covercast.envs.base import resolve_bank
        from covercast.simulators.suite import load_population

        resolve_bank(config.bank, load_population(config.train_population))
    tasks = [{"config": config.to_dict(), "index": i, "dir": str(out / "cells" / f"seed{i}")}
             for i in range(config.seeds)]
    _run_tasks(tasks, backend, config.workers, address, progress, run=run_suite_cell)
    aggregate_suite(out)
    if "gru-ppo" in config.policies:
        gru_push_by_hour(out)
    return write_suite_report(out)


# ================================================================================== results
def _frontier(pareto: pd.DataFrame, pop: str, seed: Any, metric: str, origin: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
    """The tuned control's frontier of one population and seed: pushes per user-day and
    ``metric``, by volume (empty when not measured); ``origin`` puts (0, 0) first."""
    fr = pareto[(pareto["population"] == pop) & (pareto["seed_index"] == seed)]
    fr = fr.sort_values("pushes_per_day")
    x, y = fr["pushes_per_day"].to_numpy(float), fr[metric].to_numpy(float)
    if origin and len(fr):
        x, y = np.concatenate([[0.0], x]), np.concatenate([[0.0], y])
    return x, y


def frontier_lifts(means: pd.DataFrame, pareto: pd.DataFrame) -> pd.DataFrame:
    """Each policy's opens per user-day against the tuned control's frontier *at the same
    push volume*: per (population, policy, seed), the seed's tuned schedules at 1-4 pushes a
    day give opens against pushes per user-day; the frontier's opens at the policy's volume
    (linear interpolation) is the matched-volume reference, ``lift = opens / frontier - 1``.
    ``inside`` is False when the policy's volume is outside the frontier's span (the nearest
    end is used then, so the lift is not a matched comparison)."""
    rows = []
    for (pop, seed), g in means.groupby(["population", "seed_index"], sort=False):
        x, y = _frontier(pareto, pop, seed, "opens_per_day")
        if not len(x):
            continue
        for _, r in g.iterrows():
            ref = float(np.interp(r["pushes_per_day"], x, y))
            rows.append({"population": pop, "policy": r["policy"], "seed_index": seed,
                         "pushes_per_day": r["pushes_per_day"],
                         "opens_per_day": r["opens_per_day"], "frontier_opens_per_day": ref,
                         "frontier_lift": r["opens_per_day"] / ref - 1 if ref > 0 else math.nan,
                         "inside": bool(x[0] - 1e-9 <= r["pushes_per_day"] <= x[-1] + 1e-9)})
    return pd.DataFrame(rows)


def aggregate_suite(out: str | os.PathLike) -> dict[str, Path]:
    """Collect the cells into the result CSVs (see the module docstring)."""
    from covercast.experiments.scheduling import population_stats

    out = Path(out)
    cells = sorted(p for p in (out / "cells").glob("*") if (p / "cell.json").exists())
    if not cells:
        raise FileNotFoundError(f"No finished cells in {out / 'cells'}; run the benchmark first.")
    episodes = pd.concat([pd.read_csv(p / "episodes.csv") for p in cells], ignore_index=True)
    pareto = pd.concat([pd.read_csv(p / "pareto.csv") for p in cells], ignore_index=True)
    curve_frames = [pd.read_csv(p / "curves.csv") for p in cells
                    if (p / "curves.csv").stat().st_size > 1]
    sens = [pd.read_csv(p / "sensitivity.csv") for p in cells if (p / "sensitivity.csv").exists()]
    means, summary, comps, paired = population_stats(
        episodes, "static-tuned", METRICS, [m for m in METRICS if m != "ctr"])
    paths = {k: out / f"{k}.csv" for k in ("episodes", "seed_means", "summary", "vs_control",
                                           "paired_vs_control", "pareto", "curves",
                                           "sensitivity", "upper_bound", "frontier",
                                           "return_decomposition")}
    atomic_write_csv(episodes, paths["episodes"])
    atomic_write_csv(means, paths["seed_means"])
    atomic_write_csv(summary, paths["summary"])
    atomic_write_csv(comps, paths["vs_control"])
    atomic_write_csv(paired, paths["paired_vs_control"])
    atomic_write_csv(pareto, paths["pareto"])
    atomic_write_csv(pd.concat(curve_frames, ignore_index=True) if curve_frames
                     else pd.DataFrame(), paths["curves"])
    atomic_write_csv(pd.concat(sens, ignore_index=True) if sens else pd.DataFrame(),
                     paths["sensitivity"])
    atomic_write_csv(upper_bound_check(summary), paths["upper_bound"])
    atomic_write_csv(frontier_lifts(means, pareto), paths["frontier"])
    atomic_write_csv(return_decomposition(means, pareto), paths["return_decomposition"])
    return paths


def _mean(summary: pd.DataFrame, pop: str, pol: str, m: str) -> float:
    r = summary[(summary["population"] == pop) & (summary["policy"] == pol)
                & (summary["metric"] == m)]
    return math.nan if r.empty else float(r["mean"].iloc[0])


def upper_bound_check(summary: pd.DataFrame) -> pd.DataFrame:
    """Per population: the planning oracle's mean return against every other policy's."""
    rows = []
    for pop in pd.unique(summary["population"]):
        ref = _mean(summary, pop, "planning-oracle", "return")
        for pol in pd.unique(summary["policy"]):
            if pol == "planning-oracle":
                continue
            v = _mean(summary, pop, pol, "return")
            rows.append({"population": pop, "policy": pol, "return": v,
                         "planning_oracle_return": ref, "ratio": v / ref if ref else math.nan,
                         "oracle_at_least_as_good": bool(ref >= v)})
    return pd.DataFrame(rows)


def _fmt(summary: pd.DataFrame, pop: str, pol: str, m: str, f: float = 1.0,
         unit: str = "") -> str:
    r = summary[(summary["population"] == pop) & (summary["policy"] == pol)
                & (summary["metric"] == m)]
    if r.empty or not np.isfinite(r["mean"].iloc[0]):
        return "n/a"
    r = r.iloc[0]
    if not np.isfinite(r["ci_high"]):
        return f"{f * r['mean']:.3g}{unit}"
    return f"{f * r['mean']:.3g}{unit} ± {f * (r['ci_high'] - r['mean']):.2g}"


def _frontier_cell(fr: pd.DataFrame, pop: str, pol: str) -> str:
    """Mean frontier lift over seeds with its 95 % t half-width (``*``: outside the span)."""
    from covercast.experiments.stats import summarize

    g = fr[(fr["population"] == pop) & (fr["policy"] == pol)]
    if g.empty or pol.startswith("static"):
        return ""
    r = summarize(g, by=None, metrics=["frontier_lift"]).iloc[0]
    half = r["ci_high"] - r["mean"] if np.isfinite(r["ci_high"]) else math.nan
    out = f"{100 * r['mean']:+.1f}" + (f" ± {100 * half:.1f}" if np.isfinite(half) else "") + " %"
    return out + ("" if g["inside"].all() else " *")


def _table(summary: pd.DataFrame, comp: pd.DataFrame, pop: str,
           fr: pd.DataFrame | None = None) -> str:
    cols = [("return", "return", 1.0, ""), ("opens_per_day", "opens/user/day", 1.0, ""),
            ("dwell_min_per_day", "dwell min/user/day", 1.0, ""),
            ("sessions_per_day", "sessions/user/day", 1.0, ""),
            ("pushes_per_day", "pushes/user/day", 1.0, ""),
            ("opted_out", "opted out", 100.0, " %"), ("ctr", "CTR (not ranked)", 100.0, " %")]
    head = "| policy | " + " | ".join(c[1] for c in cols) + \
        " | opens vs control | p (Holm) | opens vs tuned frontier at the same volume |"
    lines = [head, "|" + "---|" * (len(cols) + 4)]
    pols = [p for p in SUITE_POLICIES if p in set(summary.loc[summary["population"] == pop,
                                                                "policy"])]
    for pol in pols:
        cells = [_fmt(summary, pop, pol, m, f, u) for m, _, f, u in cols]
        c = comp[(comp["population"] == pop) & (comp["agent"] == pol)
                 & (comp["metric"] == "opens_per_day")] if not comp.empty else comp
        lift = f"{100 * c['lift'].iloc[0]:+.1f} %" if len(c) else ""
        p = f"{c['p_holm'].iloc[0]:.2g}" if len(c) else ""
        front = _frontier_cell(fr, pop, pol) if fr is not None and not fr.empty else ""
        lines.append(f"| {pol} | " + " | ".join(cells) + f" | {lift} | {p} | {front} |")
    return "\n".join(lines)


def target_check_suite(out: Path, summary: pd.DataFrame, config: dict[str, Any]
                       ) -> dict[str, Any]:
    """The issue's targets from the saved results (``target.json``)."""
    train = config["train_population"]
    ctl = _mean(summary, train, "static-tuned", "opens_per_day")
    ctl_push = _mean(summary, train, "static-tuned", "pushes_per_day")
    lifts = {}
    for pol in DEPLOYABLE:
        v = _mean(summary, train, pol, "opens_per_day")
        push = _mean(summary, train, pol, "pushes_per_day")
        if np.isfinite(v):
            lifts[pol] = {"opens_per_day": v, "pushes_per_day": push,
                          "lift": v / ctl - 1 if ctl else math.nan,
                          "matched_volume": bool(push <= 1.05 * ctl_push)}
    matched = {k: v for k, v in lifts.items() if v["matched_volume"]}
    best = max(matched, key=lambda k: matched[k]["lift"]) if matched else None
    ub = upper_bound_check(summary)
    fpath = out / "frontier.csv"
    fr = pd.read_csv(fpath) if fpath.exists() and fpath.stat().st_size > 1 else pd.DataFrame()
    flifts = {}
    if not fr.empty:
        for pol in DEPLOYABLE:
            g = fr[(fr["population"] == train) & (fr["policy"] == pol)]
            if len(g):
                flifts[pol] = {"lift": float(g["frontier_lift"].mean()),
                               "per_seed": [float(x) for x in g["frontier_lift"]],
                               "inside": bool(g["inside"].all())}
    fbest = max((k for k in flifts if flifts[k]["inside"]), key=lambda k: flifts[k]["lift"],
                default=None)
    checks = {
        "opens_lift_in_band": {
            "control_opens_per_day": ctl, "control_pushes_per_day": ctl_push,
            "policies": lifts, "best_deployable": best,
            "lift": matched[best]["lift"] if best else math.nan, "band": list(OPENS_LIFT_BAND),
            "pass": bool(best is not None and OPENS_LIFT_BAND[0] <= matched[best]["lift"]
                         <= OPENS_LIFT_BAND[1])},
        "opens_lift_vs_frontier_in_band": {
            "policies": flifts, "best_deployable": fbest,
            "lift": flifts[fbest]["lift"] if fbest else math.nan,
            "band": list(OPENS_LIFT_BAND),
            "note": "added after the first seed's results: the matched-volume reading of the "
                    "Pareto frontier (the pre-set rule is opens_lift_in_band)",
            "pass": bool(fbest is not None and OPENS_LIFT_BAND[0] <= flifts[fbest]["lift"]
                         <= OPENS_LIFT_BAND[1])},
        "upper_reference": {
            "violations": ub.loc[~ub["oracle_at_least_as_good"],
                                 ["population", "policy", "return",
                                  "planning_oracle_return"]].to_dict("records"),
            "pass": bool(ub["oracle_at_least_as_good"].all())},
    }
    mpath = out / "seed_means.csv"
    gvc = gru_return_vs_control(pd.read_csv(mpath)) if mpath.exists() else pd.DataFrame()
    if not gvc.empty:
        test = gvc[gvc["split"] == "test"]
        checks["gru_return_vs_control"] = {
            "populations": gvc.to_dict("records"), "min_share": GRU_SEED_SHARE,
            "note": "issue 15: on every held-out population GRU-PPO's return is at least the "
                    "tuned control's on >= 4 of 5 seeds",
            "pass": bool(len(test) and (test["share"] >= GRU_SEED_SHARE).all())}
    res = {"checks": checks, "all_pass": all(c["pass"] for c in checks.values())}
    atomic_write_text(out / "target.json", json.dumps(res, indent=2, default=float) + "\n")
    return res


#: Issue 15's share of seeds on which GRU-PPO's return must reach the tuned control's.
GRU_SEED_SHARE = 0.8


def gru_return_vs_control(means: pd.DataFrame) -> pd.DataFrame:
    """Per population: on how many seeds GRU-PPO's mean return per user reaches the tuned
    control's (same users), with the per-seed differences (``seed_means.csv`` in)."""
    from covercast.simulators.suite import SUITE

    rows = []
    for pop, g in means.groupby("population", sort=False):
        gru = g[g["policy"] == "gru-ppo"].set_index("seed_index")["return"]
        ctl = g[g["policy"] == "static-tuned"].set_index("seed_index")["return"]
        both = gru.index.intersection(ctl.index)
        if not len(both):
            continue
        diff = (gru[both] - ctl[both]).sort_index()
        rows.append({"population": pop, "split": SUITE[pop].split if pop in SUITE else "?",
                     "seeds": int(len(diff)), "at_least_control": int((diff >= 0).sum()),
                     "share": float((diff >= 0).mean()),
                     "per_seed_difference": [round(float(x), 4) for x in diff]})
    return pd.DataFrame(rows)


def return_decomposition(means: pd.DataFrame, pareto: pd.DataFrame, policy: str = "gru-ppo"
                         ) -> pd.DataFrame:
    """Where ``policy``'s return differs from the tuned control's, per (population, seed):
    ``difference = volume_effect + at_matched_volume``.

    The tuned control's **return frontier** of a seed and population is the line through
    (0 pushes, return 0: no push, no reward) and its schedules tuned at each Pareto volume
    (``pareto.csv``: pushes against return per user), linear between them (a mixture of two
    tuned schedules over users reaches any point on the line). ``volume_effect`` is the
    frontier at the policy's own pushes per user-day less the control's return (what the
    control would lose or gain at the policy's volume); ``at_matched_volume`` is the policy's
    return less the frontier there (what its timing and covers add at that volume).
    ``inside`` is False when the policy pushes more than the largest tuned volume (the
    frontier is then held flat, so the split is not a matched comparison).
    """
    rows = []
    for (pop, seed), g in means.groupby(["population", "seed_index"], sort=False):
        pol = g[g["policy"] == policy]
        ctl = g[g["policy"] == "static-tuned"]
        x, y = _frontier(pareto, pop, seed, "return", origin=True)
        if pol.empty or ctl.empty or not len(x):
            continue
        v, r = float(pol["pushes_per_day"].iloc[0]), float(pol["return"].iloc[0])
        rc = float(ctl["return"].iloc[0])
        ref = float(np.interp(v, x, y))
        rows.append({"population": pop, "seed_index": seed, "policy": policy,
                     "pushes_per_day": v,
                     "control_pushes_per_day": float(ctl["pushes_per_day"].iloc[0]),
                     "return": r, "control_return": rc, "frontier_return": ref,
                     "difference": r - rc, "volume_effect": ref - rc,
                     "at_matched_volume": r - ref, "inside": bool(v <= x[-1] + 1e-9)})
    return pd.DataFrame(rows)


def _decomposition_md(dec: pd.DataFrame) -> list[str]:
    """The report's section on where GRU-PPO's return differs from the control's."""
    if dec.empty:
        return []
    lines = ["\n## Where GRU-PPO's return differs from the tuned control's\n",
             "Return per user, GRU-PPO less the tuned control (2 a day), split into the "
             "**volume effect** (the control's return frontier -- through 0 and its schedules "
             "tuned at each Pareto volume, linear between -- at GRU-PPO's pushes per user-day, "
             "less the control's return) and GRU-PPO's return **at matched volume** (its "
             "return less that frontier point; `return_decomposition`, "
             "`return_decomposition.csv`). Mean over seeds; per seed in brackets; seeds at or "
             "above the frontier counted.\n",
             "| population | GRU-PPO pushes/day | control pushes/day | difference | volume "
             "effect | at matched volume | seeds >= frontier |",
             "|---|---|---|---|---|---|---|"]
    for pop, g in dec.groupby("population", sort=False):
        out = "" if g["inside"].all() else " (some seeds above the largest tuned volume)"
        lines.append(
            f"| {pop} | {g['pushes_per_day'].mean():.2f} | "
            f"{g['control_pushes_per_day'].mean():.2f} | {g['difference'].mean():+.2f} | "
            f"{g['volume_effect'].mean():+.2f} | {g['at_matched_volume'].mean():+.2f} ("
            + ", ".join(f"{x:+.2f}" for x in g["at_matched_volume"]) + f"){out} | "
            f"{int((g['at_matched_volume'] >= 0).sum())}/{len(g)} |")
    return lines


def gru_push_by_hour(out: str | os.PathLike, users: int = 300, days: float = 3.0
                     ) -> pd.DataFrame:
    """Where in the day GRU-PPO pushes on each evaluation population, beside the population's
    activity: each finished cell's evaluated policy (its checkpoint, run greedily as the
    benchmark runs it) on ``users`` users of every evaluation population for ``days`` days
    (the cell's evaluation seed, the benchmark's seen history). Rows: ``population``,
    ``seed_index``, ``hour``, ``pushes`` (greedy push actions per user-day in that hour) and
    ``activity`` (the population's organic session rate in that hour, relative to its daily
    mean; segments weighted). Written to ``gru_push_by_hour.csv``; empty without GRU-PPO."""
    from covercast.agents.gru_ppo import GRUPPOAgent, observed_hours
    from covercast.envs.vector import PopulationVectorEnv
    from covercast.simulators.suite import load_population

    out = Path(out)
    config = SuiteConfig(**json.loads((out / "config.json").read_text()))
    rows: list[dict[str, Any]] = []
    for d in sorted(p for p in (out / "cells").glob("*") if (p / "cell.json").exists()):
        cell = json.loads((d / "cell.json").read_text())
        ckpt = d / "gru_ppo" / "checkpoint"
        if "gru-ppo" not in cell["facts"] or not ckpt.exists():
            continue
        which = "best" if "selected_step" in cell["facts"]["gru-ppo"] else "final"
        agent = GRUPPOAgent.load(ckpt, which=which)
        for pop in config.eval_populations:
            params = load_population(pop)
            env = PopulationVectorEnv(users, params, horizon_days=days,
                                      history_days=config.history_days,
                                      bank=None if config.bank == "procedural" else config.bank)
            obs, _ = env.reset(seed=int(cell["seeds"]["eval"]))
            state, start = None, np.ones(users, dtype=bool)
            pushes = np.zeros(24)
            for _ in range(int(round(days * 24))):
                hours = observed_hours(obs)
                a, state = agent.predict(obs, state, start, deterministic=True)
                np.add.at(pushes, hours, (np.asarray(a) > 0).astype(float))
                start[:] = False
                obs, *_ = env.step(a)
            env.close()
            w = params.segment_weights()
            act = (w / w.sum()) @ params.activity_matrix().reshape(len(w), -1, 24).mean(axis=1)
            act = act / act.mean()
            rows += [{"population": pop, "seed_index": int(cell["index"]), "hour": h,
                      "pushes": float(pushes[h]) / (users * days), "activity": float(act[h])}
                     for h in range(24)]
    df = pd.DataFrame(rows, columns=["population", "seed_index", "hour", "pushes", "activity"])
    atomic_write_csv(df, out / "gru_push_by_hour.csv")
    return df


def _push_by_hour_figure(out: Path, df: pd.DataFrame, cells: list[dict[str, Any]]) -> str | None:
    """``gru_push_by_hour.png``: GRU-PPO's greedy pushes by hour (mean over seeds) against the
    population's activity, with the tuned control's hours; one panel per population."""
    if df.empty:
        return None
    plt = pyplot()

    pops = list(pd.unique(df["population"]))
    cols = min(3, len(pops))
    rows = math.ceil(len(pops) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.2 * rows), squeeze=False)
    ctl_hours = [h for c in cells for h in c["facts"]["control"]["hours"]]
    for ax, pop in zip(axes.flat, pops, strict=False):
        g = df[df["population"] == pop].groupby("hour")[["pushes", "activity"]].mean()
        ax.bar(g.index, g["pushes"], color="tab:blue", alpha=0.8, label="GRU-PPO pushes")
        ax.set_ylabel("greedy pushes per user-day")
        ax2 = ax.twinx()
        ax2.plot(g.index, g["activity"], color="tab:orange", label="activity (x daily mean)")
        ax2.set_ylim(0, max(2.5, float(g["activity"].max()) * 1.1))
        for h in sorted(set(ctl_hours)):
            ax.axvline(h, color="0.3", ls=":", lw=1.0 + 0.5 * ctl_hours.count(h))
        ax.set_title(pop, fontsize=10)
        ax.set_xticks(range(0, 24, 3))
        ax.set_xlabel("hour of day")
    for ax in list(axes.flat)[len(pops):]:
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color="tab:blue", alpha=0.8),
               plt.Line2D([], [], color="tab:orange"),
               plt.Line2D([], [], color="0.3", ls=":")]
    fig.legend(handles, ["GRU-PPO greedy pushes per user-day (mean over seeds)",
                         "population activity by hour (x its daily mean, right axis)",
                         "the tuned control's hours (thicker: more seeds)"],
               loc="lower center", ncol=3, fontsize=9)
    fig.suptitle("Where in the day GRU-PPO pushes, on each population", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return save_figure(fig, out / "gru_push_by_hour.png")


def _constraint_note(summary: pd.DataFrame, cells: list[dict[str, Any]], train: str
                     ) -> list[str]:
    """What GRU-PPO's training constraints allowed, beside what the tuned control did."""
    cons = [c["facts"]["gru-ppo"].get("constraints", {}) for c in cells
            if "gru-ppo" in c["facts"]]
    cons = [c for c in cons if c.get("mode") == "static"]
    if not cons:
        return []
    lo = np.mean([c["min_pushes_per_day"] for c in cons])
    hi = np.mean([c["max_pushes_per_day"] for c in cons])
    opt = [c["max_opt_outs_per_day"] for c in cons if "max_opt_outs_per_day" in c]
    static_opt = [c["static"]["opt_outs_per_day"] for c in cons]
    text = (f"\nGRU-PPO trains under constraints set from the **untuned** static scheduler on "
            f"{train} (PPO-Lagrangian; `covercast.experiments.scheduling.gru_constraints`): "
            f"{lo:.2f}-{hi:.2f} pushes per user-day")
    if opt:
        text += (f" and at most {1e3 * np.mean(opt):.2f} opt-outs per 1,000 user-days (0.9 x "
                 f"its {1e3 * np.mean(static_opt):.2f})")
    ctl = _mean(summary, train, "static-tuned", "opted_out")
    unt = _mean(summary, train, "static", "opted_out")
    if np.isfinite(ctl) and np.isfinite(unt) and unt > 0:
        calibrated = any("push_threshold" in c["facts"]["gru-ppo"] for c in cells
                         if "gru-ppo" in c["facts"])
        text += ((" (the greedy rule is chosen within the same limits)" if calibrated else "")
                 + f". The tuned control is held to none: on {train} it opts out "
                 f"{100 * ctl:.2f} % of users against the untuned scheduler's {100 * unt:.2f} % "
                 f"({ctl / unt:.2f}x), an opt-out level above GRU-PPO's limit (the return "
                 f"prices each opt-out at -5 for every policy alike).")
    return [text + "\n"]


def _gru_runs_md(cells: list[dict[str, Any]]) -> list[str]:
    """The report's table of GRU-PPO's training runs (collapse flags included)."""
    runs = [(c["index"], c["facts"]["gru-ppo"]) for c in cells if "gru-ppo" in c["facts"]]
    if not runs:
        return []
    lines = ["\n## GRU-PPO training runs\n",
             "Collapse: the trainer's detector (`GRUPPOConfig.collapse_patience`): `never-push` "
             "/ `always-push` when the last rollouts (or, at the end, the greedy actions) push "
             "less than 0.05 a day / in more than 90 % of the slots; `none` otherwise.\n",
             "Greedy rule: the decoding chosen on the validation users "
             "(`GRUPPOConfig.push_thresholds`): `argmax` the most likely action, `p > t` push "
             "when the probability of pushing exceeds t; validation return of the selected "
             "policy with the plain most likely action and with the chosen rule.\n",
             "| seed | steps | selected step | collapse | iterations flagged | pushes/day "
             "(last rollout, sampled) | greedy pushes/day (last rollout) | greedy rule | "
             "validation return (argmax / rule) | minutes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i, f in runs:
        t = f.get("push_threshold")
        rule = "not calibrated" if "push_threshold" not in f else (
            "argmax" if t is None else f"p > {t:g}")
        cal = f.get("calibrated_validation_return")
        val = f.get("selected_validation_return")
        lines.append(f"| {i} | {f.get('steps', '')} | {f.get('selected_step', '')} | "
                     f"{f.get('collapse', 'not recorded')} | "
                     f"{f.get('collapsed_iterations', '')} | "
                     f"{f.get('final_pushes_per_day', math.nan):.2f} | "
                     f"{f.get('final_greedy_pushes_per_day', math.nan):.2f} | {rule} | "
                     + (f"{val:.3f} / {cal:.3f}" if val is not None and cal is not None else
                        f"{val:.3f}" if val is not None else "") + " | "
                     f"{f.get('seconds', math.nan) / 60:.1f} |")
    return lines


def _ranking(g: pd.DataFrame) -> list[str]:
    """Policies other than the hidden-state references, best return first."""
    dep = g[~g["policy"].str.contains("oracle")].sort_values("return", ascending=False)
    return list(dep["policy"])


def _sensitivity_md(sens: pd.DataFrame) -> list[str]:
    """The ranking under each change beside the unchanged population's (same users, seed 0).

    A pair of policies counts as *flipped* only when their order reverses and the returns
    differ by more than two standard errors in both the unchanged and the changed case
    (policies within noise of each other are ties, not flips).
    """
    if sens.empty:
        return ["(not run)"]
    ref_g = sens[sens["parameter"] == "none"]
    ref = _ranking(ref_g)
    r0 = ref_g.set_index("policy")

    def clear(g: pd.DataFrame, a: str, b: str) -> bool:
        x = g.loc[a, "return"] - g.loc[b, "return"]
        return abs(x) > 2 * math.hypot(g.loc[a, "return_se"], g.loc[b, "return_se"])

    lines = ["| parameter | change | value | ranking by return (best first) | clear flips |",
             "|---|---|---|---|---|"]
    for (param, change), g in sens.groupby(["parameter", "change"], sort=False):
        order = _ranking(g)
        gi = g.set_index("policy")
        flips = [f"{a} / {b}" for i, a in enumerate(ref) for b in ref[i + 1:]
                 if a in order and b in order and order.index(a) > order.index(b)
                 and clear(r0, a, b) and clear(gi, a, b)]
        rank = " > ".join(f"{p} ({gi.loc[p, 'return']:.2f})" for p in order)
        value = "" if param == "none" else f"{g['value'].iloc[0]:.3g}"
        lines.append(f"| {param} | {change} | {value} | {rank} | "
                     f"{', '.join(flips) if flips else 'none'} |")
    return lines


def _figures(out: Path, config: dict[str, Any]) -> list[str]:
    plt = pyplot()

    summary = pd.read_csv(out / "summary.csv")
    pareto = pd.read_csv(out / "pareto.csv")
    pops = list(pd.unique(summary["population"]))
    n = len(pops)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, pop in zip(axes.flat, pops, strict=False):
        fr = pareto[pareto["population"] == pop].groupby("volume")[
            ["pushes_per_day", "opens_per_day"]].mean()
        ax.plot(fr["pushes_per_day"], fr["opens_per_day"], "-o", color="0.4", ms=4,
                label=f"tuned static, {int(fr.index.min())}-{int(fr.index.max())}/day")
        for k, pol in enumerate([p for p in SUITE_POLICIES if p != "static-tuned"]):
            x = _mean(summary, pop, pol, "pushes_per_day")
            y = _mean(summary, pop, pol, "opens_per_day")
            if np.isfinite(x):
                ax.plot([x], [y], marker="o*sDP^v"[k % 8], ls="none", color=f"C{k}", ms=7,
                        label=pol)
        ax.set_title(pop, fontsize=9)
        ax.set_xlabel("pushes per user-day")
        ax.set_ylabel("opens per user-day")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Opens vs push volume (mean over seeds): the tuned control's frontier and "
                 "every policy", fontsize=10)
    fig.tight_layout()
    names = [save_figure(fig, out / "pareto.png")]
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * n + 4), 4))
    pols = [p for p in SUITE_POLICIES if p in set(summary["policy"])]
    width = 0.8 / len(pols)
    for k, pol in enumerate(pols):
        ys, errs = [], []
        for pop in pops:
            r = summary[(summary["population"] == pop) & (summary["policy"] == pol)
                        & (summary["metric"] == "opens_per_day")]
            ys.append(float(r["mean"].iloc[0]) if len(r) else np.nan)
            errs.append(float(r["ci_high"].iloc[0] - r["mean"].iloc[0]) if len(r) else 0.0)
        ax.bar(np.arange(n) + (k - (len(pols) - 1) / 2) * width, ys, width,
               yerr=np.nan_to_num(errs), capsize=1.5, label=pol, color=f"C{k}")
    train = _train_names()
    ax.set_xticks(np.arange(n), [p + ("\n(train)" if p in train else "\n(held out)")
                                 for p in pops], fontsize=8)
    ax.set_ylabel("opens per user-day")
    ax.set_title("Opens per user-day by population (mean over seeds, 95 % CI)", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    names.append(save_figure(fig, out / "opens_by_population.png"))
    return names


def _train_names() -> list[str]:
    from covercast.simulators.suite import population_names

    return population_names("train")


def write_suite_report(out: str | os.PathLike) -> Path:
    """``benchmark.md`` (and ``target.json``, the figures) from the saved results."""
    from covercast.simulators.suite import SUITE

    out = Path(out)
    config = json.loads((out / "config.json").read_text())
    summary = pd.read_csv(out / "summary.csv")
    comp = pd.read_csv(out / "vs_control.csv")
    sens_path = out / "sensitivity.csv"
    sens = pd.read_csv(sens_path) if sens_path.stat().st_size > 1 else pd.DataFrame()
    target = target_check_suite(out, summary, config)
    fpath = out / "frontier.csv"
    frontier = (pd.read_csv(fpath) if fpath.exists() and fpath.stat().st_size > 1
                else pd.DataFrame())
    figs = _figures(out, config)
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*/cell.json"))]
    train = config["train_population"]
    lines = ["# Scheduling benchmark on the population suite\n",
             f"{config['seeds']} seeds (master seed {config['seed']}) x "
             f"{config['eval_users']} users x {config['horizon_days']:g}-day episodes per "
             f"policy and population (population vector env, the same users for every policy "
             f"of a seed), existing users with {config['history_days']:g} days of seen "
             f"sessions. Learners train and the control is tuned on **{train}** only; the "
             f"populations marked *held out* were seen by no training or tuning. Values: mean "
             f"over seeds ± half-width of the 95 % t-interval. Per user-day figures are over "
             f"the whole window (an opted-out user adds zero after leaving). Lifts and p "
             f"against the **tuned control** (`static-tuned`, Welch over seed means, Holm "
             f"within the metric; user-level paired tests in `paired_vs_control.csv`). "
             f"Covers: **{config.get('bank', 'procedural')}** bank"
             f"{'' if config.get('bank', 'procedural') == 'procedural' else ' (every environment: training, tuning, evaluation; `--bank`)'}. "
             f"Produced by `covercast experiment scheduling --suite` "
             f"(`covercast.experiments.suite_benchmark`).\n",
             "## Policies\n"]
    labels = dict(POLICY_LABELS)
    gru = [c["facts"]["gru-ppo"] for c in cells if "gru-ppo" in c["facts"]]
    if gru and not any("push_threshold" in f for f in gru):     # a run before the calibration
        labels["gru-ppo"] = ("GRU-PPO (trained on the training population, best validated, "
                             "greedy: its most likely action)")
    lines += [f"- `{k}`: {v}" for k, v in labels.items() if k in config["policies"]]
    ctl = [c["facts"]["control"] for c in cells]
    lines += ["", "Tuned control per seed (grid search on "
              f"{config['tune_users']} training users per candidate): " + "; ".join(
                  f"seed {c['index']}: {c['facts']['control']['hours']} style "
                  f"{c['facts']['control']['style']}" for c in cells) + "." if ctl else ""]
    lines.append("\n## Targets\n")
    t = target["checks"]
    ol = t["opens_lift_in_band"]
    lines.append(f"- Best deployable policy at matched volume on {train}: "
                 f"**{ol['best_deployable']}**, opens per user-day "
                 f"{100 * ol['lift']:+.1f} % over the tuned control (band "
                 f"+{100 * OPENS_LIFT_BAND[0]:.0f} % ... +{100 * OPENS_LIFT_BAND[1]:.0f} %): "
                 f"{'pass' if ol['pass'] else 'FAIL'}. Every deployable policy: " + ", ".join(
                     f"{k} {100 * v['lift']:+.1f} % at {v['pushes_per_day']:.2f} pushes/day"
                     f"{'' if v['matched_volume'] else ' (more volume than the control)'}"
                     for k, v in ol["policies"].items()) + ".")
    fl = t.get("opens_lift_vs_frontier_in_band")
    if fl is not None:
        lines.append(
            f"- The same against the tuned control's **frontier at each policy's own volume** "
            f"(the Pareto curve of the control tuned at "
            f"{', '.join(str(v) for v in sorted(config['pareto_volumes']))} pushes a day, "
            f"interpolated; this "
            f"reading was added after the first seed's results, the rule above was fixed "
            f"before the run): best **{fl['best_deployable']}**, "
            f"{100 * fl['lift']:+.1f} % (band: {'pass' if fl['pass'] else 'FAIL'}). Every "
            "deployable policy (mean over seeds; per seed): " + "; ".join(
                f"{k} {100 * v['lift']:+.1f} % (" + ", ".join(
                    f"{100 * x:+.0f}" for x in v["per_seed"]) + ")"
                + ("" if v["inside"] else ", outside the frontier's span")
                for k, v in fl["policies"].items()) + ".")
    ub = t["upper_reference"]
    lines.append(f"- The planning oracle's return is at least every policy's on every "
                 f"population: {'pass' if ub['pass'] else 'FAIL'}" + (
                     "" if ub["pass"] else " -- violations: " + "; ".join(
                         f"{v['population']} {v['policy']} {v['return']:.3f} > "
                         f"{v['planning_oracle_return']:.3f}" for v in ub["violations"])) + ".")
    gv = t.get("gru_return_vs_control")
    if gv is not None:
        lines.append(
            "- GRU-PPO's return at least the tuned control's on >= 4 of 5 seeds on every "
            f"held-out population (issue 15): {'pass' if gv['pass'] else 'FAIL'}. Per "
            "population, seeds at or above the control and the per-seed differences in return "
            "per user: " + "; ".join(
                f"{r['population']} ({r['split']}) {r['at_least_control']}/{r['seeds']} ("
                + ", ".join(f"{x:+.2f}" for x in r["per_seed_difference"]) + ")"
                for r in gv["populations"]) + ".")
    lines += _gru_runs_md(cells)
    dpath = out / "return_decomposition.csv"
    if dpath.exists() and dpath.stat().st_size > 1:
        lines += _decomposition_md(pd.read_csv(dpath))
    lines += _constraint_note(summary, cells, train)
    hpath = out / "gru_push_by_hour.csv"
    if hpath.exists() and hpath.stat().st_size > 1:
        fig = _push_by_hour_figure(out, pd.read_csv(hpath), cells)
        if fig:
            lines += ["\nWhere in the day GRU-PPO pushes (greedily, its evaluated policy, 300 "
                      "users x 3 days per population and seed; `gru_push_by_hour.csv`), against "
                      "each population's activity by hour and the tuned control's hours:\n",
                      f"![GRU-PPO's pushes by hour]({fig})"]
    for pop in pd.unique(summary["population"]):
        split = SUITE[pop].split if pop in SUITE else "?"
        held = " (held out)" if split == "test" else (" (training population)" if pop == train
                                                     else f" ({split} split)")
        lines += [f"\n## {pop}{held}\n", _table(summary, comp, pop, frontier)]
    lines += ["\n## Sensitivity (ranking of the deployable policies and controls by return)\n",
              f"Seed 0, {config['sensitivity_users']} users, {train} with one parameter "
              "moved at a time (GRU-PPO as trained on the unchanged population; the "
              "hidden-state references left out of the ranking). A clear flip: two policies "
              "change order while more than 2 SE apart in both cases.\n"]
    lines += _sensitivity_md(sens)
    lines += ["\n## Figures\n"] + [f"![{f}]({f})" for f in figs]
    secs = [c["seconds"] for c in cells]
    lines.append(f"\nCells: {len(cells)}, {np.mean(secs):.0f} s each on average.")
    path = out / "benchmark.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


# ================================================================================== banks
#: Metrics of the bank comparison (``bank_comparison``).
BANK_METRICS: tuple[tuple[str, str, float, str], ...] = (
    ("return", "return / user", 1.0, ""), ("opens_per_day", "opens / user-day", 1.0, ""),
    ("pushes_per_day", "pushes / user-day", 1.0, ""), ("ctr", "CTR", 100.0, " %"),
    ("opted_out", "opted out", 100.0, " %"))


def run_suite_banks(out_dir: str | os.PathLike, config: SuiteConfig, banks: list[str], *,
                    backend: str = "auto", address: str | None = None,
                    progress: bool = True) -> Path:
    """The suite benchmark once per bank (``config`` with ``bank`` set; each run in
    ``out/bank_NAME``, resumable), then :func:`bank_comparison` into ``out/banks.md``."""
    from covercast.generators.banks import check_bank_spec

    if len(set(banks)) != len(banks) or not banks:
        raise ValueError(f"Give distinct banks, got {banks!r}.")
    for b in banks:
        check_bank_spec(b)
    out = Path(out_dir)
    runs = {}
    for b in banks:
        runs[b] = out / f"bank_{Path(b).stem if b.endswith('.npz') else b}"
        run_suite(runs[b], dataclasses.replace(config, bank=b), backend=backend,
                  address=address, progress=progress)
    return bank_comparison(runs, out)


def bank_comparison(runs: dict[str, str | os.PathLike], out: str | os.PathLike) -> Path:
    """``banks.md`` (and ``banks.csv``): every policy of suite runs that differ only in their
    bank, side by side per population -- mean over seeds ± 95 % t half-width -- with each
    bank's opens per user-day relative to the first bank's (mean over seeds of the per-seed
    ratio: the runs share their seeds, so the users are the same) and GRU-PPO's return
    against the tuned control within each run."""
    from covercast.experiments.stats import _mean_ci

    out = Path(out)
    names = list(runs)
    configs = {b: json.loads((Path(p) / "config.json").read_text()) for b, p in runs.items()}
    base = {k: v for k, v in configs[names[0]].items() if k not in ("bank", "workers")}
    for b, c in configs.items():
        diff = sorted(k for k in set(base) | set(c) if k not in ("bank", "workers")
                      and base.get(k) != c.get(k))
        if diff:
            raise ValueError(f"The runs of {names[0]!r} and {b!r} differ in more than the bank "
                             f"({diff}); compare runs made with the same settings.")
    means = pd.concat([pd.read_csv(Path(p) / "seed_means.csv").assign(bank=b)
                       for b, p in runs.items()], ignore_index=True)
    rows = []
    for (pop, pol, b), g in means.groupby(["population", "policy", "bank"], sort=False):
        row: dict[str, Any] = {"population": pop, "policy": pol, "bank": b}
        for m, _, f, _ in BANK_METRICS:
            x = g[m].to_numpy(float) * f
            ci = _mean_ci(x[np.isfinite(x)], 0.95)      # CTR: a seed without pushes has none
            row[m], row[f"{m}_half"] = ci["mean"], ci["ci_high"] - ci["mean"]
        ref = means[(means["population"] == pop) & (means["policy"] == pol)
                    & (means["bank"] == names[0])].set_index("seed_index")["opens_per_day"]
        den = ref.reindex(g["seed_index"]).to_numpy(float)
        num = g["opens_per_day"].to_numpy(float)
        ratio = np.divide(num, den, out=np.full(len(num), np.nan), where=den > 0)
        ci = _mean_ci(ratio[np.isfinite(ratio)], 0.95)  # seeds where the first bank opened some
        row["opens_vs_first"], row["opens_vs_first_half"] = ci["mean"], ci["ci_high"] - ci["mean"]
        ctl = means[(means["population"] == pop) & (means["policy"] == "static-tuned")
                    & (means["bank"] == b)].set_index("seed_index")["return"]
        d = g.set_index("seed_index")["return"] - ctl.reindex(g["seed_index"]).values
        row["return_vs_control"] = float(d.mean())
        row["seeds_at_or_above_control"] = f"{int((d >= 0).sum())}/{len(d)}"
        rows.append(row)
    table = pd.DataFrame(rows)
    atomic_write_csv(table, out / "banks.csv")
    c0 = configs[names[0]]

    def cell(r: pd.Series, m: str, unit: str) -> str:
        h = r[f"{m}_half"]
        if not np.isfinite(r[m]):
            return "n/a"
        return f"{r[m]:.3g}{unit}" + ("" if not np.isfinite(h) else f" ± {h:.2g}")

    lines = [f"# Scheduling benchmark with generated covers: {', '.join(names)}\n",
             f"The suite benchmark (`covercast.experiments.suite_benchmark`) run once per bank "
             f"with the same settings: {c0['seeds']} seeds (master seed {c0['seed']}), "
             f"{c0['eval_users']} users x {c0['horizon_days']:g}-day episodes per policy and "
             f"population (existing users, {c0['history_days']:g} days seen), GRU-PPO "
             f"{c0['gru_steps']:,} env-steps, the control tuned on {c0['tune_users']} users per "
             f"candidate at {c0['pushes_per_day']} pushes a day; policies "
             f"{', '.join(c0['policies'])}; populations {', '.join(c0['eval_populations'])} "
             f"(training: {c0['train_population']}; the others held out). In each run every "
             f"environment -- GRU-PPO's training and validation, the control's tuning, the "
             f"evaluation -- pushes covers from its bank (`--bank`; learned banks by name: 24 "
             f"covers per style from the committed checkpoint). The seeds are the same in every "
             f"run, so each seed's users are the same users under every bank. Values: mean over "
             f"seeds ± 95 % t half-width (CTR over the seeds with pushes). 'opens vs "
             f"{names[0]}': the policy's opens per user-day over its opens with the {names[0]} "
             f"bank (per seed, then the mean over the seeds where the {names[0]} bank had "
             f"opens). "
             f"'GRU-PPO - control': return per user over the tuned control's in the same run. "
             f"Runs: " + ", ".join(f"`{p}`" for p in runs.values()) + ".\n"]
    from covercast.covers.attributes import DEFAULT_STYLES

    picks = []
    for b, p in runs.items():
        cells = [json.loads(c.read_text()) for c in sorted((Path(p) / "cells").glob("*/cell.json"))]
        picks.append(f"{b}: " + ", ".join(
            f"{c['facts']['control']['hours']} {DEFAULT_STYLES[c['facts']['control']['style']]}"
            for c in cells if "control" in c.get("facts", {})))
    lines.append("Tuned control per seed (hours UTC, style), by bank -- " + "; ".join(picks)
                 + ".\n")
    for pop in dict.fromkeys(table["population"]):
        held = "" if pop == c0["train_population"] else " (held out)"
        lines.append(f"\n## {pop}{held}\n")
        t = table[table["population"] == pop]
        rows_md = []
        for pol in dict.fromkeys(t["policy"]):
            for _, r in t[t["policy"] == pol].iterrows():
                rows_md.append({"policy": pol, "bank": r["bank"],
                                **{lab: cell(r, m, unit) for m, lab, _, unit in BANK_METRICS},
                                f"opens vs {names[0]}": cell(r, "opens_vs_first", ""),
                                "return - control": f"{r['return_vs_control']:+.3f}",
                                "seeds >= control": r["seeds_at_or_above_control"]})
        lines.append(md_frame(pd.DataFrame(rows_md)))
    path = out / "banks.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
