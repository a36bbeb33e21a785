"""``covercast experiment scheduling``: the scheduling benchmark (issue 5, part 4).

Policies {random, static, heuristic, bandit, oracle, SB3 PPO, RecurrentPPO, GRU-PPO} x seeds x
populations, on ``covercast/PushSchedule-v0`` (hourly decisions: push or not, and with which
cover style). Writes per-episode results, a summary table with 95 % confidence intervals and
Welch t-tests against the static scheduler, the check of the issue's target, learning curves and
figures.

Design
------
**Populations.** Three user models (:func:`build_populations`):

* ``default`` -- ``config.population`` (``--population``; default
  :func:`~covercast.simulators.params.default_params`, ``calibrated-v1``);
* ``fitted`` -- a population fitted (:func:`~covercast.simulators.fit.fit_population`) to a
  simulated ``fit_days``-day log of ``fit_users`` default users under the uniformly random
  logging policy (push probability 2/24 per hour, random style): the realistic pipeline, where
  a platform only has its logs. The fit is done once per experiment (its seed is a branch of
  the master seed) and saved as ``populations/fitted.json``;
* ``shifted`` -- the default population changed on purpose and **held out from training**
  (:func:`shifted_params`): segment mix 35/45/20 % -> 20/30/50 % (morning commuters / evening
  leisure / night owls), every segment's organic activity two hours later, fatigue half-life
  24 h -> 36 h and the fatigue coefficient of the opt-out hazard x1.5.

**Cells.** One cell per (seed, training population); cells are independent and run in
parallel (Ray, or processes). The learners train on the *default* population (GRU-PPO, SB3 PPO
and RecurrentPPO) and on the *fitted* one (GRU-PPO only, by default: the realistic pipeline for
the main learner, while the SB3 references, about 6x slower per step, would double the run).
Evaluation populations (the ``population`` column of the results):

* ``default`` -- every policy, learners trained on the default population, evaluated on it;
* ``fitted`` -- learners trained on the fitted population, evaluated on the **true** default
  population (the baselines' rows are those of ``default``: the same users);
* ``shifted`` -- every policy, learners trained on the default population, evaluated on the
  shifted one.

**Paired users.** In a cell, every policy meets the same ``eval_users`` simulated users (one
``horizon_days``-day episode each, the same environment seeds: common random numbers, see
:mod:`covercast.experiments.evaluate`); seed ``s`` has its own users. Agents are reset once per
evaluation (``learning="continual"``: the bandit keeps learning across users as a deployed
bandit would).

**Existing users.** Every environment of the benchmark (training, evaluation, the static
scheduler's rates) starts each user with ``history_days`` (default 14) days of their organic
sessions already seen (the environments' ``history_days``): the users of a push experiment are
an app's existing users, whose active hours the platform knows, as in the seeds' experiments.
With ``history_days=0`` (new users) a deployable policy spends the first days of each user
finding out what the hidden-state oracle knows from the start: in session 3's cold-start run
(``runs/scheduling6m``), on the demo's 300 users, the oracle's reward per user in days 1-3 was
1.25 against GRU-PPO's 0.57, more than half of the whole 14-day gap (4.09 vs 2.91). The
baselines that do not read observations (static, random, the oracle) are unaffected.

**Statistics.** The replication unit is the seed (its own training run and its own users): each
metric is averaged over a seed's users (CTR pooled: opens / pushes of all its users), and the
summary gives the mean over seeds with a Student-t 95 % interval, and Welch's t-test of each
policy against the static scheduler over the seed means, Holm-adjusted across the policies of a
population (:func:`covercast.experiments.stats.compare`). User-level paired tests (all seeds'
users, paired on seed and user) are in ``paired_vs_static.csv``.

**Training budgets.** GRU-PPO: ``gru_steps`` env-steps (default 6 M) on the population vector
env (64 users, ``train_horizon_days`` = 14-day episodes like the evaluation's, gamma 0.999, one
torch thread), **constrained** by default (``gru_constraints="static"``, PPO-Lagrangian): before
training, the static scheduler is run on ``constraint_users`` users of the training population
and GRU-PPO is held to between ``min_push_fraction`` (0.5) and ``max_push_fraction`` (1.0) times
its pushes per user-day and to at most ``opt_out_fraction`` (0.9) times its opt-outs per
user-day. Why: unconstrained, the push rate the policy settles on varied from 0.5 to 5.4 pushes
a day between training seeds (1.5-3 M steps), and longer training drifted towards over-pushing
(3 M steps: 3 of 5 runs at 2.9-5.4 pushes a day and 13-33 % opt-outs); the benchmark asks for
more opens without more opt-outs than the static scheduler, and the limit below 1 leaves a
margin for the difference between training rollouts and the evaluation's users.

**The evaluated GRU-PPO policy is its best validated one** (``gru_eval_every`` = 10 iterations,
``gru_eval_users`` = 2,048; ``GRUPPOConfig.eval_every``): validation users come from the
*training* population with a seed of the training run, never the evaluation's users or the
held-out population, and are run as the evaluation runs the learners (greedily, 14 days, the
same seen history). Measured in pilots (default population, 1,000 test users, the oracle 4.34
on them): the policy's test return kept moving by up to +-0.4 between snapshots 200 k steps
apart long after the training curve was flat. On four training seeds with the settings above
the final policies at 6 M steps returned 3.82 / 3.23 / 3.63 / 3.66 (mean 3.59, 0.83 of the
oracle) and the best validated ones 3.71 / 3.96 / 3.63 / 3.64 (mean 3.73, 0.86), at 4.5-6.4 %
opt-outs against the static scheduler's 7.2 %. Validating a policy costs about 3 s (28 times
in a run).

SB3 PPO (MLP on 4 stacked
observations) and sb3-contrib RecurrentPPO (LSTM) train on the same env and seed with the same
PPO settings (or, with ``sb3_settings`` / ``--sb3-settings``, the settings the hyperparameter
search of :mod:`covercast.experiments.hpsearch` chose for each) and an **equal wall-clock budget** (``sb3_budget="wall"``: the seconds GRU-PPO took
in the same cell, so under the same load; at most ``gru_steps`` steps), or an equal step budget
(``sb3_budget="steps"``). Learning curves are the trainers' own training statistics (mean return
of the training episodes that ended in each iteration / rollout, against env-steps and seconds),
recorded with :meth:`~covercast.agents.gru_ppo.GRUPPOTrainer.train`'s callback and an SB3
callback. Measured in a medium run (3 seeds, 300,000 steps, two cells at once on 2 shared CPU
cores): GRU-PPO 301,056 steps in 21 s, SB3 PPO about 300,000 steps in the same 21 s, and
RecurrentPPO 16,384-32,768 steps (one or two rollouts of 128 users x 128 steps, 68 s on
average: the first rollout and its update cannot be cut) -- under an equal wall-clock budget
RecurrentPPO is barely trained; ``sb3_budget="steps"`` gives it the same steps instead (hours at
1.5 M). All three learners start from the same untrained push probability, 2/24 per slot
(``GRUPPOConfig.initial_push_prob``; :func:`covercast.agents.sb3.set_initial_push_prob`).

**Covers.** ``bank`` (``--bank``): every environment of the run pushes covers from that bank
-- procedural (default), a learned generator's by name (``diffusion``, ``vae-iat``, ``dcgan``)
or a bank file; the fitted population's log and fit use it too.

**Execution.** ``backend="auto"`` uses Ray when it is importable (a local cluster of
``workers`` CPUs, or ``address`` for an existing cluster), otherwise a
``concurrent.futures.ProcessPoolExecutor`` of ``workers`` processes; ``"sequential"`` runs in
this process. A cell whose ``cell.json`` exists is not run again (resumable).

**Targets** (issue 5, point 6), checked in ``target.md`` / ``target.json``: on the default
population GRU-PPO's CTR is >= 18.7 % above the static scheduler's with Welch p < 0.01 over >= 5
seeds; its opens and dwell minutes per user are not below the static scheduler's and its opt-out
rate is not above (means over seeds); its return is within 10 % of the oracle's; its training
took <= 15 minutes (mean over the default-population cells).

Expected time of the default (5 seeds, 6 M GRU-PPO steps, 200 users x 14 days per policy and
population) on 2 CPU cores: 43-50 minutes measured (2,600 s, 2,994 s and, with validation and
14-day training episodes, 2,860 s; Ray). A default cell trains GRU-PPO in about 4 minutes (254 s
on average, its 28 validations included), then SB3 PPO for as long (it reached its 6 M steps in
170 s), then RecurrentPPO for GRU-PPO's time (about 560,000 steps), and evaluates 8 policies on
2 populations; a fitted cell trains GRU-PPO once. On cores shared with other heavy jobs the run
is several times longer.

**Result of the default run** -- on ``peaked-v0``, the default population until December 2026
(far more peaked than published evidence allows; ``--population peaked-v0`` reproduces it; the
calibrated default's results are the suite benchmark's, ``--suite``) (``runs/scheduling_v``:
the defaults above; 2,860 s on the 2 cores; that population, mean over 5 seeds +- 95 % CI): GRU-PPO return 3.77 +- 0.36 against
the static scheduler's 1.30 +- 0.35 and the oracle's 4.15 +- 0.51: **ratio 0.907** (per seed
0.88 / 0.93 / 0.89 / 0.91 / 0.94); CTR 13.8 % against 5.1 % (+170 %, Welch p = 1.3e-8 over seed
means), opens per user 3.04 vs 1.38, dwell 10.1 vs 2.5 min, opt-outs 5.6 % vs 6.6 %, 1.65
pushes a day vs 2.0, 254 s of training: every target holds. The pass on the oracle's return is
narrow: in the pilots (four training seeds, 1,000 other users of the default population, on
whom the oracle returns 4.34; an opt-out limit of 0.0047 per user-day against this run's 0.0053,
see ``opt_out_fraction``) these settings gave 0.84-0.91 (mean 0.86); a second run with master
seed 1 (``--seed 1``: other training seeds and users) gave 3.73 against the oracle's 4.03 (ratio
0.924; per seed 0.84-0.99), CTR 13.6 % vs 5.1 %, opt-outs 5.2 % vs 7.7 %. Trained on the
fitted population: 3.62 +- 0.26 on the true one (ratio 0.87), CTR 14.0 %, opt-outs 6.8 %;
held-out shifted population: 2.40 against the static scheduler's 0.30 and the oracle's 2.72.
The oracle's remaining edge is volume (2.27 pushes a day at 9.5 % opt-outs, above the static
scheduler's 6.6 %, which GRU-PPO is held below) and the first days, when users are fresh: per
day on 200 users (one of the pilots' best policies, greedy) the oracle earns 0.50 on day 1
against 0.42 and 1.96 against 1.66 over days 2-7, and less than GRU-PPO over days 8-14 (1.56
against 1.83). Earlier runs, for comparison: session 4's (7-day training episodes, opt-out
limit 0.8, the final policy; ``runs/scheduling_h14``) 3.37 +- 0.21 (0.81); session 3's with new
users and sampled actions (``runs/scheduling6m``) 3.02 +- 0.39 (0.73).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
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
from covercast.envs.base import check_history_days
from covercast.generators.banks import bank_kwargs
from covercast.simulators.params import PopulationParams, default_params

__all__ = ["POLICIES", "LEARNERS", "POPULATIONS", "METRICS", "SchedulingConfig",
           "shifted_params", "fitted_params", "build_populations", "make_baselines",
           "run_cell", "run_scheduling", "aggregate", "target_check", "CTR_LIFT_TARGET"]

#: Every policy of the benchmark, in table order.
POLICIES: tuple[str, ...] = ("random", "static", "heuristic", "bandit", "oracle", "ppo",
                             "recurrent-ppo", "gru-ppo")
#: The policies trained here.
LEARNERS: tuple[str, ...] = ("gru-ppo", "ppo", "recurrent-ppo")
#: Evaluation populations (see the module docstring).
POPULATIONS: tuple[str, ...] = ("default", "fitted", "shifted")
#: Metrics summarised per population and policy.
METRICS: tuple[str, ...] = ("return", "ctr", "opens", "pushes_per_day", "dwell_min", "likes",
                            "shares", "comments", "opted_out", "satisfaction")
#: Issue 5's CTR target: the source paper's claimed lift of the adaptive scheduler over the
#: static one (seed 000, section 5.2 and Table 2: 5.3 % -> 6.3 %, "+18.7 %").
CTR_LIFT_TARGET = 0.187
#: Hours of the static scheduler (the source paper's control: everyone at 08:00 and 20:00).
STATIC_HOURS = (8, 20)


# ================================================================================== config
def _check_sb3_settings(settings: Any) -> None:
    """Raise ``ValueError`` unless ``settings`` is ``SchedulingConfig.sb3_settings``-shaped."""
    from covercast.agents.gru_ppo import GRUPPOConfig

    if not isinstance(settings, dict):
        raise ValueError(f"`sb3_settings` must be a dict, got {type(settings).__name__}.")
    known = {f.name for f in dataclasses.fields(GRUPPOConfig)}
    for learner, entry in settings.items():
        if learner not in ("ppo", "recurrent-ppo"):
            raise ValueError(f"`sb3_settings` keys must be 'ppo' or 'recurrent-ppo', got "
                             f"{learner!r}.")
        if not (isinstance(entry, dict) and isinstance(entry.get("config", {}), dict)
                and isinstance(entry.get("kwargs", {}), dict)):
            raise ValueError(f"`sb3_settings[{learner!r}]` must be a dict with 'config' and "
                             f"'kwargs' dicts, got {entry!r}.")
        bad = sorted(set(entry.get("config", {})) - known)
        if bad:
            raise ValueError(f"`sb3_settings[{learner!r}]['config']` has fields GRUPPOConfig "
                             f"does not know: {bad}.")


@dataclass
class SchedulingConfig:
    """Settings of a scheduling benchmark run (saved as ``config.json``)."""

    seeds: int = 5
    """Replications (each: its own training runs and its own evaluation users)."""
    seed: int = 0
    """Master seed; seed ``i`` uses ``SeedSequence([seed, i])``."""
    policies: list[str] = field(default_factory=lambda: list(POLICIES))
    """Policies to run (a subset of :data:`POLICIES`; ``static`` is always included)."""
    fitted_learners: list[str] = field(default_factory=lambda: ["gru-ppo"])
    """Learners also trained on the fitted population."""
    eval_users: int = 200
    """Simulated users per seed, policy and population (one episode each)."""
    horizon_days: float = 14.0
    """Days of each evaluation episode."""
    gru_steps: int = 6_000_000
    """GRU-PPO training env-steps (about 4-6 minutes on one core of the 2-core machine)."""
    num_envs: int = 64
    """Users per rollout of the training env (population vector env); 64 is GRU-PPO's default
    (128 users, i.e. half as many updates for the same steps, settled on a low-push regime
    in a measured run)."""
    train_horizon_days: float = 14.0
    """Episode length of the training env, in days: 14, the evaluation's, so that the GRU
    meets in training the days 8-14 it is evaluated on. Measured (GRU-PPO, two training seeds
    each, 1,000 test users, opt-out limit 0.8): with 7-day episodes the policy's return on new
    users swung between 2.8 and 3.9 from one validation to the next through 12 M steps; with
    14-day episodes it stayed within 3.4-3.9 after the first 4 M steps (same steps, same
    speed)."""
    gru_eval_every: int = 10
    """GRU-PPO keeps its best validated policy (``GRUPPOConfig.eval_every``): every this many
    iterations it runs, as the evaluation will (greedily with ``deterministic_learners``, for
    ``horizon_days``, with ``history_days``), on ``gru_eval_users`` users of the *training*
    population drawn from a seed of the training run, never the evaluation users or
    populations; the policy with the best validation return that keeps the training
    constraints is the one evaluated. 0: the policy at the end of training. Measured on two
    training seeds (7-day episodes, 12 M steps, snapshots every 10 iterations, 1,000 test
    users of the default population): the policy's return on new users moved between 3.0
    and 3.9 from one snapshot to the next after the first 2 M steps, and the best validated
    one returned 3.74 / 3.72 against 3.54 / 3.44 for the policy at 6 M steps (the validation
    and test returns of the snapshots correlate at r = 0.97)."""
    gru_eval_users: int = 2048
    """Validation users of GRU-PPO's best-policy selection. With 512, the check of the
    opt-out limit let a policy through that opted out 7.4 % of 1,000 test users (the static
    scheduler: 7.2 %) in one of two runs; 2,048 users measure a policy's opt-out share to
    about +-0.5 points."""
    history_days: float = 14.0
    """Days of each user's organic sessions the platform has seen when the user's episode
    starts (the environments' ``history_days``), in training and evaluation alike: 14
    (default), existing users of an app, as in the seeds' experiments, whose active hours the
    platform knows from their past sessions; 0, new users seen for the first time. The oracle
    reads the user's true rates either way; with 0 a deployable policy spends the first days
    learning what the oracle knows from the start (measured in session 3's run: most of the
    gap to the oracle was in the first three days)."""
    gru_constraints: str = "static"
    """``"static"``: GRU-PPO trains under constraints set from the static scheduler measured
    on the training population (:func:`static_rates`; PPO-Lagrangian, see
    ``GRUPPOConfig.max_pushes_per_day``): pushes per user-day within ``[min_push_fraction,
    max_push_fraction]`` times the static scheduler's and opt-outs per user-day at most
    ``opt_out_fraction`` times its. The benchmark asks for more opens at no more opt-outs than
    the static scheduler, and a push volume near its own makes the gain come from timing and
    covers. ``"none"``: unconstrained (the reward alone)."""
    min_push_fraction: float = 0.5
    """Lower edge of the push-volume band, as a fraction of the static scheduler's."""
    max_push_fraction: float = 1.0
    """Upper edge of the push-volume band, as a fraction of the static scheduler's."""
    opt_out_fraction: float = 0.9
    """Opt-out limit, as a fraction of the static scheduler's opt-outs per user-day, measured on
    the training episodes (``train_horizon_days``; the static scheduler's hazard grows with its
    users' fatigue, so its rate per user-day is higher over 14 days, 0.0059 on average in the
    default run, than over 7, 0.0053). Measured in pilots (14-day episodes, 6 M steps, best
    validated policy, 1,000 test users) with limits of 0.9 and 0.8 times the 7-day rate
    (0.0047 and 0.0042 per user-day): 3.71 / 3.96 / 3.63 / 3.64 on four training seeds at
    4.5-6.4 % opt-outs (static: 7.2 %), and 3.53 / 3.75 on two (its multiplier held the push
    volume lower). With 0.9 times the 14-day rate (0.0053) the default run's GRU-PPO opted out
    5.6 % of its users against the static scheduler's 6.6 %."""
    constraint_users: int = 4000
    """Users (population vector env, one training-length episode) the static scheduler's
    rates are measured on."""
    sb3_budget: str = "wall"
    """``"wall"``: SB3 learners get GRU-PPO's wall-clock time of the same cell (capped at
    ``gru_steps`` steps); ``"steps"``: ``gru_steps`` steps."""
    sb3_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Settings of the SB3 references from a hyperparameter search
    (:func:`covercast.experiments.hpsearch.load_sb3_settings` of its ``chosen.json``;
    ``--sb3-settings``): per learner (``ppo``, ``recurrent-ppo``) the ``GRUPPOConfig`` fields
    (``"config"``: learning rate, entropy coefficient, gamma, lambda, epochs, rollout length)
    and the ``train_sb3`` arguments (``"kwargs"``: PPO's ``n_stack``, RecurrentPPO's LSTM size
    and critic) it chose. Empty (default): a learner not named trains with GRU-PPO's PPO
    settings. Stored whole in ``config.json``, so a run does not depend on the file later."""
    deterministic_learners: bool = True
    """Evaluate the learners (GRU-PPO, SB3 PPO, RecurrentPPO) greedily, with their most likely
    action at each step, as SB3's ``evaluate_policy`` does by default (``False``: sample from
    the policy as in training). The baselines act as they always do (the bandit keeps
    sampling). Measured on the demo's 300 users (six GRU-PPO runs, 14 days of seen history):
    greedy return 3.56 on average against 3.41 sampled, with fewer opt-outs. A barely trained
    policy whose push probability stays below one half in every slot never pushes when greedy:
    RecurrentPPO under the equal wall-clock budget (about 360,000 steps) returns exactly 0 so
    (``--stochastic-learners`` shows what its sampled pushes give)."""
    population: str = "default"
    """The base population (a suite name or a JSON path): the ``default`` population of the
    results, the one ``shifted`` and ``fitted`` are made from. ``"default"`` is
    ``calibrated-v1``; ``"peaked-v0"`` reproduces the runs before it (the figures in this
    module's docstring and in the README's history)."""
    bank: str = "procedural"
    """The covers of every environment of the run (training, validation, the static
    scheduler's rates, the fitted population's log, evaluation): ``"procedural"`` (the default
    bank), ``"diffusion"``, ``"vae-iat"``, ``"dcgan"`` (the bank built from that committed
    generator, :func:`covercast.generators.banks.named_bank`) or the path of a bank ``.npz``
    (``--bank``)."""
    fit_users: int = 2000
    """Users of the simulated log the fitted population is fitted to."""
    fit_days: float = 14.0
    """Days of that log."""
    workers: int = 2
    """Cells run at once (Ray CPUs or processes)."""
    fast: bool = False
    """Tiny sizes, for smoke tests (see :meth:`fast_config`)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        check_fields(self, at_least=(("seeds", 1), ("eval_users", 2), ("gru_steps", 1),
                                     ("num_envs", 2), ("fit_users", 10), ("workers", 1),
                                     ("seed", 0), ("constraint_users", 10),
                                     ("gru_eval_every", 0), ("gru_eval_users", 1)))
        if self.gru_constraints not in ("static", "none"):
            raise ValueError(f"`gru_constraints` must be 'static' or 'none', got "
                             f"{self.gru_constraints!r}.")
        if not (0 < self.min_push_fraction <= self.max_push_fraction):
            raise ValueError(f"Need 0 < `min_push_fraction` <= `max_push_fraction`, got "
                             f"{self.min_push_fraction!r} and {self.max_push_fraction!r}.")
        check_history_days(self.history_days)
        from covercast.generators.banks import check_bank_spec

        check_bank_spec(self.bank)
        if not (isinstance(self.population, str) and self.population):
            raise ValueError(f"`population` must be a suite name or a JSON path, got "
                             f"{self.population!r}.")
        for name in ("horizon_days", "train_horizon_days", "fit_days", "max_push_fraction",
                     "opt_out_fraction"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"`{name}` must be a number > 0, got {v!r}.")
        bad = [p for p in self.policies if p not in POLICIES]
        if bad or not self.policies:
            raise ValueError(f"`policies` must be a non-empty subset of {list(POLICIES)}, got "
                             f"{self.policies!r}.")
        bad = [p for p in self.fitted_learners if p not in LEARNERS]
        if bad:
            raise ValueError(f"`fitted_learners` must be a subset of {list(LEARNERS)}, got "
                             f"{self.fitted_learners!r}.")
        if not isinstance(self.deterministic_learners, (bool, np.bool_)):
            raise ValueError(f"`deterministic_learners` must be a bool, got "
                             f"{self.deterministic_learners!r}.")
        if self.sb3_budget not in ("wall", "steps"):
            raise ValueError(f"`sb3_budget` must be 'wall' or 'steps', got {self.sb3_budget!r}.")
        _check_sb3_settings(self.sb3_settings)

    @classmethod
    def fast_config(cls, **overrides: Any) -> SchedulingConfig:
        """Tiny budgets: 2 seeds, 6 users x 2 days, 1,536 training steps (16 validation users),
        a 150-user, 7-day fit."""
        kw: dict[str, Any] = dict(seeds=2, eval_users=6, horizon_days=2.0, gru_steps=1536,
                                  num_envs=8, train_horizon_days=1.0, fit_users=150,
                                  fit_days=7.0, constraint_users=100, gru_eval_users=16,
                                  fast=True)
        kw.update(overrides)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ================================================================================== populations
def shifted_params(base: PopulationParams | None = None, *, hours_later: int = 2
                   ) -> PopulationParams:
    """The held-out population: ``base`` (default: the default population) with the segment mix
    moved towards night owls (weights 0.20 / 0.30 / 0.50 for the default's three segments, else
    the weights reversed), every organic activity profile ``hours_later`` hours later, the
    fatigue half-life x1.5 and the opt-out hazard's fatigue coefficient x1.5.
    """
    p = default_params() if base is None else base
    if isinstance(hours_later, bool) or not isinstance(hours_later, int):
        raise ValueError(f"`hours_later` must be an integer, got {hours_later!r}.")
    n = len(p.segments)
    if n == 3:
        weights = [0.20, 0.30, 0.50]
    else:
        w = np.array([s.weight for s in p.segments])[::-1]
        weights = list(w / w.sum())
    segments = [dataclasses.replace(s, weight=float(w),
                                    activity=list(np.roll(np.asarray(s.activity), hours_later)))
                for s, w in zip(p.segments, weights, strict=True)]
    out = dataclasses.replace(
        p, segments=segments,
        fatigue=dataclasses.replace(p.fatigue, half_life_h=p.fatigue.half_life_h * 1.5),
        opt_out=dataclasses.replace(p.opt_out, fatigue_coef=p.opt_out.fatigue_coef * 1.5),
        name=f"{p.name}-shifted", source=f"covercast.experiments.scheduling.shifted_params("
                                         f"hours_later={hours_later})")
    out.validate()
    return out


def fitted_params(users: int, days: float, seed: int, *, progress: bool = False,
                  truth: PopulationParams | None = None, bank: Any = None) -> PopulationParams:
    """A population fitted to a simulated log of ``users`` users of ``truth`` (default: the
    default population) over ``days`` days under the uniformly random logging policy (push
    probability 2/24, random style), with the covers of ``bank`` (a bank or its name; default
    procedural) in the log and the fit."""
    from covercast.envs.base import resolve_bank
    from covercast.simulators.fit import fit_population
    from covercast.simulators.policies import UniformRandomPolicy
    from covercast.simulators.population import simulate_log

    truth = default_params() if truth is None else truth
    covers = resolve_bank(bank, truth)
    log = simulate_log(truth, UniformRandomPolicy(push_prob=2 / 24, n_styles=len(truth.styles)),
                       days=days, n_users=int(users), seed=int(seed), progress=progress,
                       bank=covers)
    return fit_population(log, n_segments=len(truth.segments), bank=covers,
                          seed=int(seed), progress=progress)


def build_populations(out: Path, config: SchedulingConfig, *, progress: bool = False
                      ) -> dict[str, PopulationParams]:
    """``{"default", "fitted", "shifted"}`` populations, saved in ``out/populations/`` (an
    existing ``fitted.json`` is reused)."""
    d = out / "populations"
    d.mkdir(parents=True, exist_ok=True)
    from covercast.simulators.suite import load_population

    base = load_population(config.population)
    pops = {"default": base, "shifted": shifted_params(base)}
    path = d / "fitted.json"
    if path.exists():
        pops["fitted"] = PopulationParams.load(path)
    else:
        fit_seed = int(np.random.SeedSequence([config.seed, 10**6]).generate_state(1)[0])
        pops["fitted"] = fitted_params(config.fit_users, config.fit_days, fit_seed,
                                       progress=progress, truth=base, bank=config.bank)
    for name, p in pops.items():
        p.save(d / f"{name}.json")
    return pops


# ================================================================================== agents
def make_baselines(seed: int, names: Sequence[str]) -> dict[str, Any]:
    """The non-learning policies among ``names``, seeded from ``seed``."""
    from covercast.agents import (
        ActivityHeuristic,
        HiddenStateOracle,
        RandomAgent,
        StaticScheduler,
        ThompsonStyleAgent,
    )

    s = [int(x) for x in np.random.SeedSequence([seed, 7]).generate_state(5)]
    makers: dict[str, Callable[[], Any]] = {
        "random": lambda: RandomAgent(push_prob=2 / 24, seed=s[0], name="random"),
        "static": lambda: StaticScheduler(hours=STATIC_HOURS, style=0, seed=s[1],
                                          name="static"),
        "heuristic": lambda: ActivityHeuristic(pushes_per_day=2, seed=s[2], name="heuristic"),
        "bandit": lambda: ThompsonStyleAgent(seed=s[3], name="bandit"),
        "oracle": lambda: HiddenStateOracle(seed=s[4], name="oracle"),
    }
    return {n: makers[n]() for n in names if n in makers}


def _seeds(config: SchedulingConfig, i: int) -> tuple[int, int]:
    """(training seed, evaluation seed) of replication ``i``."""
    a, b = np.random.SeedSequence([config.seed, i]).generate_state(2)
    return int(a) % 2**31, int(b)


def _gru_config(config: SchedulingConfig, seed: int, **constraints: float) -> Any:
    from covercast.agents.gru_ppo import GRUPPOConfig

    return GRUPPOConfig(env_id="covercast/PopulationVector-v0", num_envs=config.num_envs,
                        horizon_days=config.train_horizon_days, total_steps=config.gru_steps,
                        num_minibatches=min(4, config.num_envs), tensorboard=False, seed=seed,
                        torch_threads=1,
                        env_kwargs={**_history_kwargs(config.history_days),
                                    **bank_kwargs(config.bank)},
                        eval_every=config.gru_eval_every, eval_users=config.gru_eval_users,
                        eval_horizon_days=config.horizon_days,
                        eval_deterministic=config.deterministic_learners, **constraints)


def _history_kwargs(history_days: float) -> dict[str, Any]:
    """The environments' ``history_days`` argument, left out when 0 (their default)."""
    return {"history_days": float(history_days)} if history_days else {}


def static_rates(params: PopulationParams | None, *, users: int, horizon_days: float,
                 seed: int, history_days: float = 0.0, bank: str | None = None
                 ) -> dict[str, float]:
    """The static scheduler's pushes and opt-outs per user-day on a population.

    Runs :class:`~covercast.agents.StaticScheduler` (the benchmark's control) on ``users``
    users of the population vector env for one ``horizon_days`` episode and divides the
    delivered pushes and the opt-outs by the user-days simulated (an opted-out user counts the
    days until the opt-out): the same rates GRU-PPO's constraints are measured in.
    """
    from covercast.experiments.evaluate import evaluate_vector

    agent = make_baselines(seed, ["static"])["static"]
    kw: dict[str, Any] = {"horizon_days": horizon_days, **_history_kwargs(history_days),
                          **bank_kwargs(bank)}
    if params is not None:
        kw["params"] = params
    df = evaluate_vector(agent, users, seed, env_kwargs=kw)
    days = float(df["days"].sum())
    return {"pushes_per_day": float(df["pushes"].sum()) / days,
            "opt_outs_per_day": float(df["opted_out"].sum()) / days,
            "users": int(users), "user_days": days}


def gru_constraints(config: SchedulingConfig, params: PopulationParams | None, seed: int
                    ) -> tuple[dict[str, float], dict[str, Any]]:
    """GRU-PPO's constraint fields for a cell (see ``SchedulingConfig.gru_constraints``) and
    the facts they were set from."""
    if config.gru_constraints == "none":
        return {}, {"mode": "none"}
    rates = static_rates(params, users=config.constraint_users,
                         horizon_days=config.train_horizon_days, seed=seed,
                         history_days=config.history_days, bank=config.bank)
    fields = {"min_pushes_per_day": config.min_push_fraction * rates["pushes_per_day"],
              "max_pushes_per_day": config.max_push_fraction * rates["pushes_per_day"]}
    if rates["opt_outs_per_day"] > 0:
        fields["max_opt_outs_per_day"] = config.opt_out_fraction * rates["opt_outs_per_day"]
    return fields, {"mode": "static", "static": rates, **fields}


def _train_gru(config: SchedulingConfig, params: PopulationParams | None, seed: int,
               out: Path, progress: bool) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    from covercast.agents.gru_ppo import GRUPPOTrainer

    constraints, constraint_facts = gru_constraints(config, params, seed)
    t0 = time.perf_counter()
    curve: list[dict[str, Any]] = []

    def record(row: dict[str, float]) -> bool:
        ev = trainer.evals[-1] if trainer.evals else None
        curve.append({"global_step": int(row["global_step"]),
                      "seconds": time.perf_counter() - t0,
                      "episode_return": row.get("episode_return", math.nan),
                      "ctr": row.get("ctr", math.nan),
                      "opt_out_rate": row.get("opt_out_rate", math.nan),
                      "pushes_per_day": row.get("pushes_per_day", math.nan),
                      "validation_return": ev["return"] if ev is not None and
                      ev["iteration"] == row["iteration"] else math.nan})
        return True

    trainer = GRUPPOTrainer(_gru_config(config, seed, **constraints), params=params, out=out,
                            progress=progress)
    trainer.train(callback=record)
    seconds = time.perf_counter() - t0
    last = trainer.history[-1] if trainer.history else {}
    facts = {"steps": int(trainer.global_step), "seconds": seconds,
             "constraints": constraint_facts, "multipliers": dict(trainer.lagrange),
             "collapse": trainer.collapse or "none",
             "collapsed_iterations": sum(1 for r in trainer.history if r.get("collapse")),
             "final_pushes_per_day": float(last.get("pushes_per_day", math.nan)),
             "final_greedy_pushes_per_day": float(last.get("greedy_pushes_per_day", math.nan))}
    best = trainer.best
    if best is not None:
        facts.update({"selected_step": int(best["global_step"]),
                      "selected_validation_return": best["return"],
                      "selected_feasible": bool(best["feasible"]),
                      "push_threshold": best.get("push_threshold"),
                      "calibrated_validation_return": best.get("calibrated_return"),
                      "final_validation_return": trainer.evals[-1]["return"]})
    which = "final" if best is None else "best"
    return trainer.agent(seed=seed, name="gru-ppo", which=which), curve, facts


def _train_sb3(algo: str, config: SchedulingConfig, params: PopulationParams | None, seed: int,
               out: Path, wall_budget: float | None, progress: bool
               ) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """Train an SB3 reference with :func:`covercast.agents.sb3.train_sb3` (at most
    ``gru_steps`` steps) with a callback that records the learning curve at each rollout's end
    and stops at the wall-clock budget (checked every step; a rollout already collected is
    still learned from). The untrained policy starts at GRU-PPO's push probability. The
    PPO settings are GRU-PPO's unless ``config.sb3_settings`` names ``algo``."""
    from stable_baselines3.common.callbacks import BaseCallback

    from covercast.agents.sb3 import train_sb3

    chosen = config.sb3_settings.get(algo, {})
    cfg = dataclasses.replace(_gru_config(config, seed), **chosen.get("config", {}))
    t0 = time.perf_counter()
    curve: list[dict[str, Any]] = []
    out.mkdir(parents=True, exist_ok=True)

    def record(model: Any) -> None:
        buf = list(model.ep_info_buffer or [])
        curve.append({"global_step": int(model.num_timesteps),
                      "seconds": time.perf_counter() - t0,
                      "episode_return": float(np.mean([e["r"] for e in buf])) if buf else math.nan,
                      "ctr": math.nan, "opt_out_rate": math.nan, "pushes_per_day": math.nan})

    class Curve(BaseCallback):
        """Record the curve after each rollout; stop past the wall-clock budget."""

        def _on_step(self) -> bool:
            return wall_budget is None or time.perf_counter() - t0 < wall_budget

        def _on_rollout_end(self) -> None:
            record(self.model)

    agent = train_sb3(algo, dataclasses.replace(cfg, total_steps=config.gru_steps),
                      params=params, out=out, progress=progress, callback=Curve(),
                      **chosen.get("kwargs", {}))
    record(agent.model)
    seconds = time.perf_counter() - t0
    atomic_write_text(out / "config.json", json.dumps(
        {**cfg.to_dict(), "total_steps": int(agent.model.num_timesteps)}, indent=2))
    agent.name = algo
    return agent, curve, {"steps": int(agent.model.num_timesteps), "seconds": seconds}


# ================================================================================== cells
def _evaluate(agents: dict[str, Any], params: PopulationParams, config: SchedulingConfig,
              eval_seed: int) -> pd.DataFrame:
    from covercast.experiments.evaluate import evaluate_agents

    frames = [evaluate_agents({label: agent}, "covercast/PushSchedule-v0", config.eval_users,
                              eval_seed, env_kwargs={"horizon_days": config.horizon_days,
                                                     "params": params,
                                                     **_history_kwargs(config.history_days),
                                                     **bank_kwargs(config.bank)},
                              learning="continual",
                              deterministic=config.deterministic_learners and label in LEARNERS)
              for label, agent in agents.items()]
    return pd.concat(frames, ignore_index=True)


def run_cell(task: dict[str, Any]) -> dict[str, Any]:
    """Run one cell: train the learners of ``task`` on its training population, evaluate the
    policies on its evaluation populations, write ``episodes.csv``, ``curves.csv`` and
    ``cell.json`` in ``task["dir"]``; return the contents of ``cell.json``.

    ``task`` (JSON-serialisable, so that it travels to Ray workers and processes): ``config``
    (:meth:`SchedulingConfig.to_dict`), ``index`` (the seed index), ``train_population``,
    ``learners``, ``baselines``, ``evaluate_on`` (population names), ``populations`` (name ->
    :meth:`PopulationParams.to_dict`), ``dir`` and ``progress``.
    """
    import torch

    torch.set_num_threads(1)
    config = SchedulingConfig(**task["config"])
    d = Path(task["dir"])
    d.mkdir(parents=True, exist_ok=True)
    pops = {k: PopulationParams.from_dict(v) for k, v in task["populations"].items()}
    train_pop = task["train_population"]
    progress = bool(task.get("progress", False))
    train_seed, eval_seed = _seeds(config, int(task["index"]))
    t_start = time.perf_counter()
    learned: dict[str, Any] = {}
    curves: list[pd.DataFrame] = []
    facts: dict[str, Any] = {}
    params = pops[train_pop]
    gru_seconds = None
    for algo in [a for a in LEARNERS if a in task["learners"]]:
        if algo == "gru-ppo":
            agent, curve, f = _train_gru(config, params, train_seed, d / "gru_ppo", progress)
            gru_seconds = f["seconds"]
        else:
            budget = gru_seconds if config.sb3_budget == "wall" else None
            agent, curve, f = _train_sb3(algo, config, params, train_seed, d / algo, budget,
                                         progress)
        learned[algo] = agent
        facts[algo] = f
        c = pd.DataFrame(curve)
        c.insert(0, "learner", algo)
        curves.append(c)
    t_train = time.perf_counter() - t_start
    frames = []
    for pop in task["evaluate_on"]:
        agents = make_baselines(eval_seed, task["baselines"])
        agents.update(learned)
        ordered = {k: agents[k] for k in POLICIES if k in agents}
        df = _evaluate(ordered, pops[pop], config, eval_seed)
        label = "fitted" if train_pop == "fitted" else pop
        df.insert(0, "population", label)
        df.insert(1, "train_population", [train_pop if a in learned else "-" for a in
                                          df["agent"]])
        df.insert(2, "seed_index", int(task["index"]))
        frames.append(df)
    episodes = pd.concat(frames, ignore_index=True).rename(columns={"agent": "policy"})
    atomic_write_csv(episodes, d / "episodes.csv")
    curve_df = (pd.concat(curves, ignore_index=True) if curves else
                pd.DataFrame(columns=["learner", "global_step", "seconds", "episode_return",
                                      "ctr", "opt_out_rate", "pushes_per_day",
                                      "validation_return"]))
    curve_df.insert(1, "train_population", train_pop)
    curve_df.insert(2, "seed_index", int(task["index"]))
    atomic_write_csv(curve_df, d / "curves.csv")
    info = {"index": int(task["index"]), "train_population": train_pop,
            "train_seed": train_seed, "eval_seed": eval_seed, "learners": facts,
            "train_seconds": t_train, "seconds": time.perf_counter() - t_start}
    atomic_write_text(d / "cell.json", json.dumps(info, indent=2) + "\n")
    return info


def _tasks(out: Path, config: SchedulingConfig, pops: dict[str, PopulationParams],
           progress: bool) -> list[dict[str, Any]]:
    pol = [p for p in POLICIES if p in set(config.policies) | {"static"}]
    learners = [p for p in LEARNERS if p in pol]
    baselines = [p for p in pol if p not in LEARNERS]
    pdicts = {k: v.to_dict() for k, v in pops.items()}
    tasks = []
    for i in range(config.seeds):
        tasks.append({"config": config.to_dict(), "index": i, "train_population": "default",
                      "learners": learners, "baselines": baselines,
                      "evaluate_on": ["default", "shifted"], "populations": pdicts,
                      "dir": str(out / "cells" / f"seed{i}_default"), "progress": progress})
    fl = [p for p in learners if p in config.fitted_learners]
    if fl:
        for i in range(config.seeds):
            tasks.append({"config": config.to_dict(), "index": i, "train_population": "fitted",
                          "learners": fl, "baselines": [], "evaluate_on": ["default"],
                          "populations": pdicts,
                          "dir": str(out / "cells" / f"seed{i}_fitted"), "progress": progress})
    return tasks


def _run_tasks(tasks: list[dict[str, Any]], backend: str, workers: int, address: str | None,
               progress: bool, run: Callable[[dict[str, Any]], Any] | None = None) -> str:
    """Run the cells not yet done with ``run`` (default :func:`run_cell`); return the backend
    used."""
    run = run_cell if run is None else run
    from tqdm.auto import tqdm

    todo = [t for t in tasks if not (Path(t["dir"]) / "cell.json").exists()]
    if backend not in ("auto", "ray", "process", "sequential"):
        raise ValueError(f"`backend` must be auto, ray, process or sequential, got {backend!r}.")
    if backend in ("auto", "ray"):
        try:
            import ray
        except ImportError:
            if backend == "ray" or address:
                raise ImportError("Ray is not installed: pip install 'covercast[tune]', or run "
                                  "with --backend process.") from None
            backend = "process"
        else:
            backend = "ray"
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=f"cells ({backend})",
               unit="cell", disable=not progress)
    try:
        if not todo:
            return backend
        if backend == "sequential" or (backend == "process" and workers == 1):
            for t in todo:
                run({**t, "progress": progress})
                bar.update(1)
        elif backend == "process":
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(max_workers=workers,
                                     mp_context=mp.get_context("spawn")) as ex:
                futs = [ex.submit(run, {**t, "progress": False}) for t in todo]
                for f in as_completed(futs):
                    f.result()
                    bar.update(1)
        else:
            started = not ray.is_initialized()
            if started:
                kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
                if address:
                    try:
                        ray.init(address=address, **kw)
                    except ConnectionError as e:
                        raise ValueError(
                            f"Cannot connect to the Ray cluster at `--address` {address} ({e}). "
                            "Start it with `ray start --head` on that machine; with Ray's "
                            "token authentication (RAY_AUTH_MODE=token), give this process the "
                            "cluster's token in RAY_AUTH_TOKEN.") from None
                else:
                    ray.init(num_cpus=workers, **kw)
            try:
                # a cell whose worker dies is run again elsewhere (its files are written
                # atomically, cell.json last, so a dead attempt leaves nothing that passes for
                # finished; a rerun of the command skips the cells that have cell.json)
                remote = ray.remote(num_cpus=1, max_retries=3)(run)
                pending = [remote.remote({**t, "progress": False}) for t in todo]
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1)
                    ray.get(ready[0])
                    bar.update(1)
            finally:
                if started:
                    ray.shutdown()
    finally:
        bar.close()
    return backend


# ================================================================================== results
def population_stats(episodes: pd.DataFrame, control: str, metrics: Sequence[str] = METRICS,
                     paired_metrics: Sequence[str] | None = None
                     ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The statistics of a benchmark's per-user episodes (columns ``population``, ``policy``,
    ``seed_index``, ``episode`` and ``metrics``): ``(seed_means, summary, vs_control,
    paired_vs_control)``.

    ``seed_means`` has one row per (population, policy, seed): metrics averaged over the
    seed's users, CTR pooled (opens / pushes). Per population, ``summary`` is the mean over
    seeds with its 95 % t interval, ``vs_control`` Welch's test of each policy against
    ``control`` over seeds (where the control ran on >= 2 seeds; Holm-adjusted), and
    ``paired_vs_control`` the paired test over users (the same seed and episode index) of
    ``paired_metrics`` (default: ``metrics``).
    """
    from covercast.experiments.stats import compare, summarize

    rows = []
    for (pop, pol, s), g in episodes.groupby(["population", "policy", "seed_index"],
                                              sort=False):
        row: dict[str, Any] = {"population": pop, "policy": pol, "seed_index": s,
                               "users": len(g)}
        for m in metrics:
            if m == "ctr":
                pushes = g["pushes"].sum()
                row[m] = g["opens"].sum() / pushes if pushes else math.nan
            else:
                row[m] = float(g[m].astype(float).mean())
        rows.append(row)
    means = pd.DataFrame(rows)
    summaries, comps, paired = [], [], []
    empty = pd.DataFrame(columns=["population", "agent", "metric"])
    for pop, g in means.groupby("population", sort=False):
        summaries.append(summarize(g, by="policy", metrics=list(metrics), intervals="t"))
        summaries[-1].insert(0, "population", pop)
        if control not in set(g["policy"]):
            continue
        if g["seed_index"].nunique() >= 2:
            comps.append(compare(g, baseline=control, by="policy", metrics=list(metrics)))
            comps[-1].insert(0, "population", pop)
        e = episodes[episodes["population"] == pop].copy()
        e["pair"] = e["seed_index"].astype(np.int64) * 1_000_000 + e["episode"]
        paired.append(compare(e, baseline=control, by="policy", paired=True, pair_on="pair",
                              metrics=list(metrics if paired_metrics is None
                                           else paired_metrics)))
        paired[-1].insert(0, "population", pop)
    return (means, pd.concat(summaries, ignore_index=True),
            pd.concat(comps, ignore_index=True) if comps else empty,
            pd.concat(paired, ignore_index=True) if paired else empty)


def _with_fitted_baselines(episodes: pd.DataFrame) -> pd.DataFrame:
    """The ``fitted`` population's rows plus the baselines' ``default`` rows (same users)."""
    fitted = episodes[episodes["population"] == "fitted"]
    if fitted.empty:
        return episodes
    base = episodes[(episodes["population"] == "default")
                    & ~episodes["policy"].isin(set(fitted["policy"]))
                    & ~episodes["policy"].isin(LEARNERS)].copy()
    base["population"] = "fitted"
    return pd.concat([episodes, base], ignore_index=True)


def aggregate(out: str | os.PathLike) -> dict[str, Path]:
    """Collect the cells of ``out`` into ``episodes.csv``, ``seed_means.csv``, ``summary.csv``
    (mean over seeds, 95 % CI), ``vs_static.csv`` (Welch over seeds, Holm),
    ``paired_vs_static.csv`` (paired over users), ``curves.csv`` and ``cells.csv``."""
    out = Path(out)
    cell_dirs = sorted(p for p in (out / "cells").glob("*") if (p / "cell.json").exists())
    if not cell_dirs:
        raise FileNotFoundError(f"No finished cells in {out / 'cells'}; run the experiment "
                                "first.")
    episodes = pd.concat([pd.read_csv(p / "episodes.csv") for p in cell_dirs],
                         ignore_index=True)
    episodes = _with_fitted_baselines(episodes)
    curves = pd.concat([pd.read_csv(p / "curves.csv") for p in cell_dirs], ignore_index=True)
    cells = pd.DataFrame([json.loads((p / "cell.json").read_text()) for p in cell_dirs])
    learner_rows = [{"index": c["index"], "train_population": c["train_population"],
                     "learner": k, **_flat_facts(v)} for c in cells.to_dict("records")
                    for k, v in c["learners"].items()]
    means, summary, comps, paired = population_stats(episodes, "static")
    paths = {k: out / f"{k}.csv" for k in ("episodes", "seed_means", "summary", "vs_static",
                                           "paired_vs_static", "curves", "learners")}
    atomic_write_csv(episodes, paths["episodes"])
    atomic_write_csv(means, paths["seed_means"])
    atomic_write_csv(summary, paths["summary"])
    atomic_write_csv(comps, paths["vs_static"])
    atomic_write_csv(paired, paths["paired_vs_static"])
    atomic_write_csv(curves, paths["curves"])
    atomic_write_csv(pd.DataFrame(learner_rows), paths["learners"])
    return paths


def _flat_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """One learner's facts of a cell as flat CSV columns (constraints and multipliers of a
    constrained GRU-PPO run spread out: ``static_pushes_per_day``, ``max_pushes_per_day``,
    ``lambda_max_pushes``, ...)."""
    row = {k: v for k, v in facts.items() if k not in ("constraints", "multipliers")}
    cons = facts.get("constraints") or {}
    if cons:
        row["constraints"] = cons.get("mode", "none")
        row.update({f"static_{k}": v for k, v in (cons.get("static") or {}).items()
                    if k in ("pushes_per_day", "opt_outs_per_day")})
        row.update({k: v for k, v in cons.items() if k.endswith("_per_day")})
    row.update({f"lambda_{k}": v for k, v in (facts.get("multipliers") or {}).items()})
    return row


def _cell(summary: pd.DataFrame, pop: str, pol: str, m: str) -> pd.Series | None:
    r = summary[(summary["population"] == pop) & (summary["policy"] == pol)
                & (summary["metric"] == m)]
    return None if r.empty else r.iloc[0]


def target_check(out: str | os.PathLike, *, min_seeds: int = 5) -> dict[str, Any]:
    """Issue 5's target (point 6) from the saved results: a dict of named checks, each with
    ``pass`` and the figures, and ``all_pass``; written to ``target.json``."""
    out = Path(out)
    summary = pd.read_csv(out / "summary.csv")
    comp = pd.read_csv(out / "vs_static.csv")
    learners = pd.read_csv(out / "learners.csv")
    checks: dict[str, Any] = {}

    def mean(pol: str, m: str) -> float:
        r = _cell(summary, "default", pol, m)
        return math.nan if r is None else float(r["mean"])

    n_seeds = int(_cell(summary, "default", "gru-ppo", "return")["n"]) \
        if _cell(summary, "default", "gru-ppo", "return") is not None else 0
    c = comp[(comp["population"] == "default") & (comp["agent"] == "gru-ppo")
             & (comp["metric"] == "ctr")]
    lift = float(c["lift"].iloc[0]) if not c.empty else math.nan
    p = float(c["p"].iloc[0]) if not c.empty else math.nan
    checks["ctr_lift"] = {"gru_ppo_ctr": mean("gru-ppo", "ctr"),
                          "static_ctr": mean("static", "ctr"),
                          "lift": lift, "target": CTR_LIFT_TARGET,
                          "pass": bool(lift >= CTR_LIFT_TARGET)}
    checks["significance"] = {"welch_p": p, "seeds": n_seeds, "min_seeds": min_seeds,
                              "pass": bool(p < 0.01 and n_seeds >= min_seeds)}
    for m, direction in (("opens", ">="), ("dwell_min", ">="), ("opted_out", "<=")):
        g, s = mean("gru-ppo", m), mean("static", m)
        ok = g >= s if direction == ">=" else g <= s
        checks[f"{m}_not_worse"] = {"gru_ppo": g, "static": s, "rule": f"gru-ppo {direction} "
                                    "static (means over seeds)", "pass": bool(ok)}
    g, o = mean("gru-ppo", "return"), mean("oracle", "return")
    checks["oracle_gap"] = {"gru_ppo_return": g, "oracle_return": o,
                            "ratio": g / o if o else math.nan,
                            "pass": bool(o > 0 and g >= 0.9 * o)}
    lt = learners[(learners["learner"] == "gru-ppo")
                  & (learners["train_population"] == "default")]
    sec = float(lt["seconds"].mean()) if not lt.empty else math.nan
    checks["training_time"] = {"seconds_mean": sec,
                               "steps": int(lt["steps"].mean()) if not lt.empty else 0,
                               "limit_s": 900, "pass": bool(sec <= 900)}
    fast = bool(json.loads((out / "config.json").read_text()).get("fast", False)) \
        if (out / "config.json").is_file() else False
    res = {"checks": checks, "all_pass": all(v["pass"] for v in checks.values()),
           "assessed": not fast,
           "why_not_assessed": "a --fast smoke run: its sizes are too small for the targets"
           if fast else None}
    atomic_write_text(out / "target.json", json.dumps(res, indent=2, default=float) + "\n")
    return res


def _fmt(r: pd.Series | None, f: float = 1.0, unit: str = "") -> str:
    if r is None or not np.isfinite(r["mean"]):
        return "n/a"
    if not (np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"])):
        return f"{f * r['mean']:.3g}{unit}"
    return (f"{f * r['mean']:.3g}{unit} ± {f * (r['ci_high'] - r['mean']):.2g}")


def results_table(summary: pd.DataFrame, comp: pd.DataFrame, pop: str) -> pd.DataFrame:
    """Markdown-ready table of one population: mean ± 95 % CI half-width over seeds, Holm
    p-values (Welch, over seeds) against the static scheduler."""
    rows = []
    cols = [("return", "return", 1.0, ""), ("ctr", "CTR", 100.0, " %"),
            ("opens", "opens/user", 1.0, ""), ("pushes_per_day", "pushes/day", 1.0, ""),
            ("dwell_min", "dwell min/user", 1.0, ""), ("opted_out", "opt-out", 100.0, " %"),
            ("satisfaction", "satisfaction /5", 1.0, "")]
    for pol in [p for p in POLICIES if p in set(summary.loc[summary["population"] == pop,
                                                             "policy"])]:
        row: dict[str, Any] = {"policy": pol}
        for m, label, f, unit in cols:
            row[label] = _fmt(_cell(summary, pop, pol, m), f, unit)
        for m, label in (("ctr", "CTR lift"), ("return", "p return"), ("ctr", "p CTR")):
            c = comp[(comp["population"] == pop) & (comp["agent"] == pol)
                     & (comp["metric"] == m)]
            if c.empty:
                row[label] = ""
            elif label == "CTR lift":
                lift = c["lift"].iloc[0]        # NaN: the policy never pushed (no CTR)
                row[label] = f"{100 * lift:+.1f} %" if np.isfinite(lift) else "n/a"
            else:
                p_holm = c["p_holm"].iloc[0]
                row[label] = f"{p_holm:.2g}" if np.isfinite(p_holm) else "n/a"
        rows.append(row)
    return pd.DataFrame(rows)


def _figures(out: Path) -> list[str]:
    plt = pyplot()

    summary = pd.read_csv(out / "summary.csv")
    curves = pd.read_csv(out / "curves.csv")
    config = json.loads((out / "config.json").read_text())
    pops = [p for p in POPULATIONS if p in set(summary["population"])]
    names = []
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    width = 0.8 / max(len(pops), 1)
    for ax, (m, label, f) in zip(axes, [("ctr", "CTR (%)", 100.0),
                                        ("return", "return per user", 1.0)], strict=True):
        pols = [p for p in POLICIES if p in set(summary["policy"])]
        x = np.arange(len(pols))
        for k, pop in enumerate(pops):
            g = summary[(summary["population"] == pop) & (summary["metric"] == m)]
            g = g.set_index("policy").reindex(pols)
            err = np.nan_to_num(np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]]))
            ax.bar(x + (k - (len(pops) - 1) / 2) * width, f * g["mean"], width=width,
                   yerr=f * err, capsize=2, label=pop, color=f"C{k}")
        ax.set_xticks(x, pols, rotation=30, ha="right")
        ax.set(ylabel=label)
        ax.legend(fontsize=8, title="population", title_fontsize=8)
    axes[0].set_title("mean over seeds, 95 % CI", fontsize=9, loc="left")
    fig.tight_layout()
    names.append(save_figure(fig, out / "ctr_return_by_policy.png"))

    if not curves.empty:
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
        for k, ((learner, tp), g) in enumerate(curves.groupby(["learner", "train_population"],
                                                              sort=False)):
            for ax, xcol in zip(axes, ("global_step", "seconds"), strict=True):
                for j, (_, gs) in enumerate(g.groupby("seed_index")):
                    ax.plot(gs[xcol], gs["episode_return"], color=f"C{k}", alpha=0.7, lw=1,
                            label=f"{learner} (trained on {tp})" if j == 0 else None)
                    if "validation_return" in gs and gs["validation_return"].notna().any():
                        v = gs[gs["validation_return"].notna()]
                        ax.plot(v[xcol], v["validation_return"], ls="none", marker="o", ms=3.5,
                                color=f"C{k}", mec="k", mew=0.4, zorder=3, label=(
                                    f"{learner} (trained on {tp}): validation, greedy, "
                                    f"{int(config.get('horizon_days', 0))}-day users"
                                    if j == 0 and xcol == "global_step" else None))
        axes[0].set(xlabel="env-steps", ylabel="mean return per user",
                    title="Learning curves (lines: training episodes; dots: validation)")
        axes[1].set(xlabel="seconds", ylabel="mean return per user",
                    title="Against wall-clock time")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        names.append(save_figure(fig, out / "learning_curves.png"))
    return names


def _history_words(days: float) -> str:
    if not days:
        return ("new users (`history_days` 0: the platform has seen none of a user's sessions "
                "when the episode starts)")
    return (f"existing users (`history_days` {days:g}: the platform has seen {days:g} days of "
            f"each user's organic sessions when the episode starts, in training and "
            f"evaluation)")


def write_report(out: str | os.PathLike) -> Path:
    """Write ``report.md`` and ``target.md`` (and the figures) from the saved results."""
    out = Path(out)
    config = json.loads((out / "config.json").read_text())
    summary = pd.read_csv(out / "summary.csv")
    comp = pd.read_csv(out / "vs_static.csv")
    learners = pd.read_csv(out / "learners.csv")
    target = target_check(out)
    figs = _figures(out)
    acts = ("greedily (their most likely action)" if config.get("deterministic_learners")
            else "by sampling from their policies")
    lines = ["# Scheduling benchmark\n",
             f"{config['seeds']} seeds x {config['eval_users']} users x "
             f"{config['horizon_days']:g}-day episodes per policy and population on "
             f"`covercast/PushSchedule-v0`, "
             f"{_history_words(config.get('history_days', 0.0))}, covers from the "
             f"**{config.get('bank', 'procedural')}** bank; the learners act "
             f"{acts} in evaluation. Configuration: `config.json`; module docstring of "
             f"`covercast.experiments.scheduling` for the design. Values: mean over seeds ± "
             f"half-width of the 95 % t-interval (per-seed means over users; CTR pooled per "
             f"seed). p: Welch t-test against the static scheduler over seed means, "
             f"Holm-adjusted across the policies of the population (`vs_static.csv`; user-level "
             f"paired tests: `paired_vs_static.csv`). The **oracle reads the hidden state**: an "
             f"upper reference, not a deployable policy. The **bandits** are evaluated with "
             f"`learning=\"continual\"`: one posterior that keeps learning across the "
             f"evaluation users, as a deployed bandit does (so their users are not "
             f"independent replications).\n"]
    titles = {"default": "Default population (learners trained on it)",
              "fitted": "Learners trained on the population fitted from a simulated log, "
                        "evaluated on the true default population",
              "shifted": "Shifted population, held out from training"}
    for pop in [p for p in POPULATIONS if p in set(summary["population"])]:
        lines += [f"## {titles[pop]}\n", md_frame(results_table(summary, comp, pop)), ""]
    lt = learners.groupby(["learner", "train_population"], sort=False)[["steps", "seconds"]]\
        .mean().reset_index()
    budget = ("equal wall-clock with GRU-PPO in the same cell, at most its steps; SB3 finishes "
              "the rollout it is in" if config["sb3_budget"] == "wall" else
              "equal env-steps, rounded up to whole SB3 rollouts")
    lines += ["## Training budgets (means over seeds)\n", md_frame(lt), "",
              f"SB3 budget: `{config['sb3_budget']}` ({budget}).\n", _sb3_settings_md(config)]
    lines += _constraints_md(learners, config)
    lines += _selection_md(learners, config)
    lines += [
              "## Issue 5 target (point 6)\n", _target_md(target), ""]
    lines += [f"![{f}]({f})\n" for f in figs]
    atomic_write_text(out / "target.md", "# Issue 5 target\n\n" + _target_md(target) + "\n")
    atomic_write_text(out / "report.md", "\n".join(lines))
    return out / "report.md"


def _sb3_settings_md(config: dict[str, Any]) -> str:
    """The report's line on where the SB3 references' settings come from."""
    chosen = config.get("sb3_settings") or {}
    if not chosen:
        return ("SB3 settings: GRU-PPO's PPO settings (learning rate, entropy coefficient, "
                "gamma, lambda, epochs), untuned for the libraries.\n")
    parts = [f"`{k}` trial {v.get('trial', '?')} of `{v.get('source', '?')}`: "
             f"{json.dumps({**v.get('config', {}), **v.get('kwargs', {})})}"
             for k, v in chosen.items()]
    return ("SB3 settings, chosen by the hyperparameter search (`covercast experiment "
            "hpsearch`, equal trials and steps per learner, training population only): "
            + "; ".join(parts) + ". Learners not named use GRU-PPO's PPO settings.\n")


def _selection_md(learners: pd.DataFrame, config: dict[str, Any]) -> list[str]:
    """The report's section on GRU-PPO's best-policy selection (empty without it)."""
    g = learners[learners["learner"] == "gru-ppo"]
    if g.empty or "selected_step" not in g.columns or g["selected_step"].isna().all():
        return []
    t = g[["train_population", "index", "steps", "selected_step",
           "selected_validation_return", "final_validation_return", "selected_feasible"]]
    t = t.rename(columns={"index": "seed_index"})
    return ["## GRU-PPO's policy selection\n",
            f"Every {config.get('gru_eval_every')} iterations GRU-PPO ran on "
            f"{config.get('gru_eval_users')} validation users of its training population "
            "(their own seed; never the evaluation users or populations), as the evaluation "
            "runs it; the evaluated policy is the best validated one that kept the training "
            "constraints (SB3's `EvalCallback` keeps its best model the same way). "
            "Validation returns are the dots of the learning curves.\n",
            md_frame(t.sort_values(["train_population", "seed_index"])), ""]


def _constraints_md(learners: pd.DataFrame, config: dict[str, Any]) -> list[str]:
    """The report's section on GRU-PPO's constraints (empty when it trained without)."""
    g = learners[learners["learner"] == "gru-ppo"]
    cols = [c for c in ("static_pushes_per_day", "min_pushes_per_day", "max_pushes_per_day",
                        "static_opt_outs_per_day", "max_opt_outs_per_day",
                        "lambda_max_pushes", "lambda_min_pushes", "lambda_opt_outs")
            if c in g.columns]
    if g.empty or "max_pushes_per_day" not in g.columns:
        return ["GRU-PPO trained on the reward alone (`gru_constraints = 'none'`).\n"]
    t = g.groupby("train_population", sort=False)[cols].mean().reset_index()
    return ["## GRU-PPO's constraints (means over seeds)\n",
            "GRU-PPO trains under constraints set from the static scheduler measured on the "
            f"training population ({config.get('constraint_users', '?')} users, one "
            f"{config['train_horizon_days']:g}-day episode): pushes per user-day in "
            f"[{config.get('min_push_fraction', '?')}, {config.get('max_push_fraction', '?')}] "
            f"x the static scheduler's and opt-outs per user-day <= "
            f"{config.get('opt_out_fraction', '?')} x its (PPO-Lagrangian; "
            "`GRUPPOConfig.max_pushes_per_day`). The lambdas are the Lagrange multipliers at "
            "the end of training (reward per push; the opt-out one is charged on pushes, in "
            "reward per opt-out). SB3 PPO and RecurrentPPO train on the reward alone.\n",
            md_frame(t), ""]


def _target_md(target: dict[str, Any]) -> str:
    c = target["checks"]
    assessed = target.get("assessed", True)

    def v(ok: bool) -> str:
        if not assessed:
            return "not assessed"
        return "**pass**" if ok else "**FAIL**"

    lines = [] if assessed else [
        f"**Not assessed**: {target['why_not_assessed']}. The figures are shown for the "
        "record.\n"]
    lines += [
        f"- CTR lift of GRU-PPO over static >= 18.7 %: {v(c['ctr_lift']['pass'])} -- "
        f"{100 * c['ctr_lift']['gru_ppo_ctr']:.2f} % vs {100 * c['ctr_lift']['static_ctr']:.2f} %"
        + (f" ({100 * c['ctr_lift']['lift']:+.1f} %)" if math.isfinite(c['ctr_lift']['lift'])
           else " (lift n/a)"),
        f"- Welch p < 0.01 over >= {c['significance']['min_seeds']} seeds: "
        f"{v(c['significance']['pass'])} -- p = {c['significance']['welch_p']:.3g} over "
        f"{c['significance']['seeds']} seeds"]
    for m, label in (("opens", "opens per user"), ("dwell_min", "dwell minutes per user"),
                     ("opted_out", "opt-out rate")):
        k = c[f"{m}_not_worse"]
        lines.append(f"- {label} not worse than static: {v(k['pass'])} -- "
                     f"{k['gru_ppo']:.4g} vs {k['static']:.4g} ({k['rule']})")
    lines += [
        f"- return within 10 % of the oracle: {v(c['oracle_gap']['pass'])} -- "
        f"{c['oracle_gap']['gru_ppo_return']:.4g} vs {c['oracle_gap']['oracle_return']:.4g} "
        f"(ratio {c['oracle_gap']['ratio']:.3f})",
        f"- GRU-PPO training <= 15 min: {v(c['training_time']['pass'])} -- "
        f"{c['training_time']['seconds_mean']:.0f} s for {c['training_time']['steps']:,} steps "
        f"(mean over the default-population cells; measured while other cells ran)",
        f"\nAll: {v(target['all_pass'])}"]
    return "\n".join(lines)


def run_scheduling(out_dir: str | os.PathLike = "runs/scheduling",
                   config: SchedulingConfig | None = None, *, backend: str = "auto",
                   address: str | None = None, progress: bool = True) -> Path:
    """Run the benchmark (resuming finished cells) and return the path of ``report.md``."""
    config = SchedulingConfig() if config is None else config
    config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.exists():
        old = {"bank": "procedural", **json.loads(cfg_path.read_text())}   # runs before --bank
        keep = {k: v for k, v in old.items() if k not in ("workers", "backend", "address")}
        now = {k: v for k, v in config.to_dict().items() if k != "workers"}
        if keep != now:
            diff = sorted(k for k in set(keep) | set(now) if keep.get(k) != now.get(k))
            raise ValueError(f"{out} holds a run with another configuration (fields {diff} "
                             "differ); use another --out or remove it.")
    atomic_write_text(cfg_path, json.dumps(config.to_dict(), indent=2) + "\n")
    t0 = time.perf_counter()
    pops = build_populations(out, config, progress=progress)
    tasks = _tasks(out, config, pops, progress)
    used = _run_tasks(tasks, backend, config.workers, address, progress)
    aggregate(out)
    report = write_report(out)
    meta = {"backend": used, "address": address, "seconds": time.perf_counter() - t0}
    atomic_write_text(out / "run.json", json.dumps(meta, indent=2) + "\n")
    return report


# ================================================================================== CLI
def cmd_experiment_scheduling(args: Any) -> int:
    """``covercast experiment scheduling`` (``--suite``: the population-suite benchmark)."""
    if args.suite:
        return _cmd_suite(args)
    make = SchedulingConfig.fast_config if args.fast else SchedulingConfig
    kw: dict[str, Any] = {"seed": args.seed, "workers": args.workers,
                          "sb3_budget": args.sb3_budget,
                          "deterministic_learners": not args.stochastic_learners}
    if args.sb3_settings:
        from covercast.experiments.hpsearch import load_sb3_settings

        kw["sb3_settings"] = load_sb3_settings(args.sb3_settings)
    if args.bank:
        if len(args.bank) > 1:
            raise ValueError("Several --bank values run the suite benchmark once per bank; "
                             "add --suite, or give one bank.")
        kw["bank"] = args.bank[0]
    for name in ("population", "seeds", "eval_users", "horizon_days", "gru_steps", "num_envs",
                 "fit_users",
                 "gru_constraints", "min_push_fraction", "max_push_fraction",
                 "opt_out_fraction", "history_days", "train_horizon_days", "gru_eval_every",
                 "gru_eval_users"):
        v = getattr(args, name)
        if v is not None:
            kw[name] = v
    if args.policies:
        kw["policies"] = list(args.policies)
    if args.fitted_learners is not None:
        kw["fitted_learners"] = list(args.fitted_learners)
    config = make(**kw)
    report = run_scheduling(args.out, config, backend=args.backend, address=args.address,
                            progress=not args.quiet)
    target = json.loads((Path(args.out) / "target.json").read_text())
    print(f"report: {report}")
    if not target.get("assessed", True):
        print(f"issue 5 target: not assessed ({target['why_not_assessed']})")
    else:
        failed = ", ".join(k for k, v in target["checks"].items() if not v["pass"])
        print(f"issue 5 target: {'pass' if target['all_pass'] else 'FAIL'} "
              f"({failed or 'all met'}{' failed' if not target['all_pass'] else ''})")
    return 0


def _cmd_suite(args: Any) -> int:
    from covercast.experiments.suite_benchmark import SuiteConfig, run_suite

    ignored = [f"--{n.replace('_', '-')}" for n in (
        "population", "eval_users", "train_horizon_days", "gru_eval_every", "gru_eval_users", "num_envs",
        "fit_users", "gru_constraints", "min_push_fraction", "max_push_fraction",
        "opt_out_fraction", "fitted_learners", "sb3_settings") if getattr(args, n) is not None]
    if ignored or args.policies:
        raise ValueError(f"{', '.join(ignored + (['--policies'] if args.policies else []))} "
                         "do not apply with --suite; its settings are --seeds, --horizon-days, "
                         "--history-days, --gru-steps, --bank, --suite-users, "
                         "--suite-populations, --suite-policies, --pareto-volumes, "
                         "--no-sensitivity, --workers, --seed.")
    kw: dict[str, Any] = {"seed": args.seed, "workers": args.workers,
                          "sensitivity": not args.no_sensitivity}
    for name in ("seeds", "horizon_days", "history_days", "gru_steps"):
        v = getattr(args, name)
        if v is not None:
            kw[name] = v
    if args.suite_users is not None:
        kw["eval_users"] = args.suite_users
    if args.suite_populations:
        kw["eval_populations"] = list(args.suite_populations)
    if args.pareto_volumes:
        kw["pareto_volumes"] = [int(v) for v in args.pareto_volumes]
    if args.suite_policies:
        kw["policies"] = list(args.suite_policies)
    banks = args.bank or []
    if len(banks) == 1:
        kw["bank"] = banks[0]
    config = (SuiteConfig.fast_config if args.fast else SuiteConfig)(**kw)
    out = args.out if args.out != "runs/scheduling" else "runs/scheduling_suite"
    if len(banks) > 1:
        from covercast.experiments.suite_benchmark import run_suite_banks

        path = run_suite_banks(out, config, banks, backend=args.backend, address=args.address,
                               progress=not args.quiet)
        print(f"report: {path} (each bank's benchmark: {out}/bank_NAME/benchmark.md)")
        return 0
    report = run_suite(out, config, backend=args.backend, address=args.address,
                       progress=not args.quiet)
    target = json.loads((Path(out) / "target.json").read_text())
    print(f"report: {report}")
    lift = target["checks"]["opens_lift_in_band"]
    print(f"best deployable policy: {lift['best_deployable']}, opens per user-day "
          f"{100 * lift['lift']:+.1f} % over the tuned control (band +5 % ... +40 %: "
          f"{'pass' if lift['pass'] else 'FAIL'}); planning oracle at least every policy's "
          f"return: {'pass' if target['checks']['upper_reference']['pass'] else 'FAIL'}")
    return 0


def add_experiment(experiments: Any) -> None:
    """Register ``scheduling`` on the CLI's ``experiment`` sub-parsers."""
    e = experiments.add_parser(
        "scheduling", help="scheduling benchmark: 8 policies x seeds x populations (Ray)",
        description="Scheduling benchmark: random, static, heuristic, bandit, oracle, SB3 PPO, "
                    "RecurrentPPO and GRU-PPO x seeds x populations (default; fitted from a "
                    "simulated log; shifted, held out) on covercast/PushSchedule-v0, with 95 %% "
                    "CIs, Welch t-tests vs static, learning curves, figures and the issue-5 "
                    "target check. Runs its cells on Ray (local, or --address), else in "
                    "processes. Expected time with the defaults on 2 otherwise idle CPU cores: "
                    "about 50 minutes (several times longer on busy cores); --fast: under "
                    "a minute. Finished cells are skipped on a rerun.")
    e.set_defaults(func=cmd_experiment_scheduling)
    e.add_argument("--out", default="runs/scheduling", help="output folder")
    e.add_argument("--population", default=None,
                   help="base population, a suite name or JSON (default: 'default', i.e. "
                        "calibrated-v1; 'peaked-v0' reproduces the runs before it)")
    e.add_argument("--seeds", type=int, default=None, help="replications (default 5)")
    e.add_argument("--eval-users", type=int, default=None,
                   help="users per seed, policy and population (default 200)")
    e.add_argument("--horizon-days", type=float, default=None,
                   help="days per evaluation episode (default 14)")
    e.add_argument("--gru-steps", type=int, default=None,
                   help="GRU-PPO training env-steps (default 6,000,000)")
    e.add_argument("--train-horizon-days", type=float, default=None,
                   help="days per training episode of the learners (default 14)")
    e.add_argument("--gru-eval-every", type=int, default=None,
                   help="GRU-PPO: validate every this many iterations on users of the training "
                        "population and evaluate the best validated policy (default 10; 0: the "
                        "final policy)")
    e.add_argument("--gru-eval-users", type=int, default=None,
                   help="GRU-PPO's validation users (default 2048)")
    e.add_argument("--num-envs", type=int, default=None,
                   help="users per training rollout (default 64)")
    e.add_argument("--fit-users", type=int, default=None,
                   help="users of the log the fitted population comes from (default 2000)")
    e.add_argument("--sb3-budget", choices=["wall", "steps"], default="wall",
                   help="SB3 references get GRU-PPO's wall-clock time (default) or its steps")
    e.add_argument("--sb3-settings", default=None, metavar="CHOSEN_JSON",
                   help="train the SB3 references with the settings a hyperparameter search "
                        "chose (its chosen.json or folder; `covercast experiment hpsearch`); "
                        "default: GRU-PPO's PPO settings")
    e.add_argument("--stochastic-learners", action="store_true",
                   help="evaluate the learners by sampling their actions (default: greedily, "
                        "their most likely action)")
    e.add_argument("--policies", nargs="+", choices=list(POLICIES), default=None,
                   help="policies to run (default: all; static is always included)")
    e.add_argument("--fitted-learners", nargs="*", choices=list(LEARNERS), default=None,
                   help="learners also trained on the fitted population (default: gru-ppo)")
    e.add_argument("--gru-constraints", choices=["static", "none"], default=None,
                   help="GRU-PPO's constraints: 'static' (default: push volume and opt-outs "
                        "held near the static scheduler's, measured on the training "
                        "population) or 'none' (the reward alone)")
    e.add_argument("--min-push-fraction", type=float, default=None,
                   help="lower edge of the push-volume band, x the static scheduler's "
                        "(default 0.5)")
    e.add_argument("--max-push-fraction", type=float, default=None,
                   help="upper edge of the push-volume band, x the static scheduler's "
                        "(default 1.0)")
    e.add_argument("--opt-out-fraction", type=float, default=None,
                   help="opt-out limit, x the static scheduler's opt-outs per user-day "
                        "(default 0.9)")
    e.add_argument("--history-days", type=float, default=None,
                   help="days of each user's organic sessions seen before the episode "
                        "(default 14: existing users; 0: new users)")
    from covercast.generators.banks import BANK_HELP

    e.add_argument("--bank", nargs="+", default=None,
                   help=BANK_HELP + " (every environment of the run). With --suite, several "
                        "banks run the benchmark once per bank (OUT/bank_NAME) and write "
                        "OUT/banks.md side by side")
    e.add_argument("--workers", type=int, default=2, help="cells at once (default 2)")
    e.add_argument("--backend", choices=["auto", "ray", "process", "sequential"],
                   default="auto", help="auto: Ray when installed, else processes")
    e.add_argument("--address", default=None, help="Ray cluster address (default: local)")
    e.add_argument("--seed", type=int, default=0, help="master seed")
    e.add_argument("--fast", action="store_true", help="tiny budgets, for smoke tests")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.add_argument("--suite", action="store_true",
                   help="the population-suite benchmark (covercast.experiments.suite_benchmark): "
                        "learners trained and the control tuned on calibrated-v1, every policy "
                        "on the training and held-out test populations, the tuned control, the "
                        "planning oracle, the Pareto figure and the sensitivity table; writes "
                        "benchmark.md (default --out runs/scheduling_suite)")
    e.add_argument("--suite-users", type=int, default=None,
                   help="--suite: users per seed, policy and population (default 1000)")
    e.add_argument("--pareto-volumes", nargs="+", type=int, default=None,
                   help="with --suite: pushes a day the control is also tuned at for its "
                        "Pareto frontier (default 1 2 3 4; the control's own volume is always "
                        "tuned)")
    e.add_argument("--suite-populations", nargs="+", default=None,
                   help="--suite: populations to evaluate on (default: the 3 training and 4 "
                        "test populations of the suite)")
    e.add_argument("--suite-policies", nargs="+", default=None,
                   help="--suite: policies to run (default: all but the lookahead oracle; "
                        "the control static-tuned is always needed)")
    e.add_argument("--no-sensitivity", action="store_true",
                   help="--suite: skip the sensitivity table")
