"""``covercast experiment hpsearch``: one hyperparameter-search budget for every learner
(issue 15, deliverable 2).

GRU-PPO's settings were tuned by hand over many runs; SB3 PPO (an MLP over a stacked history of
observations) and sb3-contrib RecurrentPPO (LSTM) ran with GRU-PPO's PPO settings. This module
gives the three learners the **same documented search**: the same number of trials, the same
env-steps per trial, the same training population, the same score.

Protocol
--------
* **Learners** (:data:`~covercast.experiments.scheduling.LEARNERS`): ``gru-ppo``
  (:class:`~covercast.agents.gru_ppo.GRUPPOTrainer`), ``ppo`` (stable-baselines3 PPO,
  ``MlpPolicy`` on ``n_stack`` stacked observations) and ``recurrent-ppo`` (sb3-contrib
  ``MlpLstmPolicy``), trained by the scheduling benchmark's own code paths
  (:func:`~covercast.experiments.scheduling._gru_config`,
  :func:`~covercast.agents.sb3.train_sb3`) on the population vector env
  (``covercast/PopulationVector-v0``, ``num_envs`` = 64 users, ``train_horizon_days`` = 14-day
  episodes, ``history_days`` = 14 days of seen sessions, one torch thread).
* **Training population only.** ``population`` (default ``calibrated-v1``) must be a suite
  population of the ``train`` split (``calibrated-v1``, ``flat-activity-v1``,
  ``weak-taste-v1``); a test population is refused: the suite benchmark's held-out
  populations are never seen by the search.
* **The reward alone.** Every learner trains unconstrained (no PPO-Lagrangian push or opt-out
  limits, which SB3 has no counterpart of), so the search compares like with like; the
  benchmark's GRU-PPO trains constrained, and its constraint settings are not searched here.
* **Equal budget.** ``trials`` trials per learner (default 8), each of ``steps_per_trial``
  env-steps (default 300,000). Both trainers stop after the first whole rollout that reaches
  the budget (GRU-PPO: ``ceil(steps / rollout)`` iterations; SB3: ``learn`` until
  ``num_timesteps >= steps``), so a trial may run up to one rollout (``rollout steps x
  num_envs``) more; the env-steps actually run are recorded. CPU time is not equalised: the
  report gives each learner's seconds and env-steps/s.
* **Score.** The trained policy's final weights (every learner alike: GRU-PPO's best-validated
  snapshot selection, ``GRUPPOConfig.eval_every``, is off, as SB3 has none here) are run
  **greedily** (their most likely action, as the benchmark evaluates learners) on ``val_users``
  validation users of the *training* population, one ``horizon_days`` = 14-day episode each
  with ``history_days`` of seen sessions (the suite benchmark's evaluation settings, through
  its :func:`~covercast.experiments.suite_benchmark._env_kwargs`, and
  :func:`~covercast.agents.evaluate.evaluate_vector`). The score is their mean return.
  Every trial of every learner meets the same validation users (common random numbers: the
  scores are paired).
* **Seeds.** Everything comes from ``np.random.SeedSequence(seed)`` through fixed spawn keys
  (``SeedSequence(seed, spawn_key=key)`` is ``SeedSequence(seed).spawn(..)[key[0]].spawn(..)
  [key[1]]...``), never from a global RNG: key ``(0, l, i)`` draws trial ``i``'s settings of
  learner ``l`` (its index in ``LEARNERS``), so adding trials or learners never changes the
  settings of the others; ``(1,)`` is the training seed (the same for every trial and learner,
  so that trials differ by their settings); ``(2,)`` the validation users, a branch that
  neither training (GRU-PPO's own validation users are a branch of the training seed) nor the
  suite benchmark's evaluation (``SeedSequence([seed, i])``) uses.
* **Search.** Trial 0 of every learner is its **current default** (the settings the scheduling
  benchmark trains it with), so the report shows whether the search beat it; trials 1..N-1
  are a seeded random search over :data:`SHARED_SPACE` (the same knobs and ranges for every
  learner) and the learner's entry of :data:`LEARNER_SPACE`.
* **Confirmation.** Every trial shares one training seed, so the best trial's score mixes its
  settings with that seed's luck (the winner's curse of a search). After the search, each
  learner's chosen settings and its default are trained again with ``confirm_seeds`` (default
  5) fresh training seeds (branches ``(3, k)``, the same for every learner and settings) and
  scored on the same validation users; the report gives their means with 95 % t-intervals,
  the per-seed values and the paired difference chosen - default. Those are the figures to
  quote.
* **The rollout length** is the one PPO knob whose range differs, because it means different
  things: GRU-PPO's rollouts start from a fresh reset of the users every iteration
  (``GRUPPOTrainer._rollout``), so a rollout shorter than an episode would never show it the
  days it is scored on; its rollouts are 1 or 2 whole episodes (``rollout_episodes``). SB3's
  rollouts continue the running episodes, so any length sees whole episodes; theirs are 64 to
  512 steps (``num_steps``, SB3's ``n_steps``).

Execution and outputs
---------------------
Trials are independent and may run in ``workers`` processes
(:func:`~covercast.experiments.scheduling._run_tasks`); a trial's result does not depend on the
number of workers or on the order (its seeds are its own; each trial sets its torch seeds).
Each finished trial is written atomically to ``out/trials/<learner>-<i>.json`` (its settings,
results, learning curve and a hash of the search's identity); a rerun skips finished trials.
The identity is the config without ``trials``, ``learners`` and ``workers`` plus the search
spaces: a rerun with another identity into the same folder is refused, and ``trials`` may be
raised (or learners added) on a rerun to extend the search. ``out`` then holds
``search.json`` (the config), ``trials.csv`` (one row per trial), ``confirm/`` and
``confirm.csv`` (the confirmation runs, written and skipped on a rerun as trials are),
``chosen.json`` (the best settings per learner, with the ``GRUPPOConfig`` fields and
``train_sb3`` arguments that apply them, and their confirmation figures), ``report.md`` and
``learning_curves.png``.

Expected time of the default: about 40 minutes on 2 CPU cores with one worker (``quick``: about
10 s); the measurement is in ``docs/results/notes/hpsearch.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
import warnings
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
from covercast.experiments.scheduling import LEARNERS

__all__ = ["SHARED_SPACE", "LEARNER_SPACE", "HPSearchConfig", "default_settings",
           "sample_settings", "learner_arguments", "run_trial", "run_hpsearch",
           "write_hpsearch_report", "load_sb3_settings", "THROUGHPUT_RATIO_TARGET"]

#: Knobs searched for every learner, with the same ranges: ``("log-uniform", low, high)``
#: (rounded to 3 significant digits) or ``("choice", values)``.
SHARED_SPACE: dict[str, tuple[Any, ...]] = {
    "learning_rate": ("log-uniform", 1e-4, 3e-3),
    "ent_coef": ("log-uniform", 1e-3, 3e-2),
    "gamma": ("choice", (0.99, 0.995, 0.999)),
    "gae_lambda": ("choice", (0.9, 0.95, 0.98)),
    "update_epochs": ("choice", (2, 4, 8)),
}
#: Knobs of one learner: its rollout length (see the module docstring) and its memory.
LEARNER_SPACE: dict[str, dict[str, tuple[Any, ...]]] = {
    "gru-ppo": {"rollout_episodes": ("choice", (1, 2)),
                "hidden_size": ("choice", (32, 64, 128))},
    "ppo": {"num_steps": ("choice", (64, 128, 256, 512)),
            "n_stack": ("choice", (1, 2, 4, 8, 16))},
    "recurrent-ppo": {"num_steps": ("choice", (64, 128, 256, 512)),
                      "lstm_hidden_size": ("choice", (32, 64, 128, 256)),
                      "lstm_critic": ("choice", ("separate", "shared"))},
}
#: SB3's rollout length when ``GRUPPOConfig.num_steps`` is None (:func:`train_sb3`'s default).
SB3_DEFAULT_N_STEPS = 128
#: :func:`train_sb3`'s default history length for ``ppo``.
SB3_DEFAULT_N_STACK = 4
#: sb3-contrib's ``MlpLstmPolicy`` defaults: 256 LSTM units, a separate LSTM for the critic.
LSTM_DEFAULTS = {"lstm_hidden_size": 256, "lstm_critic": "separate"}
#: The issue's throughput target: GRU-PPO's env-steps/s at least this many times
#: RecurrentPPO's in the same run.
THROUGHPUT_RATIO_TARGET = 10.0
#: A learning curve is *flat* when the mean of its last quarter is less than this (return per
#: user) above its first point.
FLAT_TOLERANCE = 0.1
#: Config fields that may change between runs into the same folder.
_MUTABLE = ("trials", "learners", "workers", "rank_by", "confirm_seeds")
#: How trials may be ranked (``HPSearchConfig.rank_by``) and the trial column each reads.
RANK_COLUMNS = {"greedy": "score", "sampled": "sampled_score"}
#: Seed branches (spawn keys' first element).
_SETTINGS, _TRAIN, _VALIDATION, _CONFIRM = 0, 1, 2, 3


# ================================================================================== config
@dataclass
class HPSearchConfig:
    """Settings of a hyperparameter search (saved as ``search.json``)."""

    learners: list[str] = field(default_factory=lambda: list(LEARNERS))
    """Learners searched (a subset of ``LEARNERS``)."""
    trials: int = 8
    """Trials per learner; trial 0 is the learner's default settings."""
    steps_per_trial: int = 300_000
    """Training env-steps of every trial (all users together)."""
    seed: int = 0
    """Master seed of the search (settings, training seed, validation users)."""
    population: str = "calibrated-v1"
    """Training population: a suite population of the ``train`` split."""
    num_envs: int = 64
    """Users per rollout (the benchmark's)."""
    train_horizon_days: float = 14.0
    """Days per training episode (the benchmark's)."""
    horizon_days: float = 14.0
    """Days per validation episode (the suite benchmark's evaluation horizon)."""
    history_days: float = 14.0
    """Days of organic sessions seen before each episode, training and validation alike."""
    val_users: int = 1000
    """Validation users the score is the mean return over."""
    workers: int = 1
    """Trials run at once (processes)."""
    quick: bool = False
    """Tiny sizes, a seconds-long smoke run (see :meth:`quick_config`)."""
    rank_by: str = "sampled"
    """Which validation return ranks the trials: ``"sampled"`` (the trained policy acting by
    sampling, as it trained) or ``"greedy"`` (its most likely actions, as the benchmark
    evaluates the learners). Both are measured for every trial; the ranking is applied when
    the report is written (not part of the search's identity). Sampled is the default
    because at a search's budget the greedy policies of every learner commonly never push:
    in the first run (8 x 300,000 steps) every RecurrentPPO trial's greedy return was 0 --
    a tie that ranks nothing."""
    confirm_seeds: int = 5
    """After the search, each learner's chosen settings and its default (trial 0) are trained
    again with this many fresh training seeds and scored on the same validation users, so the
    figures the report gives for them are over several seeds, not the one seed every trial
    shares (0: no confirmation). Not part of the search's identity: it may be raised on a
    rerun, and finished confirmation runs are kept."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        from covercast.envs.base import check_history_days
        from covercast.simulators.suite import SUITE, population_names, resolve_name

        check_fields(self, at_least=(("trials", 1), ("steps_per_trial", 1), ("seed", 0),
                                     ("num_envs", 2), ("val_users", 2), ("workers", 1),
                                     ("confirm_seeds", 0)))
        if (not isinstance(self.learners, (list, tuple)) or not self.learners
                or any(x not in LEARNERS for x in self.learners)
                or len(set(self.learners)) != len(self.learners)):
            raise ValueError(f"`learners` must be a non-empty list of distinct names from "
                             f"{list(LEARNERS)}, got {self.learners!r}.")
        if not isinstance(self.population, str):
            raise ValueError(f"`population` must be a suite name, got {self.population!r}.")
        train = population_names("train")
        try:
            name = resolve_name(self.population)
        except ValueError:
            raise ValueError(f"`population` must be a training population of the suite "
                             f"({', '.join(train)}), got {self.population!r}.") from None
        if name not in train:
            raise ValueError(f"`population` must be a training population of the suite "
                             f"({', '.join(train)}): {name!r} is in the {SUITE[name].split!r} "
                             "split, which the search must never see.")
        for fname in ("train_horizon_days", "horizon_days"):
            v = getattr(self, fname)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v <= 0 or abs(v * 24 - round(v * 24)) > 1e-9:
                raise ValueError(f"`{fname}` must be a whole number of hours in days (> 0), "
                                 f"got {v!r}.")
        check_history_days(self.history_days)
        if self.rank_by not in RANK_COLUMNS:
            raise ValueError(f"`rank_by` must be one of {list(RANK_COLUMNS)}, got "
                             f"{self.rank_by!r}.")

    @classmethod
    def quick_config(cls, **overrides: Any) -> HPSearchConfig:
        """A seconds-long smoke run: 2 trials x 2,048 steps of 8 users x 1-day episodes,
        scored on 32 users x 1 day, confirmed on 2 seeds."""
        kw: dict[str, Any] = dict(trials=2, steps_per_trial=2048, num_envs=8,
                                  train_horizon_days=1.0, horizon_days=1.0, history_days=1.0,
                                  val_users=32, quick=True, confirm_seeds=2)
        kw.update(overrides)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HPSearchConfig:
        """The validated config of ``d`` (``search.json``); unknown keys are refused."""
        extra = set(d).difference(f.name for f in dataclasses.fields(cls))
        if extra:
            raise ValueError(f"Unknown HPSearchConfig fields {sorted(extra)}.")
        return cls(**d)._validated()

    def _validated(self) -> HPSearchConfig:
        self.validate()
        return self

    def identity(self) -> dict[str, Any]:
        """What the trials' results depend on: the config but ``trials``, ``learners`` and
        ``workers``, with the search spaces."""
        d = {k: v for k, v in self.to_dict().items() if k not in _MUTABLE}
        return {**d, "shared_space": _jsonable(SHARED_SPACE),
                "learner_space": _jsonable(LEARNER_SPACE)}

    def digest(self) -> str:
        """A short hash of :meth:`identity`."""
        text = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x))


def _seed(config: HPSearchConfig, *key: int) -> np.random.SeedSequence:
    """The search's seed branch ``key`` (see the module docstring)."""
    return np.random.SeedSequence(config.seed, spawn_key=tuple(int(k) for k in key))


def search_seeds(config: HPSearchConfig) -> dict[str, int]:
    """``{"train", "validation"}``: the training seed of every trial and the validation
    users' seed."""
    train = int(_seed(config, _TRAIN).generate_state(1)[0]) % 2**31
    return {"train": train, "validation": int(_seed(config, _VALIDATION).generate_state(1)[0])}


def confirm_train_seeds(config: HPSearchConfig) -> list[int]:
    """The training seeds of the confirmation runs: ``confirm_seeds`` branches ``(3, k)`` of
    the search's seed, the same for every learner and settings (the runs are paired by seed),
    none of them the trials' training seed."""
    return [_confirm_seed(config, k) for k in range(config.confirm_seeds)]


def _confirm_seed(config: HPSearchConfig, k: int) -> int:
    return int(_seed(config, _CONFIRM, k).generate_state(1)[0]) % 2**31


# ================================================================================== settings
def default_settings(learner: str) -> dict[str, Any]:
    """The settings the scheduling benchmark trains ``learner`` with (trial 0)."""
    from covercast.agents.gru_ppo import GRUPPOConfig

    _check_learner(learner)
    d = GRUPPOConfig()
    out = {k: getattr(d, k) for k in SHARED_SPACE}
    if learner == "gru-ppo":
        out.update(rollout_episodes=1, hidden_size=d.hidden_size)
    else:
        out["num_steps"] = SB3_DEFAULT_N_STEPS
        out.update({"n_stack": SB3_DEFAULT_N_STACK} if learner == "ppo" else LSTM_DEFAULTS)
    return out


def _draw(spec: tuple[Any, ...], rng: np.random.Generator) -> Any:
    if spec[0] == "log-uniform":
        return float(f"{math.exp(rng.uniform(math.log(spec[1]), math.log(spec[2]))):.3g}")
    values = spec[1]
    v = values[int(rng.integers(len(values)))]
    return v.item() if isinstance(v, np.generic) else v


def sample_settings(config: HPSearchConfig, learner: str, trial: int) -> dict[str, Any]:
    """Trial ``trial``'s settings of ``learner``: its defaults for trial 0, else a draw from
    the search space with the trial's own seed branch (independent of ``config.trials``)."""
    _check_learner(learner)
    if trial == 0:
        return default_settings(learner)
    rng = np.random.default_rng(_seed(config, _SETTINGS, LEARNERS.index(learner), trial))
    space = {**SHARED_SPACE, **LEARNER_SPACE[learner]}
    return {k: _draw(spec, rng) for k, spec in space.items()}


def _check_learner(learner: str) -> None:
    if learner not in LEARNERS:
        raise ValueError(f"`learner` must be one of {list(LEARNERS)}, got {learner!r}.")


def episode_steps(config: HPSearchConfig) -> int:
    """Decision slots of a training episode (hourly slots)."""
    return int(round(config.train_horizon_days * 24))


def learner_arguments(learner: str, settings: dict[str, Any], episode_len: int
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(GRUPPOConfig fields, train_sb3 keyword arguments)`` that apply ``settings``."""
    fields = {k: settings[k] for k in SHARED_SPACE}
    extra: dict[str, Any] = {}
    if learner == "gru-ppo":
        k = int(settings["rollout_episodes"])
        fields.update(num_steps=None if k == 1 else k * episode_len,
                      hidden_size=settings["hidden_size"])
        return fields, extra
    fields["num_steps"] = settings["num_steps"]
    if learner == "ppo":
        extra["n_stack"] = settings["n_stack"]
    else:
        shared = settings["lstm_critic"] == "shared"
        extra["policy_kwargs"] = {"lstm_hidden_size": settings["lstm_hidden_size"],
                                  "shared_lstm": shared, "enable_critic_lstm": not shared}
    return fields, extra


def _rollout_steps(learner: str, settings: dict[str, Any], episode_len: int) -> int:
    if learner == "gru-ppo":
        return int(settings["rollout_episodes"]) * episode_len
    return int(settings["num_steps"])


# ================================================================================== one trial
def _scheduling_config(config: HPSearchConfig) -> Any:
    """The scheduling benchmark's config its training helpers read: the search's env, steps
    and history, no constraints, no best-snapshot validation."""
    from covercast.experiments.scheduling import SchedulingConfig

    return SchedulingConfig(num_envs=config.num_envs, train_horizon_days=config.train_horizon_days,
                            gru_steps=config.steps_per_trial, history_days=config.history_days,
                            gru_eval_every=0, gru_constraints="none")


def _train(learner: str, config: HPSearchConfig, settings: dict[str, Any], seed: int
           ) -> tuple[Any, dict[str, Any]]:
    """Train one trial; return the agent and ``{"steps", "collapse", "curve"}``."""
    from covercast.experiments.scheduling import _gru_config
    from covercast.simulators.suite import load_population

    params = load_population(config.population)
    fields, extra = learner_arguments(learner, settings, episode_steps(config))
    cfg = _gru_config(_scheduling_config(config), seed, **fields)
    steps: list[int] = []
    returns: list[float] = []

    def point(step: int, ret: float) -> None:
        if math.isfinite(ret):
            steps.append(int(step))
            returns.append(float(ret))

    if learner == "gru-ppo":
        from covercast.agents.gru_ppo import GRUPPOTrainer, PolicyCollapseWarning

        trainer = GRUPPOTrainer(cfg, params=params, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PolicyCollapseWarning)   # recorded below
            trainer.train(callback=lambda row: point(row["global_step"],
                                                     row["episode_return"]) or True)
        agent = trainer.agent(seed=seed, name=learner, which="final")
        done, collapse = int(trainer.global_step), trainer.collapse
    else:
        from stable_baselines3.common.callbacks import BaseCallback

        from covercast.agents.sb3 import train_sb3

        ended: list[float] = []

        class Curve(BaseCallback):
            """Mean return of the training episodes that ended in each rollout."""

            def _on_step(self) -> bool:
                ended.extend(i["episode"]["r"] for i in self.locals["infos"] if "episode" in i)
                return True

            def _on_rollout_end(self) -> None:
                point(self.model.num_timesteps, float(np.mean(ended)) if ended else math.nan)
                ended.clear()

        agent = train_sb3(learner, cfg, params=params, progress=False, callback=Curve(),
                          **extra)
        done, collapse = int(agent.model.num_timesteps), None
    return agent, {"steps": done, "collapse": collapse,
                   "curve": {"global_step": steps, "episode_return": returns}}


def _score(agent: Any, config: HPSearchConfig, seed: int) -> dict[str, float]:
    """The agent on the validation users, greedily: mean return and the per-user-day rates;
    and, not part of the score, its mean return and pushes per user-day with sampled actions
    (as in training) on the same users."""
    from covercast.agents.evaluate import evaluate_vector
    from covercast.experiments.suite_benchmark import _env_kwargs, _per_user_day

    kw = _env_kwargs(config, config.population)  # type: ignore[arg-type]
    df = _per_user_day(evaluate_vector(agent, config.val_users, seed, deterministic=True,
                                       env_kwargs=kw), config.horizon_days)
    sampled = evaluate_vector(agent, config.val_users, seed, deterministic=False, env_kwargs=kw)
    pushes = float(df["pushes"].sum())
    return {"score": float(df["return"].mean()),
            "score_se": float(df["return"].std(ddof=1) / math.sqrt(len(df))),
            "pushes_per_day": float(df["pushes_per_day"].mean()),
            "opens_per_day": float(df["opens_per_day"].mean()),
            "opt_outs_per_user_day": float(df["opted_out"].sum() / df["days"].sum()),
            "opted_out": float(df["opted_out"].mean()),
            "ctr": float(df["opens"].sum()) / pushes if pushes else None,
            "sampled_score": float(sampled["return"].mean()),
            "sampled_pushes_per_day": float(sampled["pushes"].sum()) / (
                config.val_users * config.horizon_days)}


def _train_and_score(config: HPSearchConfig, learner: str, trial: int, train_seed: int,
                     settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train trial ``trial``'s settings of ``learner`` (``settings``: as drawn when None) with
    ``train_seed`` and score them: the record a trial or confirmation file holds (without its
    seed bookkeeping)."""
    import torch

    torch.set_num_threads(1)
    settings = sample_settings(config, learner, trial) if settings is None else settings
    t0 = time.perf_counter()
    agent, facts = _train(learner, config, settings, train_seed)
    t_train = time.perf_counter() - t0
    result = _score(agent, config, search_seeds(config)["validation"])
    ep = episode_steps(config)
    return {"learner": learner, "trial": trial, "default": trial == 0, "settings": settings,
            "rollout_steps": _rollout_steps(learner, settings, ep),
            **result, "steps": facts["steps"], "train_seconds": t_train,
            "seconds": time.perf_counter() - t0,
            "steps_per_second": facts["steps"] / max(t_train, 1e-9),
            "updates": math.ceil(facts["steps"] / (_rollout_steps(learner, settings, ep)
                                                   * config.num_envs)),
            "collapse": facts["collapse"], "config_hash": config.digest(),
            "identity": config.identity(), "curve": facts["curve"]}


def run_trial(task: dict[str, Any]) -> dict[str, Any]:
    """Run one trial (``task``: ``config`` (:meth:`HPSearchConfig.to_dict`), ``learner``,
    ``trial``, ``path``); write its JSON atomically to ``path`` and return it."""
    config = HPSearchConfig.from_dict(task["config"])
    seeds = search_seeds(config)
    rec = _train_and_score(config, task["learner"], int(task["trial"]), seeds["train"])
    rec["seeds"] = seeds
    atomic_write_text(task["path"], json.dumps(rec, indent=2, default=float) + "\n")
    return rec


def run_confirmation(task: dict[str, Any]) -> dict[str, Any]:
    """Run one confirmation run (``task``: ``config``, ``learner``, ``trial``, ``settings``
    (those the trial's file records, so a default changed since the search does not slip in),
    ``k`` (the index of its training seed in :func:`confirm_train_seeds`), ``path``); write
    its JSON atomically to ``path`` and return it."""
    config = HPSearchConfig.from_dict(task["config"])
    k = int(task["k"])
    seed = _confirm_seed(config, k)
    rec = _train_and_score(config, task["learner"], int(task["trial"]), seed,
                           settings=task["settings"])
    rec.update(k=k, seeds={"train": seed, "validation": search_seeds(config)["validation"]})
    atomic_write_text(task["path"], json.dumps(rec, indent=2, default=float) + "\n")
    return rec


# ================================================================================== the search
def _trial_path(out: Path, learner: str, trial: int) -> Path:
    return out / "trials" / f"{learner}-{trial}.json"


def _confirm_path(out: Path, learner: str, trial: int, k: int) -> Path:
    return out / "confirm" / f"{learner}-{trial}-seed{k}.json"


def _check_identity(out: Path, config: HPSearchConfig) -> None:
    """Refuse a folder that holds a search with another identity."""
    path = out / "search.json"
    if not path.exists():
        return
    old = HPSearchConfig.from_dict(json.loads(path.read_text()))
    if old.digest() != config.digest():
        a, b = old.identity(), config.identity()
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise ValueError(f"{out} holds a search with another configuration (fields {diff} "
                         f"differ; only {list(_MUTABLE)} may change on a rerun); use another "
                         "--out or remove it.")


def _done(path: Path, config: HPSearchConfig) -> bool:
    if not path.exists():
        return False
    if json.loads(path.read_text()).get("config_hash") != config.digest():
        raise ValueError(f"{path} was written by a search with another configuration; use "
                         "another --out or remove it.")
    return True


def run_hpsearch(out_dir: str | os.PathLike = "runs/hpsearch",
                 config: HPSearchConfig | None = None, *, progress: bool = True) -> Path:
    """Run the search (skipping finished trials) and return the path of ``report.md``."""
    from covercast.experiments.scheduling import _run_tasks
    from covercast.simulators.suite import resolve_name

    config = HPSearchConfig() if config is None else config
    config.validate()
    config = dataclasses.replace(config, population=resolve_name(config.population))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_identity(out, config)
    atomic_write_text(out / "search.json", json.dumps(config.to_dict(), indent=2) + "\n")
    tasks = []
    # the slowest learner first, so that parallel workers finish together
    for learner in sorted(config.learners, key=lambda x: -LEARNERS.index(x)):
        for i in range(config.trials):
            path = _trial_path(out, learner, i)
            if not _done(path, config):
                # "dir" is _run_tasks's finished-cell marker folder; trials mark themselves
                tasks.append({"config": config.to_dict(), "learner": learner, "trial": i,
                              "path": str(path), "dir": str(path.with_suffix(""))})
    t0 = time.perf_counter()
    _run_tasks(tasks, "process", config.workers, None, progress, run=run_trial)
    t_search = time.perf_counter() - t0
    confirm = _confirmation_tasks(out, config)
    _run_tasks(confirm, "process", config.workers, None, progress, run=run_confirmation)
    atomic_write_text(out / "run.json", json.dumps(
        {"trials_run": len(tasks), "confirmation_runs": len(confirm),
         "seconds": time.perf_counter() - t0, "search_seconds": t_search,
         "workers": config.workers}, indent=2) + "\n")
    return write_hpsearch_report(out)


def _confirm_trials(config: HPSearchConfig, table: pd.DataFrame) -> dict[str, list[int]]:
    """Per learner, the trials the confirmation retrains: the chosen one and trial 0 (one
    trial when the default was chosen)."""
    if not config.confirm_seeds or table.empty:
        return {}
    return {learner: sorted({int(_best(g, config.rank_by)["trial"]), 0} & set(g["trial"]))
            for learner, g in table.groupby("learner", sort=False)}


def _confirmation_tasks(out: Path, config: HPSearchConfig) -> list[dict[str, Any]]:
    """The unfinished confirmation runs (the ranking is applied to the finished trials)."""
    tasks = []
    recs = load_trials(out)
    chosen = _confirm_trials(config, _table(recs))
    # the cheapest learner first: a stopped run leaves whole learners confirmed
    for learner in sorted(chosen, key=LEARNERS.index):
        for trial in chosen[learner]:
            settings = next(r["settings"] for r in recs
                            if r["learner"] == learner and r["trial"] == trial)
            for k in range(config.confirm_seeds):
                path = _confirm_path(out, learner, trial, k)
                if not _done(path, config):
                    tasks.append({"config": config.to_dict(), "learner": learner,
                                  "trial": trial, "settings": settings, "k": k,
                                  "path": str(path),
                                  "dir": str(path.with_suffix(""))})
    return tasks


def load_confirmations(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The finished confirmation runs in ``out`` for the current ranking's chosen and default
    trials and the first ``confirm_seeds`` seeds."""
    out = Path(out)
    config = HPSearchConfig.from_dict(json.loads((out / "search.json").read_text()))
    recs = []
    for learner, trials in _confirm_trials(config, _table(load_trials(out))).items():
        for trial in trials:
            for k in range(config.confirm_seeds):
                path = _confirm_path(out, learner, trial, k)
                if _done(path, config):
                    recs.append(json.loads(path.read_text()))
    return recs


def load_trials(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The finished trials of the search in ``out`` (its ``search.json``'s learners and
    trials), learner by learner, trial by trial."""
    out = Path(out)
    config = HPSearchConfig.from_dict(json.loads((out / "search.json").read_text()))
    recs = []
    for learner in [x for x in LEARNERS if x in config.learners]:
        for i in range(config.trials):
            path = _trial_path(out, learner, i)
            if _done(path, config):
                recs.append(json.loads(path.read_text()))
    return recs


def _table(recs: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for r in recs:
        row = {"learner": r["learner"], "trial": r["trial"], "default": r["default"],
               **r["settings"]}
        for k in ("rollout_steps", "score", "score_se", "pushes_per_day", "opens_per_day",
                  "opt_outs_per_user_day", "opted_out", "ctr", "sampled_score",
                  "sampled_pushes_per_day", "steps", "updates",
                  "train_seconds", "seconds", "steps_per_second", "collapse"):
            row[k] = r[k]
        rows.append(row)
    return pd.DataFrame(rows)


_CONFIRM_COLUMNS = ("learner", "trial", "default", "k", "score", "sampled_score",
                    "pushes_per_day", "sampled_pushes_per_day", "opens_per_day",
                    "opt_outs_per_user_day", "steps", "train_seconds", "collapse")


def _confirm_table(recs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per confirmation run (``k``: its seed's index; ``train_seed``)."""
    return pd.DataFrame([{**{c: r[c] for c in _CONFIRM_COLUMNS},
                          "train_seed": r["seeds"]["train"]} for r in recs],
                        columns=[*_CONFIRM_COLUMNS, "train_seed"])


def _confirmation(confirm: pd.DataFrame, learner: str, trial: int) -> dict[str, Any] | None:
    """Over the confirmation seeds: the chosen settings' mean sampled and greedy returns with
    95 % t-intervals and per-seed values, and the paired difference from the default (trial 0)
    when the default was not chosen; None without confirmation runs."""
    from covercast.experiments.stats import _mean_ci, paired_test

    mine = confirm[(confirm["learner"] == learner) & (confirm["trial"] == trial)]
    if mine.empty:
        return None
    mine = mine.sort_values("k")
    out: dict[str, Any] = {"seeds": int(len(mine)), "train_seeds": mine["train_seed"].tolist()}
    for col in ("sampled_score", "score", "pushes_per_day"):
        ci = _mean_ci(mine[col].to_numpy(float), 0.95)
        out[col] = {"mean": ci["mean"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
                    "per_seed": mine[col].tolist()}
    out["collapses"] = int(mine["collapse"].notna().sum())
    d0 = confirm[(confirm["learner"] == learner) & (confirm["trial"] == 0)].sort_values("k")
    if trial != 0 and len(d0):
        both = mine.merge(d0, on="k", suffixes=("", "_default"))
        out["default"] = {col: {"mean": float(both[f"{col}_default"].mean()),
                                "per_seed": both[f"{col}_default"].tolist()}
                          for col in ("sampled_score", "score", "pushes_per_day")}
        if len(both) >= 2:
            t = paired_test(both["sampled_score"], both["sampled_score_default"])
            out["sampled_minus_default"] = {
                "diff": t["diff"], "ci_low": t["ci_low"], "ci_high": t["ci_high"],
                "p": t["p"], "seeds_better": int((both["sampled_score"]
                                                  > both["sampled_score_default"]).sum()),
                "pairs": int(len(both))}
    return out


def _confirm_lines(config: HPSearchConfig, confirm: pd.DataFrame, chosen: dict[str, Any]
                   ) -> list[str]:
    """The report's section on the confirmation runs (empty when there are none)."""
    if not config.confirm_seeds or confirm.empty:
        return []

    def ci(d: dict[str, Any], f: str = "{:.3f}") -> str:
        if d["ci_low"] != d["ci_low"]:          # NaN: one seed
            return f.format(d["mean"])
        return (f"{f.format(d['mean'])} [{f.format(d['ci_low'])}, "
                f"{f.format(d['ci_high'])}]")

    lines = [f"## Chosen settings over {config.confirm_seeds} training seeds\n",
             *([] if confirm.groupby(["learner", "trial"]).size().min() >= config.confirm_seeds
               else ["**Incomplete**: some settings have fewer finished seeds (the `seeds` "
                     "column); rerun the same command to finish them.\n"]),
             "The search ranks trials that share one training seed, so the chosen trial's "
             "score mixes its settings with that seed's luck. Each learner's chosen settings "
             f"and its default were therefore trained again with {config.confirm_seeds} fresh "
             "training seeds (branches of the master seed that no trial used; the same seeds "
             "for every learner and settings) and scored on the same validation users. These "
             "are the figures to quote; the trials' own scores follow below. Means with 95 % "
             "t-intervals over the seeds; the difference from the default is paired by "
             "seed.\n",
             "| learner | settings | seeds | sampled return | greedy return | greedy "
             "pushes/day | sampled return per seed | collapses | chosen - default "
             "(sampled; seeds better) |", "|---|---|---|---|---|---|---|---|---|"]
    for learner, c in chosen.items():
        conf = c.get("confirmation")
        if not conf:
            continue
        d = conf.get("sampled_minus_default")
        diff = (f"{d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], p = "
                f"{d['p']:.2g}; {d['seeds_better']}/{d['pairs']}" if d else
                "- (the default was chosen)" if c["trial"] == 0 else "-")
        lines.append(f"| {learner} | trial {c['trial']}"
                     f"{' (default)' if c['trial'] == 0 else ''} | {conf['seeds']} | "
                     f"{ci(conf['sampled_score'])} | {ci(conf['score'])} | "
                     f"{ci(conf['pushes_per_day'], '{:.2f}')} | "
                     + ", ".join(f"{v:.3f}" for v in conf["sampled_score"]["per_seed"])
                     + f" | {conf['collapses']} | {diff} |")
        if "default" in conf:
            dd = conf["default"]
            lines.append(f"| {learner} | trial 0 (default) | {len(dd['score']['per_seed'])} "
                         f"| {dd['sampled_score']['mean']:.3f} | {dd['score']['mean']:.3f} | "
                         f"{dd['pushes_per_day']['mean']:.2f} | "
                         + ", ".join(f"{v:.3f}" for v in dd["sampled_score"]["per_seed"])
                         + " | | |")
    return lines + [""]


def _best(g: pd.DataFrame, rank_by: str = "sampled") -> pd.Series:
    """The trial with the highest ``rank_by`` return (the lowest index among equals)."""
    return g.sort_values([RANK_COLUMNS[rank_by], "trial"], ascending=[False, True]).iloc[0]


def _flat(curve: dict[str, list[float]]) -> bool:
    y = np.asarray(curve["episode_return"], dtype=float)
    if y.size < 2:
        return True
    tail = y[-max(1, y.size // 4):]
    return bool(tail.mean() - y[0] < FLAT_TOLERANCE)


def write_hpsearch_report(out: str | os.PathLike) -> Path:
    """``trials.csv``, ``chosen.json``, ``learning_curves.png`` and ``report.md`` from the
    trial files in ``out``."""
    out = Path(out)
    config = HPSearchConfig.from_dict(json.loads((out / "search.json").read_text()))
    recs = load_trials(out)
    table = _table(recs)
    atomic_write_csv(table, out / "trials.csv")
    ep = episode_steps(config)
    chosen: dict[str, Any] = {}
    for learner, g in table.groupby("learner", sort=False) if len(table) else []:
        best = _best(g, config.rank_by)
        col = RANK_COLUMNS[config.rank_by]
        settings = next(r["settings"] for r in recs
                        if r["learner"] == learner and r["trial"] == best["trial"])
        d0 = g[g["trial"] == 0]
        fields, extra = learner_arguments(learner, settings, ep)
        chosen[learner] = {
            "trial": int(best["trial"]), "settings": settings, "rank_by": config.rank_by,
            "score": float(best[col]), "greedy_score": float(best["score"]),
            "sampled_score": float(best["sampled_score"]),
            "default_score": float(d0[col].iloc[0]) if len(d0) else None,
            "beats_default": bool(len(d0) and best["trial"] != 0),
            "gruppo_config_fields": fields,
            "train_sb3_kwargs": {**extra, "algo": learner} if learner != "gru-ppo" else None}
    confirm = _confirm_table(load_confirmations(out))
    if len(confirm):
        atomic_write_csv(confirm, out / "confirm.csv")
    for learner, c in chosen.items():
        c["confirmation"] = _confirmation(confirm, learner, c["trial"])
    atomic_write_text(out / "chosen.json", json.dumps(chosen, indent=2, default=float) + "\n")
    fig = _figure(out, recs, chosen, RANK_COLUMNS[config.rank_by])
    lines = _report_lines(config, table, recs, chosen)
    lines[lines.index("## Search spaces\n"):lines.index("## Search spaces\n")] = \
        _confirm_lines(config, confirm, chosen)
    if fig:
        lines += ["\n## Learning curves\n", "Mean return of the training episodes that ended "
                  "in each rollout (training users, sampled actions), every trial; the chosen "
                  "trial bold, the default dashed.\n", f"![learning curves]({fig})"]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _space_lines(config: HPSearchConfig) -> list[str]:
    def fmt(spec: tuple[Any, ...]) -> str:
        if spec[0] == "log-uniform":
            return f"log-uniform [{spec[1]:g}, {spec[2]:g}]"
        return "{" + ", ".join(str(v) for v in spec[1]) + "}"

    lines = ["| knob | learners | range |", "|---|---|---|"]
    lines += [f"| `{k}` | all | {fmt(s)} |" for k, s in SHARED_SPACE.items()]
    for learner, space in LEARNER_SPACE.items():
        lines += [f"| `{k}` | {learner} | {fmt(s)} |" for k, s in space.items()]
    lines.append(f"\n`rollout_episodes` x {episode_steps(config)} slots is GRU-PPO's rollout; "
                 "`num_steps` is SB3's `n_steps` (steps per user per rollout). "
                 "`lstm_critic`: `separate` (sb3-contrib's default, its own LSTM for the critic) "
                 "or `shared` (one LSTM for actor and critic). GRU-PPO's `ent_coef` weighs its "
                 "cross-entropy exploration bonus (`GRUPPOConfig.entropy_bonus`), SB3's the "
                 "policy's entropy.")
    return lines


def _report_lines(config: HPSearchConfig, table: pd.DataFrame, recs: list[dict[str, Any]],
                  chosen: dict[str, Any]) -> list[str]:

    seeds = search_seeds(config)
    lines = ["# Hyperparameter search of the reinforcement learners\n",
             f"Produced by `covercast experiment hpsearch` "
             f"(`covercast.experiments.hpsearch`; its docstring is the protocol). "
             f"Learners: {', '.join(config.learners)}; **{config.trials} trials x "
             f"{config.steps_per_trial:,} env-steps each** per learner, trained on the "
             f"training population **{config.population}** only (population vector env, "
             f"{config.num_envs} users, {config.train_horizon_days:g}-day episodes, "
             f"{config.history_days:g} days of seen sessions, one torch thread), on the "
             "reward alone (no PPO-Lagrangian constraints for any learner). Trial 0 is each "
             "learner's current default; the others a random search "
             f"(master seed {config.seed}).\n",
             f"**Ranking**: by the **{config.rank_by}** validation return "
             f"(`rank_by`; `score` is the greedy return, `sampled_score` the sampled one, "
             "both measured for every trial).\n",
             f"**Score**: mean return of the trained policy's final weights, **greedy**, on "
             f"{config.val_users} validation users of {config.population} "
             f"({config.horizon_days:g}-day episodes, {config.history_days:g} days of seen "
             f"sessions), the same users for every trial; their seed ({seeds['validation']}) "
             "is a branch of the search's seed that neither training nor the suite "
             "benchmark's evaluation uses. Training seed of every trial: "
             f"{seeds['train']}. Rates are per user-day of the validation window "
             "(opt-outs: per user-day until the opt-out), CTR pooled; `sampled_*`: the same "
             "policy and users with sampled actions, as in training. A trial "
             "runs whole rollouts, so it may pass its step budget by up to one rollout "
             "(`steps`).\n",
             "## Search spaces\n"] + _space_lines(config)
    if table.empty:
        return lines + ["\nNo finished trial yet."]
    lines += ["\n## Chosen settings\n"]
    for learner, c in chosen.items():
        d0 = c["default_score"]
        lines.append(f"- **{learner}**: trial {c['trial']}"
                     f"{' (the default)' if c['trial'] == 0 else ''}, score {c['score']:.3f}"
                     + (f" (default {d0:.3f})" if d0 is not None else "") + ": "
                     + ", ".join(f"`{k}` = {v}" for k, v in c["settings"].items()))
    lines += ["\n## Throughput and time\n", "| learner | trials | seconds training | "
              "seconds with scoring | env-steps | env-steps/s (training) |",
              "|---|---|---|---|---|---|"]
    sps = {}
    for learner, g in table.groupby("learner", sort=False):
        sps[learner] = float(g["steps"].sum() / g["train_seconds"].sum())
        lines.append(f"| {learner} | {len(g)} | {g['train_seconds'].sum():.0f} | "
                     f"{g['seconds'].sum():.0f} | {int(g['steps'].sum()):,} | "
                     f"{sps[learner]:,.0f} |")
    if "gru-ppo" in sps and "recurrent-ppo" in sps:
        ratio = sps["gru-ppo"] / sps["recurrent-ppo"]
        lines.append(f"\nGRU-PPO / RecurrentPPO training throughput over this search's trials: "
                     f"**{ratio:.1f}x**. Not the issue's throughput check (target >= "
                     f"{THROUGHPUT_RATIO_TARGET:g}x): the trials ran different settings (epochs, "
                     "network sizes, rollout lengths) one after another under whatever else ran "
                     "on the machine; the matched comparison, the same settings side by side in "
                     "one process, is `python benchmarks/bench_rl.py`.")
    lines += ["\n## Findings\n"] + _findings(table, recs, chosen)
    for learner, g in table.groupby("learner", sort=False):
        shown = g.sort_values([RANK_COLUMNS[config.rank_by], "trial"],
                              ascending=[False, True]).copy()
        shown["trial"] = [f"{t} (default)" if t == 0 else str(t) for t in shown["trial"]]
        keep = ["trial", *[k for k in {**SHARED_SPACE, **LEARNER_SPACE[learner]}],
                "rollout_steps", "score", "score_se", "pushes_per_day", "opens_per_day",
                "opt_outs_per_user_day", "ctr", "sampled_score", "sampled_pushes_per_day",
                "steps", "updates", "train_seconds", "steps_per_second"] + (["collapse"] if learner == "gru-ppo" else [])
        lines += [f"\n## {learner} (best first)\n", md_frame(shown[keep].fillna("-"))]
    return lines


def _findings(table: pd.DataFrame, recs: list[dict[str, Any]], chosen: dict[str, Any]
              ) -> list[str]:
    """A sentence for each learner whose search did not beat its default, whose curves stayed
    flat or whose greedy policy never pushes."""
    lines = []
    for learner, c in chosen.items():
        g = table[table["learner"] == learner]
        curves = [r["curve"] for r in recs if r["learner"] == learner]
        if c["default_score"] is not None and c["trial"] == 0:
            lines.append(f"- {learner}: no trial of the search beat its default settings "
                         f"(trial 0, score {c['default_score']:.3f}).")
        if all(_flat(cv) for cv in curves):
            lines.append(f"- {learner}: every trial's learning curve stays flat (its last "
                         f"quarter less than {FLAT_TOLERANCE:g} above its first point).")
        best = g[g["trial"] == c["trial"]].iloc[0]
        if best["pushes_per_day"] == 0:
            silent = int((g["pushes_per_day"] == 0).sum())
            lines.append(f"- {learner}: its chosen policy never pushes when greedy (in "
                         f"{silent} of {len(g)} trials the most likely action is 'no push' "
                         "in every slot), so its score is the no-push return.")
        if learner == "gru-ppo" and g["collapse"].notna().any():
            lines.append(f"- gru-ppo: {int(g['collapse'].notna().sum())} trial(s) flagged a "
                         "policy collapse (`collapse` column).")
    return lines or ["- Every learner's search beat its default, and its curves rose."]


def _figure(out: Path, recs: list[dict[str, Any]], chosen: dict[str, Any],
            rank_col: str = "sampled_score") -> str | None:
    if not recs:
        return None
    plt = pyplot()

    learners = list(chosen)
    fig, axes = plt.subplots(1, len(learners), figsize=(4.6 * len(learners), 3.8),
                             squeeze=False)
    for ax, learner in zip(axes[0], learners, strict=True):
        for r in [r for r in recs if r["learner"] == learner]:
            best = r["trial"] == chosen[learner]["trial"]
            ax.plot(r["curve"]["global_step"], r["curve"]["episode_return"],
                    lw=2.4 if best else 0.9, ls="--" if r["trial"] == 0 else "-",
                    color=f"C{r['trial'] % 10}", alpha=1.0 if best else 0.6, marker=".", ms=3,
                    label=f"{r['trial']}{' (default)' if r['trial'] == 0 else ''}: "
                          f"{r[rank_col]:.2f}")
        ax.set(title=learner, xlabel="env-steps (thousands)",
               ylabel="mean training-episode return")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}")
        ax.legend(fontsize=6, title=f"trial: {rank_col.replace('_', ' ')}", title_fontsize=6)
    fig.tight_layout()
    return save_figure(fig, out / "learning_curves.png", 100)


# ================================================================================== CLI
def load_sb3_settings(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The SB3 references' chosen settings from a search's ``chosen.json``, in the form
    :class:`~covercast.experiments.scheduling.SchedulingConfig`'s ``sb3_settings`` takes:
    ``{learner: {"config": GRUPPOConfig fields, "kwargs": train_sb3 arguments, "trial": i,
    "source": path}}`` for ``ppo`` and ``recurrent-ppo`` (GRU-PPO's entry is left out: the
    benchmark trains GRU-PPO with its default config).

    Raises ``FileNotFoundError`` when ``path`` (a ``chosen.json`` or the search's folder) holds
    no ``chosen.json``, and ``ValueError`` when it names no SB3 learner.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "chosen.json"
    if not p.is_file():
        raise FileNotFoundError(f"No hyperparameter search result at {p} (a `chosen.json` "
                                f"written by `covercast experiment hpsearch`).")
    chosen = json.loads(p.read_text())
    out: dict[str, dict[str, Any]] = {}
    for learner in ("ppo", "recurrent-ppo"):
        c = chosen.get(learner)
        if c is None:
            continue
        kwargs = {k: v for k, v in (c.get("train_sb3_kwargs") or {}).items() if k != "algo"}
        out[learner] = {"config": dict(c["gruppo_config_fields"]), "kwargs": kwargs,
                        "trial": int(c["trial"]), "source": str(p)}
    if not out:
        raise ValueError(f"{p} has no settings for `ppo` or `recurrent-ppo` (learners "
                         f"searched: {sorted(chosen)}).")
    return out


def cmd_experiment_hpsearch(args: Any) -> int:
    """``covercast experiment hpsearch``."""
    kw: dict[str, Any] = {"seed": args.seed, "workers": args.workers}
    for name in ("trials", "steps_per_trial", "population", "val_users", "rank_by",
                 "confirm_seeds"):
        v = getattr(args, name)
        if v is not None:
            kw[name] = v
    if args.learners is not None:
        kw["learners"] = [x.strip() for x in args.learners.split(",") if x.strip()]
    config = (HPSearchConfig.quick_config if args.quick else HPSearchConfig)(**kw)
    report = run_hpsearch(args.out, config, progress=not args.quiet)
    chosen = json.loads((Path(args.out) / "chosen.json").read_text())
    print(f"report: {report}")
    for learner, c in chosen.items():
        print(f"{learner}: trial {c['trial']} score {c['score']:.3f} "
              f"(default {c['default_score']:.3f})" if c["default_score"] is not None else
              f"{learner}: trial {c['trial']} score {c['score']:.3f}")
    return 0


def add_experiment(experiments: Any) -> None:
    """Register ``hpsearch`` on the CLI's ``experiment`` sub-parsers."""
    e = experiments.add_parser(
        "hpsearch", help="equal-budget hyperparameter search of GRU-PPO, SB3 PPO and "
                         "RecurrentPPO",
        description="Hyperparameter search of the reinforcement learners with one budget: "
                    "the same trials and env-steps per trial for GRU-PPO, SB3 PPO (stacked "
                    "history) and RecurrentPPO, trained on a training population, scored "
                    "greedily on its validation users; trial 0 is each learner's default. "
                    "Finished trials are skipped on a rerun (--trials may grow). Writes "
                    "trials.csv, chosen.json, report.md and learning_curves.png. The default "
                    "(8 trials x 300,000 steps x 3 learners) takes about 40 minutes with one "
                    "worker on 2 shared CPU cores, three quarters of it RecurrentPPO's; "
                    "--quick: seconds.")
    e.set_defaults(func=cmd_experiment_hpsearch)
    e.add_argument("--out", default="runs/hpsearch", help="output folder")
    e.add_argument("--learners", default=None,
                   help=f"comma-separated learners (default: {','.join(LEARNERS)})")
    e.add_argument("--trials", type=int, default=None, help="trials per learner (default 8)")
    e.add_argument("--steps-per-trial", type=int, default=None,
                   help="training env-steps per trial (default 300,000)")
    e.add_argument("--val-users", type=int, default=None,
                   help="validation users of the score (default 1000)")
    e.add_argument("--rank-by", default=None, choices=list(RANK_COLUMNS),
                   help="validation return that ranks the trials (default sampled; a rerun "
                        "with another ranking rewrites the report without training)")
    e.add_argument("--confirm-seeds", type=int, default=None,
                   help="training seeds each learner's chosen settings and default are "
                        "retrained and scored with after the search (default 5; 0: none)")
    e.add_argument("--seed", type=int, default=0, help="master seed")
    e.add_argument("--workers", type=int, default=1, help="trials at once (processes)")
    e.add_argument("--population", default=None,
                   help="training population (a suite name of the train split; default "
                        "calibrated-v1)")
    e.add_argument("--quick", action="store_true", help="tiny sizes, a seconds-long smoke run")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
