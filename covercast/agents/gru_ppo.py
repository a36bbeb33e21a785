"""PPO with a GRU policy and value network (CleanRL-style loop on ``torch.nn.GRU``).

The trainer (:class:`GRUPPOTrainer`) collects whole-episode rollouts from a vector of users,
either the population vector environment (:class:`~covercast.envs.vector.PopulationVectorEnv`,
N users on one engine) or ``gymnasium.vector.SyncVectorEnv`` copies of a single-user id
(``covercast/PushTiming-v0``, ``covercast/CoverStyle-v0``, ``covercast/PushSchedule-v0``), both
in Gymnasium's same-step autoreset mode. The trained policy is a covercast
:class:`~covercast.agents.base.Agent` (:class:`GRUPPOAgent`) with the common ``predict``.

Design
------
* **Recurrent state.** ``h_t = GRU(embed(obs_t, a_{t-1}), h_{t-1} * (1 - episode_start_t))``: the
  hidden state is zeroed where an episode starts, in the rollout, in the update and in
  ``predict`` (``episode_start``).
* **Previous action as input** (``prev_action_input``, RL^2-style): the embedding reads the
  observation and the one-hot of the action taken at the previous step (zeros at an episode's
  first step), so the GRU can relate opens to the styles that were pushed; the observation
  only counts pushes and opens. The rollout stores the actions, the update rebuilds the
  previous actions from them (:func:`previous_actions`), and ``predict``'s ``state`` carries
  the last action it returned next to the hidden state.
* **Whole sequences.** Minibatches split the rollout by *environment* (user), never by time:
  each minibatch re-runs the GRU over the full rollout of its users from the rollout's initial
  state (truncated BPTT over the rollout). The forward pass runs ``nn.GRU`` over the
  stretches between time indices where some user starts an episode; the backward pass is
  written out by hand (:class:`_MaskedGRU`: the gate derivatives of all steps at once, then
  four small tensor operations per step, then whole-sequence weight gradients) instead of
  autograd's graph of the unrolled cell, which made the update about 1.5x faster with the
  same gradients up to float rounding (tested against autograd through ``nn.GRU``).
* **Rollout loop.** Runs under ``torch.inference_mode`` into preallocated NumPy buffers; one
  GRU cell call per step (``torch.gru_cell``, the same cell as ``nn.GRU``); actions drawn by
  inverse CDF from uniforms taken in one call from the trainer's generator; GAE vectorised
  over users in NumPy.
* **Rollouts restart the environment.** Every iteration resets the vector env with a seed
  derived from ``(seed, iteration)`` and collects ``num_steps`` steps (default: one full
  episode). The initial hidden state of every rollout is therefore zero, and a checkpoint at an
  iteration boundary (weights, optimizer, observation normaliser, RNG states) resumes to
  exactly the run that was not interrupted.
* **Truncation.** At a time-limit truncation the value of the final observation (one GRU step
  from the pre-reset hidden state) is bootstrapped into the reward; at termination (opt-out)
  it is not.
* **Observations** are normalised by running mean and variance (saved with the checkpoint);
  counts in the covercast observation are unbounded. The policy also reads the **hour of day
  as a one-hot** (``hour_one_hot``, :func:`policy_inputs`), standardised to the scale of the
  normalised features: the observation's sine and cosine of the hour cannot tell an hour from
  its neighbours without large weights.
* **Reliability (issue 15).** On the one-active-hour task (``benchmarks/bench_learning.py``)
  runs used to fail by collapsing to never pushing: pushes at the wrong hours are many and
  costly, the one good hour is found by a few pushes per rollout, and once the push
  probability fell near 0 no evidence came back -- the entropy bonus's gradient vanishes with
  the probability. Three causes were fixed: the clock's encoding (the one-hot above), the
  critic's initial scale (values start near 0, not spread over +-1, so that early advantages
  are not the critic's noise) and the exploration bonus (``entropy_bonus="cross-entropy"``: a
  pull towards a uniform reference whose gradient does not vanish). The trainer flags a
  collapse to never or always pushing (``collapse`` column of ``progress.csv``,
  :class:`PolicyCollapseWarning`, :attr:`GRUPPOTrainer.collapse`).
* **Best-policy selection** (``eval_every``, off by default). PPO's policy keeps moving after
  it has learned: on the scheduling benchmark's population its return on new users swings by
  +-0.4 from one 200 k-step stretch to the next long after the learning curve is flat. Every
  ``eval_every`` iterations the trainer runs the current policy (greedily by default) on a
  fixed set of validation users of the training population, drawn from a seed the training
  rollouts never use, and keeps the best one that keeps the constraints (``eval.csv``;
  :meth:`GRUPPOTrainer.agent` / :meth:`GRUPPOAgent.load` with ``which="best"``), as SB3's
  ``EvalCallback`` keeps its best model. The validation draws from no stream of the training
  run, so the trained weights are the same with or without it. After the last iteration the
  best policy's **greedy decoding** is chosen on the same users (``push_thresholds``): the
  policy is one categorical over "no push" and the styles, so its most likely action can be
  "no push" in every slot of a policy that pushes twice a day when sampled; pushing when the
  probability of any push exceeds a threshold ``t`` (with the most likely style) is tried for
  each ``t`` of the grid, and the best rule that keeps the constraints is kept
  (:attr:`GRUPPOAgent.push_threshold`).

Measurements (torchrl vs ``nn.GRU``, throughput against RecurrentPPO) are in
``docs/results/notes/gru_ppo.md``; :mod:`covercast.experiments.bench_rl` reproduces them.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from covercast._io import atomic_write, atomic_write_text, check_fields, check_int, check_number
from covercast.agents.base import PolicyAgent, SeedLike, as_episode_start, as_obs_batch
from covercast.envs.observation import OBS_DIM, OBS_INDEX
from covercast.simulators.params import PopulationParams

__all__ = ["GRUPPOConfig", "GRUPolicy", "RunningMeanStd", "GRUPPOTrainer", "GRUPPOAgent",
           "make_train_env", "previous_actions", "policy_inputs", "policy_input_dim",
           "PolicyCollapseWarning", "COLLAPSE_KINDS", "ENTROPY_BONUSES", "CSV_COLUMNS",
           "EVAL_COLUMNS", "THRESHOLD_COLUMNS", "CONSTRAINT_FIELDS", "LAGRANGE_SCALES",
           "check_push_thresholds", "observed_hours"]

#: Columns of ``progress.csv`` (one row per iteration).
CSV_COLUMNS: tuple[str, ...] = (
    "iteration", "global_step", "episodes", "episode_return", "episode_length", "pushes",
    "opens", "ctr", "opt_out_rate", "policy_loss", "value_loss", "entropy", "approx_kl",
    "clipfrac", "explained_variance", "learning_rate", "sps", "pushes_per_day",
    "opt_outs_per_day", "lambda_max_pushes", "lambda_min_pushes", "lambda_opt_outs",
    "greedy_pushes_per_day", "collapse")

#: Columns of ``eval.csv`` (one row per validation, ``GRUPPOConfig.eval_every``).
EVAL_COLUMNS: tuple[str, ...] = (
    "iteration", "global_step", "return", "ctr", "opens", "dwell_min", "pushes_per_day",
    "opt_outs_per_day", "opt_out_rate", "feasible")

#: Columns of ``push_threshold.csv`` (``GRUPPOTrainer.calibrate_push_threshold``; a NaN
#: threshold is the plain most likely action).
THRESHOLD_COLUMNS: tuple[str, ...] = ("push_threshold",) + EVAL_COLUMNS[2:]

#: The ``GRUPPOConfig`` fields of constrained training (PPO-Lagrangian).
CONSTRAINT_FIELDS = ("max_pushes_per_day", "min_pushes_per_day", "max_opt_outs_per_day")

#: Reward scale of one unit of each constrained cost: the Lagrange multipliers move by
#: ``lagrange_lr * scale * relative violation`` per iteration (a push is worth about a tenth
#: of an open; an opt-out costs ``w_optout`` = 5 in the default reward).
LAGRANGE_SCALES = {"max_pushes": 0.1, "min_pushes": 0.1, "opt_outs": 5.0}

#: The exploration bonuses of ``GRUPPOConfig.entropy_bonus``.
ENTROPY_BONUSES = ("cross-entropy", "joint", "push-style")

#: The ``collapse`` column of ``progress.csv``: 0 none, -1 the policy never pushes, +1 it
#: pushes in (nearly) every slot (see ``GRUPPOConfig.collapse_patience``).
COLLAPSE_KINDS = {0: None, -1: "never-push", 1: "always-push"}


class PolicyCollapseWarning(UserWarning):
    """A GRU-PPO policy has collapsed to never pushing or to pushing in (nearly) every slot."""


_SINGLE_IDS = ("covercast/PushTiming-v0", "covercast/CoverStyle-v0", "covercast/PushSchedule-v0")
_VECTOR_ID = "covercast/PopulationVector-v0"


# ================================================================================== config
@dataclass
class GRUPPOConfig:
    """Settings of a GRU-PPO run (saved as ``config.json`` in every checkpoint)."""

    env_id: str = "covercast/PushSchedule-v0"
    """Environment: a covercast id, or ``covercast/PopulationVector-v0`` for the population
    vector env (PushSchedule for ``num_envs`` users on one engine)."""
    num_envs: int = 64
    """Parallel users per rollout (vector env users, or SyncVectorEnv copies). 128 users
    (3 M steps, seed 0, same evaluation as ``prev_action_input``) learned to push too little
    (0.6 a day) and returned 1.62 against 2.83 with 64."""
    horizon_days: float = 7.0
    """Episode length of the training environment, in simulated days."""
    slot_minutes: int = 60
    """Decision slot length of PushTiming / PushSchedule / the vector env."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Further JSON-serialisable keyword arguments of the environment (``w_dwell``, ...)."""
    total_steps: int = 1_000_000
    """Environment steps (all users together) to train for. 1 M, not less: with 200 k, 16 of 40
    runs on the suite populations (8 seeds each, population vector env) ended never pushing
    when run greedily; with 1 M, none of 25 did (5 seeds each; ``python
    benchmarks/bench_learning.py populations --steps N``, reports in
    ``docs/results/bench_learning/``). About a minute on 2 CPU cores for the vector env."""
    num_steps: int | None = None
    """Steps per rollout and environment (None: one full episode)."""
    learning_rate: float = 1e-3
    """Adam learning rate. 3e-3 (3 M steps, seed 0, same evaluation as
    ``prev_action_input``) drifted to pushing 2.9 times a day with 15 % opt-outs and returned
    2.05 against 2.83 with 1e-3."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over the run."""
    gamma: float = 0.999
    """Discount factor per slot. With hourly slots, fatigue and the opt-out penalty act over
    days: 0.99 discounts a day by 0.79 and a week by 0.19, so pushing now looks free; 0.999
    (a week: 0.85) learned a better schedule than the static one in 1.5 M steps, 0.99 did not."""
    gae_lambda: float = 0.98
    """Lambda of generalised advantage estimation."""
    num_minibatches: int = 4
    """Minibatches per epoch (the environments are split into this many groups)."""
    update_epochs: int = 4
    """Passes over each rollout."""
    norm_adv: bool = True
    """Normalise advantages within each minibatch."""
    clip_coef: float = 0.2
    """PPO ratio clipping."""
    clip_vloss: bool = True
    """Clip the value loss around the rollout's values."""
    ent_coef: float = 0.01
    """Coefficient of the exploration bonus (``entropy_bonus``). 0.003 (3 M steps, seed 1,
    with the joint entropy) moved the policy from pushing 3.1 times a day to 0.9 (CTR 13.1 %
    against 5.5 %) at the same return (1.90 against 1.85, paired difference +0.05 +- 0.39):
    not better by evidence."""
    anneal_ent: bool = True
    """Decay ``ent_coef`` linearly to 0 over the run, as the learning rate (an exploration
    schedule: the bonus guards the early iterations, where a policy that stops pushing never
    finds out what pushing is worth, and lets it commit to its hours and styles late)."""
    ent_anneal_end: float = 0.5
    """With ``anneal_ent``: the fraction of the run by which ``ent_coef`` reaches 0 (1.0: at
    the end, with the learning rate; 0.5: by half-way, leaving the second half to sharpen the
    policy). With 1.0 the suite benchmark's 5 seeds (6 M steps) trained stochastic policies as
    good as before issue 15 (sampled) but so flat that their greedy actions pushed 0.3-0.9 times
    a day and lost to the tuned control (``docs/results/scheduling_suite_issue15``). Pilots on
    the benchmark's recipe (3 M steps, greedy return on 500 calibrated users, the tuned control
    1.80): 0.5 gave 1.39 / 1.53 on seeds 0 / 1 against 0.00 / 1.01 with 1.0; the one-active-hour
    task stays at 20 of 20 seeds. Two seeds: the next 5-seed suite run is the test."""
    entropy_bonus: str = "cross-entropy"
    """Which exploration bonus the loss rewards.

    ``"cross-entropy"`` (default): the mean log-probability the policy gives a uniform
    reference, minus the cross-entropy ``H(u, pi)`` (so ``ent_coef * KL(u || pi)`` up to a
    constant): for the schedule envs, ``u`` is "push or not, 1/2 each" and "each style 1/n
    given a push", two terms, so it does not pull towards pushing; for the timing and style
    envs, uniform over the actions. Its gradient on the logits is ``ent_coef * (u - pi)``,
    which does *not* vanish as an action's probability goes to 0: it keeps a floor of about
    ``ent_coef * u / |advantage|`` on the pushes a policy is learning to stop, so that
    evidence about them keeps coming. The entropy's gradient, ``pi * (log pi + H)`` per
    action, vanishes with ``pi``: once a policy stopped pushing it had no pushes left to
    learn from, and the entropy could not bring them back. Measured on the one-active-hour
    task (``tests/agents/test_gru_ppo.py``, 60 k steps, default config otherwise, 20 seeds):
    with the joint entropy 18 of 20 seeds reached >= 0.99 of the optimum, one collapsed to
    never pushing and one reached 0.73; with the cross-entropy 20 of 20 reached >= 0.996.
    ``"joint"``: the entropy of the ``1 + n_styles`` actions, which is H(push) + P(push)
    H(style | push), so the bonus pulls the policy towards pushing (a push carries up to
    log(n_styles) more entropy). ``"push-style"``: H(push) + H(style | push), no pull towards
    pushing. Measured on three training seeds of the scheduling benchmark (1.5 M steps, 64
    users; 200 paired 14-day users): joint -> push-style, return 1.87 -> 2.16, 2.62 -> 1.82,
    1.20 -> 1.28; pushes/day 2.73 -> 1.36, 1.45 -> 0.89, 3.05 -> 0.47; CTR 5.1 -> 9.5, 11.0
    -> 12.1, 4.5 -> 14.9 %; opt-outs 9.0 -> 2.0, 3.5 -> 1.5, 19.5 -> 0.5 %. It traded
    over-pushing seeds for under-pushing ones rather than removing the spread. The
    ``entropy`` column of ``progress.csv`` is the action entropy whichever bonus is used."""
    initial_push_prob: float | None = 2 / 24
    """Push probability per slot of the untrained policy (schedule and timing envs), spread
    evenly over the styles; ``None`` starts uniform over actions. A uniform start pushes in 5
    of 6 hourly slots, so most users opt out before anything is learned."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Gradient norm clipping."""
    target_kl: float | None = None
    """Stop the epochs of an update early when the approximate KL exceeds it (None: never)."""
    max_pushes_per_day: float | None = None
    """Constrained training (PPO-Lagrangian, schedule and timing envs): hold the policy's
    delivered pushes per user-day at or below this. Each rollout's rate is compared with the
    limit and a Lagrange multiplier ``lambda >= 0`` grows while it is exceeded (shrinks
    otherwise); the policy is trained on ``reward - lambda * pushed``. None: no limit. The
    reported ``episode_return`` is always the environment's reward."""
    min_pushes_per_day: float | None = None
    """Constrained training: hold delivered pushes per user-day at or above this (a
    multiplier that pays ``lambda`` per push while the rate is below). Together with
    ``max_pushes_per_day`` it keeps the push volume in a band, so that a gain has to come
    from *when* and *with which cover* the policy pushes. None: no floor."""
    max_opt_outs_per_day: float | None = None
    """Constrained training: hold opt-outs per user-day (the hazard: opt-outs in a rollout
    over the user-days it simulated) at or below this. None: no limit. Its multiplier is
    charged on the *pushes* (each push pays ``lambda`` times the rollout's opt-outs per push,
    so the charges of a rollout add up to ``lambda`` per opt-out): an opt-out is a rare event
    that comes days after the pushes that caused it, and charging ``lambda`` on the opt-out
    step itself did not move the policy (measured, seed 1, 1.5 M steps: the multiplier rose to
    37 while pushes rose from 2.2 to 3.4 a day and the opt-out rate stayed twice the limit).
    The environment's own opt-out penalty (``w_optout``) stays on the opt-out step, where the
    policy can learn which pushes are risky. Known limit: when the limit is barely reachable
    (with a push floor, for instance) the multiplier keeps growing; in a 12 M-step run (seed
    0, pushes in [1, 2] a day, limit 0.0042) it reached 67, the policy's push rate and CTR
    drifted and the return fell from 3.17 (the same settings at 6 M steps) to 1.82 on the
    demo's 300 users. In the scheduling benchmark's 6 M-step runs the final multipliers were
    3-45 and every run beat the static scheduler's return."""
    lagrange_lr: float = 0.05
    """Step of the Lagrange multipliers per iteration: ``lambda += lagrange_lr * scale *
    (rate - limit) / limit`` (clipped at 0), with ``scale`` from :data:`LAGRANGE_SCALES` (0.1
    reward per push, 5 per opt-out)."""
    embed_size: int = 64
    """Width of the observation embedding (Linear + tanh) before the GRU."""
    hidden_size: int = 64
    """GRU hidden state size."""
    prev_action_input: bool = True
    """Feed the previous action (one-hot, zeros at an episode's first step) into the GRU with
    the observation (RL^2-style). The observation counts pushes and opens but does not say
    which style was pushed, so without it the policy cannot tell which covers a user opened.
    Measured on the population vector env (64 users, 7-day episodes, evaluated on 300 paired
    14-day users as in the demo): no difference at 1.5 M steps (return 2.16 / 2.17 with it,
    2.24 / 2.11 without, seeds 0 / 1); at 3 M steps, seeds 0 / 1 / 2, the runs without it
    returned 1.14 / 0.92 / 2.08 (the first two stuck pushing 3.8 / 5.4 times a day, 25 /
    33 % opt-outs) and those with it 2.83 / 1.85 / 2.05 (paired differences +1.70, +0.93
    (both p < 0.001) and -0.03 (p = 0.87)).
    Checkpoints whose ``config.json`` lacks the key were trained without it and load as
    False."""
    hour_one_hot: bool = True
    """Also feed the hour of day as a one-hot of 24 (recovered from the observation's
    ``hour_sin``/``hour_cos``; not normalised). The observation's clock is a sine and cosine
    of the hour: a smooth function of them cannot tell an hour from its neighbours (at noon
    ``hour_cos`` is -1, at 11:00 and 13:00 -0.97), so a policy had to grow large weights
    before it could push at one hour and not the next. Checkpoints whose ``config.json``
    lacks the key were trained without it and load as False."""
    critic_init_gain: float = 0.1
    """Gain of the critic head's orthogonal initialisation (CleanRL uses 1.0, which was the
    value before issue 15). Measured on the one-active-hour task (20 seeds, the other
    defaults of the time, ``ent_anneal_end`` 1.0): gain 1.0 18 of 20 seeds >= 0.9 of the
    optimum, 0.1 20 of 20, 0.01 19 of 20 (with ``ent_anneal_end`` 0.5, 1.0 and 0.1 both 20 of
    20);
    with gain 1.0 the untrained values spread over +-1 and the first advantages were mostly
    the critic's noise (seed 3: explained variance -1.4, the pushes at the good hour got
    advantages of -0.4 to +0.2). On the suite benchmark's training recipe (3 M steps, seeds 0
    / 1, greedy return on 500 users, the tuned control 1.80) the gains gave 1.36 / 0.79 (1.0),
    0.00 / 1.01 (0.1) and 0.57 (0.01, seed 0): two seeds, within the run-to-run spread, and
    0.01 lower there -- a small gain starves the shared GRU of the value loss's gradient early
    on. 0.1 is the default for the task's 20 of 20; the suite benchmark's report shows how
    its 5 seeds fare (collapse flags included)."""
    normalize_obs: bool = True
    """Normalise observations with running mean and variance."""
    seed: int = 0
    """Seed of the run (environment seeds, initial weights, action sampling, minibatches)."""
    torch_threads: int = 1
    """Threads torch may use (1 is fastest for this small network on a shared CPU)."""
    checkpoint_every: int = 0
    """Save a checkpoint every this many iterations (0: only at the end)."""
    tensorboard: bool = True
    """Also log to TensorBoard (skipped with a note when tensorboard is not installed)."""
    collapse_min_pushes_per_day: float = 0.05
    """Collapse detection (schedule and timing envs): a policy that delivers fewer pushes
    than this per user-day (one in 20 days) has collapsed to *never push* -- from then on
    PPO sees almost no pushes to learn from and stays there. Checked on the sampled pushes of
    every rollout, and on the greedy (most likely) actions at the end of training."""
    collapse_max_push_share: float = 0.9
    """Collapse detection: a policy that pushes in more than this share of its decision slots
    has collapsed to *always push*."""
    collapse_patience: int = 3
    """Rollouts in a row that must meet a collapse condition before the run is flagged: the
    ``collapse`` column of ``progress.csv`` (0, -1 never pushes, +1 always pushes;
    :data:`COLLAPSE_KINDS`), a :class:`PolicyCollapseWarning` the first time, and
    :attr:`GRUPPOTrainer.collapse` at the end."""
    eval_every: int = 0
    """Validate the policy every this many iterations and after the last one (0: never), and
    keep the best policy seen, as SB3's ``EvalCallback`` keeps its best model: the policy
    runs (greedily with ``eval_deterministic``) on ``eval_users`` users of the *training*
    population whom training never meets (a seed of their own; the same users every time, so
    two evaluations differ by the policy only) for ``eval_horizon_days``. The best policy is
    :meth:`GRUPPOTrainer.agent` with ``which="best"`` (and :meth:`GRUPPOAgent.load`'s); the
    evaluations are :attr:`GRUPPOTrainer.evals` and ``eval.csv``. The score:
    :meth:`GRUPPOTrainer.validate`."""
    eval_users: int = 512
    """Validation users (population vector env: one batch; single-user envs: episodes)."""
    eval_horizon_days: float | None = None
    """Days of a validation episode (None: ``horizon_days``)."""
    eval_deterministic: bool = True
    """Validate with the policy's most likely actions (False: sampled)."""
    push_thresholds: tuple[float, ...] = (0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1)
    """Greedy decoding calibrated on the validation users (with ``eval_every`` and
    ``eval_deterministic``; empty: off). The policy is one categorical over "no push" and each
    style, so its most likely action is "no push" whenever the push probability is spread
    over the styles or below one half in a slot, and a policy that pushes about twice a day
    when sampled can push far less when run greedily (measured on the scheduling suite:
    0.3-0.9 greedy pushes a day against 1.6-2.0 sampled). After the last iteration the best
    validated policy is run on the validation users with each threshold ``t`` -- push when
    the probability of pushing (any style) exceeds ``t``, with the most likely style -- and
    with the plain most likely action; the rule with the best validation return that keeps
    the constraints is the one the best policy uses when run greedily
    (:attr:`GRUPPOAgent.push_threshold`; ``push_threshold.csv``). Without ``eval_every`` the
    final weights are calibrated the same way on the population vector env (on the
    single-user envs, whose validation runs ``eval_users`` episodes one by one, only with
    ``eval_every``)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.initial_push_prob is not None:
            check_number(self.initial_push_prob, "initial_push_prob", lo=0, hi=1, lo_open=True,
                         hi_open=True)
        check_fields(self, ints=("num_envs", "total_steps", "num_minibatches", "update_epochs",
                                 "embed_size", "hidden_size", "torch_threads", "slot_minutes",
                                 "eval_users", "collapse_patience"),
                     counts=("checkpoint_every", "seed", "eval_every"),
                     positive=("learning_rate", "clip_coef", "max_grad_norm", "horizon_days",
                               "critic_init_gain", "lagrange_lr"),
                     nonneg=("ent_coef", "vf_coef", "collapse_min_pushes_per_day"),
                     choices={"env_id": _SINGLE_IDS + (_VECTOR_ID,),
                              "entropy_bonus": ENTROPY_BONUSES})
        for name, lo_open in (("gamma", False), ("gae_lambda", False), ("ent_anneal_end", True),
                              ("collapse_max_push_share", True)):
            check_number(getattr(self, name), name, lo=0, hi=1, lo_open=lo_open)
        if self.num_steps is not None:                      # None: one episode
            check_int(self.num_steps, "num_steps")
        for name in ("eval_horizon_days", "target_kl", *CONSTRAINT_FIELDS):     # None: off
            if getattr(self, name) is not None:
                check_number(getattr(self, name), name, lo=0, lo_open=True)
        for name in ("eval_deterministic", "anneal_ent", "hour_one_hot", "prev_action_input"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"`{name}` must be a bool, got {getattr(self, name)!r}.")
        if self.num_minibatches > self.num_envs:
            raise ValueError(f"`num_minibatches` ({self.num_minibatches}) must not exceed "
                             f"`num_envs` ({self.num_envs}): minibatches split the environments.")
        check_push_thresholds(self.push_thresholds)
        if self.min_pushes_per_day is not None and self.max_pushes_per_day is not None \
                and self.min_pushes_per_day > self.max_pushes_per_day:
            raise ValueError(f"`min_pushes_per_day` ({self.min_pushes_per_day!r}) must not exceed "
                             f"`max_pushes_per_day` ({self.max_pushes_per_day!r}).")
        if self.env_id == "covercast/CoverStyle-v0":
            for name in CONSTRAINT_FIELDS:
                if getattr(self, name) is not None:
                    raise ValueError(f"`{name}` constrains when to push (it acts on the pushes); "
                                     "in covercast/CoverStyle-v0 the push times are given.")
        if not isinstance(self.env_kwargs, dict):
            raise ValueError(f"`env_kwargs` must be a dict, got {type(self.env_kwargs).__name__}.")
        try:
            json.dumps(self.env_kwargs)
        except TypeError as e:
            raise ValueError(f"`env_kwargs` must be JSON-serialisable (pass a PopulationParams "
                             f"as `params=` to GRUPPOTrainer instead): {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GRUPPOConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"Unknown GRUPPOConfig fields {unknown}; known: {sorted(names)}.")
        cfg = cls(**dict(d))
        cfg.validate()
        return cfg

    @classmethod
    def from_checkpoint_dict(cls, d: Mapping[str, Any]) -> GRUPPOConfig:
        """:meth:`from_dict` for a checkpoint's ``config.json``: a config written before
        ``prev_action_input`` existed describes a policy without the previous-action input
        (and one written before ``entropy_bonus`` existed was trained with the joint entropy)."""
        d = dict(d)
        d.setdefault("prev_action_input", False)
        d.setdefault("entropy_bonus", "joint")
        d.setdefault("hour_one_hot", False)
        d.setdefault("anneal_ent", False)
        d.setdefault("critic_init_gain", 1.0)
        d.setdefault("push_thresholds", ())
        if isinstance(d["push_thresholds"], list):
            d["push_thresholds"] = tuple(d["push_thresholds"])
        return cls.from_dict(d)


# ================================================================================== model
class RunningMeanStd:
    """Running mean and variance of observation features (Chan et al. parallel update)."""

    def __init__(self, dim: int = OBS_DIM) -> None:
        self.mean = np.zeros(dim, dtype=np.float64)
        self.var = np.ones(dim, dtype=np.float64)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.mean.size)
        b_mean, b_var, b_n = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta = b_mean - self.mean
        tot = self.count + b_n
        self.mean = self.mean + delta * b_n / tot
        m2 = self.var * self.count + b_var * b_n + delta ** 2 * self.count * b_n / tot
        self.var = m2 / tot
        self.count = tot

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -10.0, 10.0).astype(np.float32)

    def state(self) -> dict[str, torch.Tensor]:
        return {"obs_mean": torch.from_numpy(self.mean.copy()),
                "obs_var": torch.from_numpy(self.var.copy()),
                "obs_count": torch.tensor([self.count], dtype=torch.float64)}

    def load(self, t: Mapping[str, torch.Tensor]) -> None:
        self.mean = t["obs_mean"].numpy().astype(np.float64).copy()
        self.var = t["obs_var"].numpy().astype(np.float64).copy()
        self.count = float(t["obs_count"][0])


def policy_inputs(obs: np.ndarray, rms: RunningMeanStd | None, hour_one_hot: bool
                  ) -> np.ndarray:
    """The policy's input rows ``(N, policy_input_dim(hour_one_hot))`` float32 from raw
    observations ``(N, OBS_DIM)``: the observations normalised by ``rms`` (None: as they
    are), then, with ``hour_one_hot``, the one-hot of the hour of day read back from
    ``hour_sin``/``hour_cos`` (the hour the decision slot starts in). One function for the
    trainer's rollouts and the agent's ``predict``."""
    obs = np.asarray(obs)
    x = rms.normalize(obs) if rms is not None else obs.astype(np.float32)
    if not hour_one_hot:
        return x
    n = obs.shape[0]
    hour = observed_hours(obs)
    out = np.full((n, OBS_DIM + 24), _HOUR_OFF, dtype=np.float32)
    out[:, :OBS_DIM] = x
    out[np.arange(n), OBS_DIM + hour] = _HOUR_ON
    return out


def observed_hours(obs: np.ndarray) -> np.ndarray:
    """The hour of day (0-23, int64) each raw observation row's decision slot starts in, read
    back from its ``hour_sin`` / ``hour_cos`` features."""
    obs = np.asarray(obs)
    angle = np.arctan2(obs[:, OBS_INDEX["hour_sin"]], obs[:, OBS_INDEX["hour_cos"]])
    # + 1e-3 h: an hour stored in float32 as 11.99999 is 12
    return np.floor(np.mod(angle * (24.0 / (2.0 * np.pi)), 24.0) + 1e-3).astype(np.int64) % 24


# the one-hot standardised as a uniformly distributed hour would be (mean 1/24, sd
# sqrt(23)/24), so that it enters on the scale of the normalised observations
_HOUR_ON = float((1.0 - 1.0 / 24.0) / (math.sqrt(23.0) / 24.0))
_HOUR_OFF = float((0.0 - 1.0 / 24.0) / (math.sqrt(23.0) / 24.0))


def policy_input_dim(hour_one_hot: bool) -> int:
    """Width of :func:`policy_inputs`' rows."""
    return OBS_DIM + (24 if hour_one_hot else 0)


def set_push_prior(bias: torch.Tensor, p_push: float) -> None:
    """Set an action head's ``bias`` (one entry per action, action 0 = no push) in place to
    the log-probabilities of "no push with probability ``1 - p_push``, each push action with
    ``p_push / (A - 1)``": with the head's weights initialised tiny, the bias decides the
    untrained policy's distribution. Shared by GRU-PPO and the SB3 references."""
    n = int(bias.shape[0])
    probs = np.full(n, p_push / (n - 1))
    probs[0] = 1.0 - p_push
    with torch.no_grad():
        bias.copy_(torch.as_tensor(np.log(probs), dtype=bias.dtype))


class GRUPolicy(nn.Module):
    """Observation (and previous action) embedding -> GRU -> actor logits and critic value.

    Parameters
    ----------
    obs_dim, n_actions : int
        Observation size and number of discrete actions.
    embed_size, hidden_size : int
        Widths of the embedding and of the GRU state.
    prev_action_input : bool
        Also embed the previous action, one-hot (``n_actions`` more inputs of the embedding;
        zeros at an episode's first step). The methods then take ``prev_action`` /
        ``prev_actions`` one-hot tensors; ``None`` means zeros (no previous action).
    """

    def __init__(self, obs_dim: int, n_actions: int, embed_size: int = 64,
                 hidden_size: int = 64, prev_action_input: bool = False,
                 critic_init_gain: float = 0.1) -> None:
        super().__init__()
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self.embed_size, self.hidden_size = int(embed_size), int(hidden_size)
        self.prev_action_input = bool(prev_action_input)
        in_dim = self.obs_dim + (self.n_actions if self.prev_action_input else 0)
        self.embed = nn.Sequential(nn.Linear(in_dim, embed_size), nn.Tanh())
        self.gru = nn.GRU(embed_size, hidden_size)
        self.actor = nn.Linear(hidden_size, n_actions)
        self.critic = nn.Linear(hidden_size, 1)
        for name, p in self.gru.named_parameters():
            if "weight" in name:
                nn.init.orthogonal_(p, 1.0)
            else:
                nn.init.zeros_(p)
        nn.init.orthogonal_(self.embed[0].weight, math.sqrt(2))
        nn.init.zeros_(self.embed[0].bias)
        nn.init.orthogonal_(self.actor.weight, 0.01)
        nn.init.zeros_(self.actor.bias)
        # values start near 0 (returns here are a few opens; see
        # GRUPPOConfig.critic_init_gain for the measurements behind the gain)
        nn.init.orthogonal_(self.critic.weight, float(critic_init_gain))
        nn.init.zeros_(self.critic.bias)

    def set_initial_push_prob(self, p_push: float) -> None:
        """Set the actor's bias so that, at initialisation, action 0 (no push) has probability
        ``1 - p_push`` and the push actions share ``p_push`` evenly (the actor's weights are
        tiny, so the bias decides the initial distribution)."""
        set_push_prior(self.actor.bias, p_push)

    def initial_state(self, n: int) -> torch.Tensor:
        """Zero hidden state for ``n`` environments, shape ``(n, hidden_size)``."""
        return torch.zeros(n, self.hidden_size)

    def _inputs(self, obs: torch.Tensor, keep: torch.Tensor, prev: torch.Tensor | None
                ) -> torch.Tensor:
        """The embedding's input: ``obs`` alone, or ``obs`` followed by the previous action's
        one-hot ``prev`` (``None``: zeros) times ``keep`` (0 where an episode starts)."""
        if not self.prev_action_input:
            return obs
        if prev is None:
            prev = obs.new_zeros(*obs.shape[:-1], self.n_actions)
        elif prev.shape != (*obs.shape[:-1], self.n_actions):
            raise ValueError(f"The previous actions must be one-hot of shape "
                             f"{(*obs.shape[:-1], self.n_actions)}, got {tuple(prev.shape)}.")
        return torch.cat([obs, prev * keep.unsqueeze(-1)], dim=-1)

    def step(self, obs: torch.Tensor, h: torch.Tensor, start: torch.Tensor,
             prev_action: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step for a batch: ``(logits (N, A), value (N,), new h (N, H))``; ``start``
        (N,) float zeroes the incoming state (and the previous action) of rows that begin an
        episode; ``prev_action`` (N, A) is the one-hot previous action (with
        ``prev_action_input``; ignored otherwise)."""
        keep = 1.0 - start
        h = h * keep.unsqueeze(-1)
        g, emb, act, cri = self.gru, self.embed[0], self.actor, self.critic
        x = torch.tanh(F.linear(self._inputs(obs, keep, prev_action), emb.weight, emb.bias))
        h_new = torch.gru_cell(x, h, g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0)
        return (F.linear(h_new, act.weight, act.bias),
                F.linear(h_new, cri.weight, cri.bias).squeeze(-1), h_new)

    def unroll(self, obs: torch.Tensor, starts: torch.Tensor, h0: torch.Tensor,
               prev_actions: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Whole sequences: ``obs (T, B, D)``, ``starts (T, B)`` -> logits ``(T, B, A)``,
        values ``(T, B)`` and the last state ``(B, H)``.

        With ``prev_action_input``, ``prev_actions (T, B, A)`` is the one-hot action taken
        before step ``t`` (``None``: zeros), zeroed where ``starts`` is 1 as in :meth:`step`
        (:func:`previous_actions` builds it from a rollout's actions).

        The state of row ``b`` is zeroed before step ``t`` where ``starts[t, b]`` is 1. The
        forward pass runs ``nn.GRU`` once per stretch between time indices where some row
        starts an episode. When gradients are needed, the recurrence is differentiated by
        :class:`_MaskedGRU` (backpropagation through time written out: four small tensor
        operations per step instead of autograd's graph of the whole unrolled cell), which
        gives the same gradients as autograd through ``nn.GRU`` up to float rounding.
        """
        x = self.embed(self._inputs(obs, 1.0 - starts, prev_actions))
        g = self.gru
        weights = (g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0)
        if torch.is_grad_enabled() and (x.requires_grad or h0.requires_grad
                                        or any(w.requires_grad for w in weights)):
            z = _MaskedGRU.apply(g, x, 1.0 - starts, h0, *weights)
        else:
            z = _gru_forward(g, x, starts, h0)
        return self.actor(z), self.critic(z).squeeze(-1), z[-1]


def previous_actions(actions: torch.Tensor, n_actions: int,
                     first: torch.Tensor | None = None) -> torch.Tensor:
    """One-hot ``(T, B, A)`` of the action taken before each step of ``actions (T, B)``:
    step ``t`` gets ``actions[t - 1]``, step 0 gets ``first`` (one-hot ``(B, A)``; ``None``:
    zeros). Episode starts are masked by the policy, not here."""
    t_len, b = actions.shape
    out = torch.zeros(t_len, b, n_actions)
    if first is not None:
        out[0] = first
    if t_len > 1:
        out[1:].scatter_(-1, actions[:-1].unsqueeze(-1), 1.0)
    return out


def _gru_forward(gru: nn.GRU, x: torch.Tensor, starts: torch.Tensor, h0: torch.Tensor
                 ) -> torch.Tensor:
    """Outputs ``(T, B, H)`` of ``gru`` over ``x (T, B, E)`` from ``h0 (B, H)``, zeroing the
    state of row ``b`` before step ``t`` where ``starts[t, b]`` is nonzero: one ``nn.GRU``
    call per stretch between time indices where some row starts an episode."""
    t_len = x.shape[0]
    cut = torch.nonzero(starts[1:].any(dim=1)).flatten().add_(1).tolist()
    bounds = [0, *cut, t_len]
    h = h0
    outs = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        h = h * (1.0 - starts[a]).unsqueeze(-1)
        out, hn = gru(x[a:b], h.unsqueeze(0))
        h = hn[0]
        outs.append(out)
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)


class _MaskedGRU(torch.autograd.Function):
    """One-layer GRU over ``(T, B, E)`` inputs with per-step state masks, differentiated by
    hand.

    Forward: ``h_in_t = h_{t-1} * mask_t`` (``h_{-1} = h0``), then PyTorch's GRU cell
    ``r, z = sigmoid(W_i{r,z} x_t + b_i{r,z} + W_h{r,z} h_in_t + b_h{r,z})``,
    ``n = tanh(W_in x_t + b_in + r * (W_hn h_in_t + b_hn))``, ``h_t = (1 - z) n + z h_in_t``;
    the states come from ``nn.GRU`` (:func:`_gru_forward`) and the gates are recomputed from
    them in a few whole-sequence operations. Backward: the gate derivatives are precomputed
    for all steps, the sequential part is ``dh_{t-1} = mask_t (z_t dh_t + (F_t dh_t) W_hh)``,
    and the weight gradients are whole-sequence matrix products.
    """

    @staticmethod
    def forward(ctx: Any, gru: nn.GRU, x: torch.Tensor, mask: torch.Tensor, h0: torch.Tensor,
                w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
                ) -> torch.Tensor:
        t_len, b, e = x.shape
        hid = h0.shape[-1]
        hs = _gru_forward(gru, x, 1.0 - mask, h0)
        m = mask.unsqueeze(-1)
        h_in = torch.empty_like(hs)
        torch.mul(h0, m[0], out=h_in[0])
        torch.mul(hs[:-1], m[1:], out=h_in[1:])
        gi = torch.addmm(b_ih, x.reshape(t_len * b, e), w_ih.t()).view(t_len, b, 3 * hid)
        gh = torch.addmm(b_hh, h_in.view(t_len * b, hid), w_hh.t()).view(t_len, b, 3 * hid)
        rz = torch.add(gi[..., :2 * hid], gh[..., :2 * hid]).sigmoid_()
        gh_n = gh[..., 2 * hid:]
        n = torch.addcmul(gi[..., 2 * hid:], rz[..., :hid], gh_n).tanh_()
        # steps where some row's state is scaled (zeroed): the only ones the backward masks
        ctx.masked = set(torch.nonzero((mask != 1).any(dim=1)).flatten().tolist())
        ctx.save_for_backward(x, mask, h_in, rz, n, gh_n, w_ih, w_hh)
        return hs

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, mask, h_in, rz, n, gh_n, w_ih, w_hh = ctx.saved_tensors
        t_len, b, hid = h_in.shape
        r, z = rz[..., :hid], rz[..., hid:]
        omz = 1.0 - z
        dn_pre = omz * (1.0 - n * n)                       # d n_pre / d h_t
        # f[:, :, k] = d(gate k's pre-activation from W_hh h_in + b_hh) / d h_t, k = r, z, n
        f = torch.empty(t_len, b, 3, hid, dtype=dout.dtype)
        torch.mul(dn_pre, r, out=f[:, :, 2])
        torch.mul(f[:, :, 2] * gh_n, 1.0 - r, out=f[:, :, 0])
        torch.mul((h_in - n) * z, omz, out=f[:, :, 1])
        fs, zs, ms, douts = f.unbind(0), z.unbind(0), mask.unsqueeze(-1).unbind(0), \
            dout.unbind(0)
        dh_all = torch.empty(t_len, b, hid, dtype=dout.dtype)
        dgh_all = torch.empty(t_len, b, 3, hid, dtype=dout.dtype)
        dhs, dghs = dh_all.unbind(0), dgh_all.unbind(0)
        dh = torch.zeros(b, hid, dtype=dout.dtype)
        masked = ctx.masked
        for t in range(t_len - 1, -1, -1):
            d = torch.add(dh, douts[t], out=dhs[t])
            g = torch.mul(fs[t], d.unsqueeze(1), out=dghs[t]).view(b, 3 * hid)
            dh = torch.addmm(d * zs[t], g, w_hh)
            if t in masked:
                dh.mul_(ms[t])
        dgh = dgh_all.view(t_len * b, 3 * hid)
        dgi_rz = dgh[:, :2 * hid]                          # same as the W_hh part
        dgi_n = (dh_all * dn_pre).view(t_len * b, hid)
        x2 = x.reshape(t_len * b, -1)
        dx = None
        if ctx.needs_input_grad[1]:
            dx = torch.addmm(dgi_rz @ w_ih[:2 * hid], dgi_n, w_ih[2 * hid:]).view_as(x)
        dw_ih = torch.cat([dgi_rz.t() @ x2, dgi_n.t() @ x2], dim=0)
        db_ih = torch.cat([dgi_rz.sum(0), dgi_n.sum(0)])
        dw_hh = dgh.t() @ h_in.reshape(t_len * b, hid)
        return (None, dx, None, dh, dw_ih, dw_hh, db_ih, dgh.sum(0))


# ================================================================================== envs
def make_train_env(config: GRUPPOConfig, params: PopulationParams | None = None) -> Any:
    """The vector env a run trains on, in same-step autoreset mode.

    ``covercast/PopulationVector-v0`` -> :class:`~covercast.envs.vector.PopulationVectorEnv`;
    a single-user id -> ``SyncVectorEnv`` of ``num_envs`` copies made by
    :func:`covercast.envs.make`.
    """
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode

    from covercast.envs.registration import make, make_vec

    kw = env_kwargs(config, params, config.horizon_days)
    if config.env_id == _VECTOR_ID:
        return make_vec(config.num_envs, **kw)

    def thunk() -> gym.Env:
        return make(config.env_id, **kw)

    return gym.vector.SyncVectorEnv([thunk] * config.num_envs,
                                    autoreset_mode=AutoresetMode.SAME_STEP)


def env_kwargs(config: GRUPPOConfig, params: PopulationParams | None,
               horizon_days: float) -> dict[str, Any]:
    """The keyword arguments of the run's environment (training or validation): the config's
    ``env_kwargs``, ``params`` when given, ``horizon_days`` and, except for CoverStyle, whose
    decisions are the given push times, ``slot_minutes``."""
    kw: dict[str, Any] = dict(config.env_kwargs)
    if params is not None:
        kw["params"] = params
    kw["horizon_days"] = horizon_days
    if config.env_id != "covercast/CoverStyle-v0":
        kw["slot_minutes"] = config.slot_minutes
    return kw


def _episode_len(env: Any) -> int:
    steps = getattr(env, "max_episode_steps", None)
    if steps is None:
        spec = getattr(env.envs[0], "spec", None)
        steps = getattr(spec, "max_episode_steps", None)
    if steps is None:
        raise ValueError("Cannot tell the episode length of the training env; set `num_steps`.")
    return int(steps)


def _info_array(info: Mapping[str, Any], key: str, n: int, done: np.ndarray) -> np.ndarray:
    """The step's ``info[key]`` per env; where an episode ended, SyncVectorEnv moved the
    step's info into ``final_info`` (the vector env keeps it in both)."""
    if key in info and not done.any():
        return np.asarray(info[key], dtype=np.float64)
    out = np.zeros(n, dtype=np.float64)
    if key in info:
        out[:] = np.asarray(info[key], dtype=np.float64)
    fin = info.get("final_info")
    if done.any() and isinstance(fin, Mapping) and key in fin:
        vals = np.asarray(fin[key], dtype=np.float64)
        mask = np.asarray(fin.get(f"_{key}", done), dtype=bool) & done
        out[mask] = vals[mask]
    return out


# ================================================================================== trainer
class GRUPPOTrainer:
    """Train a GRU policy with PPO; checkpoint and resume.

    Parameters
    ----------
    config : GRUPPOConfig
        The run's settings.
    params : PopulationParams, optional
        The simulated population (default: the environment's default). Saved as
        ``params.json`` in checkpoints so that a resumed run meets the same users.
    out : path, optional
        Run folder: ``progress.csv``, TensorBoard events (``tb/``) and checkpoints
        (``checkpoint/``). None: no files.
    progress : bool
        Show a tqdm progress bar over environment steps.
    """

    def __init__(self, config: GRUPPOConfig, params: PopulationParams | None = None,
                 out: str | os.PathLike | None = None, progress: bool = True) -> None:
        if not isinstance(config, GRUPPOConfig):
            raise ValueError(f"`config` must be a GRUPPOConfig, got {type(config).__name__}.")
        config.validate()
        if params is not None and not isinstance(params, PopulationParams):
            raise ValueError(f"`params` must be a PopulationParams or None, got "
                             f"{type(params).__name__}.")
        self.config = config
        self.params = params
        self.out = None if out is None else Path(out)
        self.progress = bool(progress)
        torch.set_num_threads(config.torch_threads)
        self.env = make_train_env(config, params)
        self.n_actions = int(self.env.single_action_space.n)
        self.layout_mode = {"covercast/PushTiming-v0": "timing",
                            "covercast/CoverStyle-v0": "style"}.get(config.env_id, "schedule")
        self.n_styles = self.n_actions - 1 if self.layout_mode == "schedule" else (
            self.n_actions if self.layout_mode == "style" else
            len((params or _default_params()).styles))
        ep_len = _episode_len(self.env)
        self.num_steps = int(config.num_steps or ep_len)
        self.batch_size = self.num_steps * config.num_envs
        self.num_iterations = max(1, math.ceil(config.total_steps / self.batch_size))
        root = np.random.SeedSequence(config.seed)
        init_ss, sample_ss, mb_ss, val_ss = root.spawn(4)
        #: Seed of the validation users and of the validated agents (``eval_every``).
        self.validation_seed = int(val_ss.generate_state(1)[0])
        torch.manual_seed(int(init_ss.generate_state(1)[0]))
        self.policy = GRUPolicy(policy_input_dim(config.hour_one_hot), self.n_actions,
                                config.embed_size, config.hidden_size,
                                prev_action_input=config.prev_action_input,
                                critic_init_gain=config.critic_init_gain)
        if config.initial_push_prob is not None and self.layout_mode in ("schedule", "timing"):
            self.policy.set_initial_push_prob(config.initial_push_prob)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.learning_rate,
                                          eps=1e-5)
        self.obs_rms = RunningMeanStd(OBS_DIM)
        self.torch_gen = torch.Generator().manual_seed(int(sample_ss.generate_state(1)[0]))
        self.np_rng = np.random.default_rng(mb_ss)
        self.iteration = 0
        self.global_step = 0
        self.history: list[dict[str, float]] = []
        #: Lagrange multipliers of the constraints set in the config (0 while unconstrained).
        self.lagrange = {k: 0.0 for k in LAGRANGE_SCALES}
        #: Validation results (``eval_every``), one dict per evaluation.
        self.evals: list[dict[str, float]] = []
        #: The validation row of the best policy so far (None: none validated yet).
        self.best: dict[str, float] | None = None
        self._best_tensors: dict[str, torch.Tensor] | None = None
        #: The greedy decodings tried at the end (:meth:`calibrate_push_threshold`).
        self.threshold_evals: list[dict[str, float]] = []
        #: The final weights' greedy decoding, when they were calibrated (no ``eval_every``).
        self.final_push_threshold: float | None = None
        self._final_calibrated = False
        self._greedy_collapse = False
        self._pending_greedy_warning: str | None = None
        #: ``[code, rollouts in a row]`` of the collapse condition the last rollouts met
        #: (code as in :data:`COLLAPSE_KINDS`).
        self._collapse_streak = [0, 0]
        #: Collapse kinds already warned about in this run.
        self._collapse_warned: set[str] = set()
        #: The collapse flag of the last iteration (:data:`COLLAPSE_KINDS` code).
        self.collapse_code = 0

    # ------------------------------------------------------------------ training
    def env_seed(self, iteration: int) -> int:
        """Seed of the vector env's reset at the start of ``iteration``."""
        return int(np.random.SeedSequence([self.config.seed, iteration])
                   .generate_state(1, dtype=np.uint32)[0])

    def train(self, iterations: int | None = None,
              callback: Callable[[dict[str, float]], bool] | None = None) -> list[dict[str, float]]:
        """Run PPO iterations (default: up to the config's ``total_steps``).

        ``callback(row)`` is called after each iteration with its log row; returning False
        stops training. Returns the log rows of the iterations run now.
        """
        todo = self.num_iterations - self.iteration if iterations is None else int(iterations)
        if todo < 0:
            raise ValueError(f"`iterations` must be >= 0, got {iterations!r}.")
        from tqdm.auto import tqdm

        writer = self._writer()
        cfg = self.config
        rows = []
        bar = tqdm(total=todo * self.batch_size, disable=not self.progress, unit="step",
                   desc=f"gru-ppo {self.config.env_id.split('/')[-1]}")
        try:
            for _ in range(todo):
                t0 = time.perf_counter()
                self.final_push_threshold, self._final_calibrated = None, False
                batch, stats = self._rollout()
                losses = self._update(batch)
                self.iteration += 1
                self.global_step += self.batch_size
                row = {"iteration": self.iteration, "global_step": self.global_step, **stats,
                       **losses, "sps": self.batch_size / max(time.perf_counter() - t0, 1e-9)}
                row["collapse"] = float(self._check_collapse(row))
                rows.append(row)
                self.history.append(row)
                self._log(row, writer)
                if cfg.eval_every and (self.iteration % cfg.eval_every == 0
                                       or self.iteration == self.num_iterations):
                    self.validate(writer)
                bar.update(self.batch_size)
                post = {"ret": f"{row['episode_return']:.3f}", "ctr": f"{row['ctr']:.4f}"}
                if self.best is not None:
                    post["best"] = f"{self.best['return']:.3f}@{int(self.best['iteration'])}"
                bar.set_postfix(post)
                if self.out is not None and cfg.checkpoint_every and \
                        self.iteration % cfg.checkpoint_every == 0:
                    self.save(self.out / "checkpoint")
                if callback is not None and callback(row) is False:
                    break
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        # the best validated policy is calibrated whatever the env; the final weights (no
        # eval_every) only on the population vector env, where 8 validations cost about as
        # much as one rollout (on a single-user env, 512 episodes each: seconds to minutes)
        if (cfg.eval_deterministic and self.iteration >= self.num_iterations
                and (self.best is not None or cfg.env_id == _VECTOR_ID)
                and (self.best is None or "push_threshold" not in self.best)
                and not self._final_calibrated):
            chosen = self.calibrate_push_threshold()
            self._final_calibrated = self.best is None and chosen is not None
            # a never-push flag from the greedy actions alone is lifted when the calibrated
            # decoding pushes
            if (chosen is not None and self._greedy_collapse and self.collapse_code == -1
                    and chosen["pushes_per_day"] >= cfg.collapse_min_pushes_per_day):
                self.collapse_code = 0
        if self._pending_greedy_warning and self.collapse_code == -1 \
                and "never-push" not in self._collapse_warned:
            import warnings

            self._collapse_warned.add("never-push")
            warnings.warn(
                f"GRU-PPO policy collapse (never-push) at iteration {self.iteration} "
                f"(seed {cfg.seed}): {self._pending_greedy_warning}. A collapsed policy stops "
                "producing the pushes PPO learns from; see the `collapse` column of "
                "progress.csv.", PolicyCollapseWarning, stacklevel=2)
        self._pending_greedy_warning = None
        if self.out is not None:
            self.save(self.out / "checkpoint")
        return rows

    @property
    def collapse(self) -> str | None:
        """``"never-push"`` or ``"always-push"`` when the last iteration was flagged as
        collapsed (see ``GRUPPOConfig.collapse_patience``), else None."""
        return COLLAPSE_KINDS[self.collapse_code]

    def _collapse_condition(self, rate: float) -> int:
        """-1 / +1 / 0: a push rate per user-day below the floor / above the ceiling / in."""
        cfg = self.config
        slots_per_day = 1440.0 / cfg.slot_minutes
        if not math.isfinite(rate):
            return 0
        if rate < cfg.collapse_min_pushes_per_day:
            return -1
        return 1 if rate > cfg.collapse_max_push_share * slots_per_day else 0

    def _check_collapse(self, row: Mapping[str, float]) -> int:
        """Update the collapse flag from an iteration's row; warn the first time a kind is
        flagged. A rollout meets a condition when its sampled push rate does; at the last
        iteration of the run, also when the greedy (most likely) actions' rate does."""
        if self.layout_mode == "style":         # every step is a push: nothing to detect
            return 0
        code = self._collapse_condition(row["pushes_per_day"])
        streak = self._collapse_streak
        streak[:] = [code, streak[1] + 1] if code and code == streak[0] else [code, int(bool(code))]
        flagged = code if code and streak[1] >= self.config.collapse_patience else 0
        greedy = False
        if not flagged and self.iteration >= self.num_iterations:
            flagged = self._collapse_condition(row["greedy_pushes_per_day"])
            greedy = bool(flagged)
        self._greedy_collapse = greedy
        self.collapse_code = flagged
        kind = COLLAPSE_KINDS[flagged]
        cfg = self.config
        if greedy and flagged == -1 and cfg.eval_deterministic and cfg.push_thresholds:
            # the calibrated greedy decoding (end of train) decides; it warns if still flagged
            self._pending_greedy_warning = (f"its greedy actions push "
                                            f"{row['greedy_pushes_per_day']:.3g} times a day and "
                                            "no calibrated push threshold pushes either")
            return flagged
        if kind is not None and kind not in self._collapse_warned:
            import warnings

            self._collapse_warned.add(kind)
            how = (f"its greedy actions push {row['greedy_pushes_per_day']:.3g} times a day"
                   if greedy else f"it has pushed {row['pushes_per_day']:.3g} times per "
                   f"user-day for {streak[1]} rollouts in a row")
            warnings.warn(
                f"GRU-PPO policy collapse ({kind}) at iteration {self.iteration} "
                f"(seed {self.config.seed}): {how}. A collapsed policy stops producing the "
                "pushes PPO learns from; see the `collapse` column of progress.csv.",
                PolicyCollapseWarning, stacklevel=3)
        return flagged

    def validate(self, writer: Any = None) -> dict[str, float]:
        """Run the current policy on the validation users (see ``GRUPPOConfig.eval_every``);
        record the result in :attr:`evals` (and ``eval.csv``) and keep the policy when it is
        the best so far.

        The row holds the validation users' mean ``return``, ``ctr`` (opens per delivered
        push), ``opens`` and ``dwell_min`` per user, ``pushes_per_day`` and
        ``opt_outs_per_day`` per simulated user-day (the rates the constraints are set in),
        ``opt_out_rate`` (share of the users who opted out) and ``feasible``: whether those
        rates keep the config's constraints (always 1 without constraints). The best policy is
        the feasible one with the highest mean return; while none is feasible, the one with
        the highest return. The validation users are the same every time, so the ranking
        compares policies, not user draws.
        """
        row = self._validation_row(self.agent(seed=self.validation_seed))
        self.evals.append(row)
        if self.best is None or (row["feasible"], row["return"]) > (self.best["feasible"],
                                                                     self.best["return"]):
            self.best = dict(row)
            self._best_tensors = self._policy_tensors()
        self._log(row, writer, "eval.csv", EVAL_COLUMNS, "eval")
        return row

    def calibrate_push_threshold(self) -> dict[str, float] | None:
        """Choose the greedy decoding (``GRUPPOConfig.push_thresholds``) of the policy the run
        hands out: the best validated one (with ``eval_every``), else the final weights. Run
        it on the validation users with the plain most likely action and with each threshold,
        keep the rule with the best return that keeps the constraints (while none does, the
        best return) -- in ``best["push_threshold"]``, or :attr:`final_push_threshold` for the
        final weights (None: the most likely action) -- record every row in
        :attr:`threshold_evals` and ``push_threshold.csv``, and return the chosen row (None
        without thresholds, or in the ``style`` layout, where every step is a push)."""
        cfg = self.config
        if not cfg.push_thresholds or self.layout_mode == "style":
            return None
        which = "best" if self._best_tensors is not None and self.best is not None else "final"
        rows = []
        for t in (None, *cfg.push_thresholds):
            agent = self.agent(seed=self.validation_seed, which=which)
            agent.push_threshold = t
            row = self._validation_row(agent)
            row["push_threshold"] = float("nan") if t is None else float(t)
            rows.append(row)
            self._log(row, None, "push_threshold.csv", THRESHOLD_COLUMNS, "threshold")
        chosen = max(rows, key=lambda r: (r["feasible"], r["return"]))
        t = None if math.isnan(chosen["push_threshold"]) else chosen["push_threshold"]
        if which == "best":
            self.best["push_threshold"] = t
            self.best["calibrated_return"] = chosen["return"]
            self.best["calibrated_pushes_per_day"] = chosen["pushes_per_day"]
        else:
            self.final_push_threshold = t
        self.threshold_evals = rows
        return chosen

    def _validation_row(self, agent: GRUPPOAgent) -> dict[str, float]:
        """``agent`` on the validation users: the row :meth:`validate` describes."""
        from covercast.agents.evaluate import evaluate, evaluate_vector

        cfg = self.config
        kw = env_kwargs(cfg, self.params, cfg.eval_horizon_days or cfg.horizon_days)
        if cfg.env_id == _VECTOR_ID:
            df = evaluate_vector(agent, cfg.eval_users, self.validation_seed, env_kwargs=kw,
                                 deterministic=cfg.eval_deterministic)
        else:
            df = evaluate(agent, cfg.env_id, cfg.eval_users, self.validation_seed,
                          env_kwargs=kw, deterministic=cfg.eval_deterministic)
        days = float(df["days"].sum())
        pushes = float(df["pushes"].sum())
        row = {"iteration": float(self.iteration), "global_step": float(self.global_step),
               "return": float(df["return"].mean()),
               "ctr": float(df["opens"].sum()) / pushes if pushes else float("nan"),
               "opens": float(df["opens"].mean()), "dwell_min": float(df["dwell_min"].mean()),
               "pushes_per_day": pushes / days if days else float("nan"),
               "opt_outs_per_day": float(df["opted_out"].sum()) / days if days else float("nan"),
               "opt_out_rate": float(df["opted_out"].mean())}
        lo, hi, opt = cfg.min_pushes_per_day, cfg.max_pushes_per_day, cfg.max_opt_outs_per_day
        row["feasible"] = float((lo is None or row["pushes_per_day"] >= lo)
                                and (hi is None or row["pushes_per_day"] <= hi)
                                and (opt is None or row["opt_outs_per_day"] <= opt))
        return row

    def _policy_tensors(self) -> dict[str, torch.Tensor]:
        """Copies of the policy's weights (``policy.*``) and observation statistics."""
        t = {f"policy.{k}": v.detach().clone().contiguous()
             for k, v in self.policy.state_dict().items()}
        t.update(self.obs_rms.state())
        return t

    def _progress_left(self) -> float:
        """``1 - iteration / num_iterations`` (at least 0): the annealing factor."""
        return max(1.0 - self.iteration / self.num_iterations, 0.0)

    def _ent_coef(self) -> float:
        """The exploration bonus's coefficient of this iteration (``anneal_ent``,
        ``ent_anneal_end``)."""
        cfg = self.config
        if not cfg.anneal_ent:
            return cfg.ent_coef
        done = 1.0 - self._progress_left()
        return cfg.ent_coef * max(1.0 - done / cfg.ent_anneal_end, 0.0)

    def _lr(self) -> float:
        if not self.config.anneal_lr:
            return self.config.learning_rate
        return self._progress_left() * self.config.learning_rate

    def _norm(self, obs: np.ndarray) -> np.ndarray:
        """The policy's inputs for raw observations (:func:`policy_inputs`)."""
        cfg = self.config
        return policy_inputs(obs, self.obs_rms if cfg.normalize_obs else None, cfg.hour_one_hot)

    def _rollout(self) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Collect ``num_steps`` steps of every environment from a fresh reset.

        The loop runs under ``torch.inference_mode`` and writes into preallocated NumPy
        buffers (wrapped as tensors afterwards, no per-step copies between the two); actions
        are drawn by inverse CDF from uniforms taken from the trainer's generator in one call.
        """
        cfg, env, pol = self.config, self.env, self.policy
        n, t_len, n_act = cfg.num_envs, self.num_steps, self.n_actions
        obs_b = np.empty((t_len, n, pol.obs_dim), dtype=np.float32)
        starts = np.zeros((t_len, n), dtype=np.float32)
        actions = np.empty((t_len, n), dtype=np.int64)
        logprobs = np.empty((t_len, n), dtype=np.float32)
        rewards = np.empty((t_len, n), dtype=np.float32)
        pushed_b = np.empty((t_len, n), dtype=np.float32)
        opted_b = np.empty((t_len, n), dtype=np.float32)
        values = np.empty((t_len + 1, n), dtype=np.float32)
        nonterm = np.ones((t_len + 1, n), dtype=np.float32)
        u_all = torch.rand(t_len, n, 1, generator=self.torch_gen)
        obs, _ = env.reset(seed=self.env_seed(self.iteration))
        if cfg.normalize_obs:
            self.obs_rms.update(obs)
        ep_ret = np.zeros(n)
        ep_len = np.zeros(n)
        ep_push = np.zeros(n)
        ep_open = np.zeros(n)
        done_ret, done_len, done_push, done_open, done_optout = [], [], [], [], []
        prev_in = pol.prev_action_input
        greedy_push = np.zeros(n)     # slots where the most likely action is a push
        with torch.inference_mode():
            h = pol.initial_state(n)
            prev = None                 # one-hot previous actions (N, A); None: none yet
            start_np = np.ones(n, dtype=np.float32)
            for t in range(t_len):
                obs_b[t] = self._norm(obs)
                starts[t] = start_np
                logits, value, h_new = pol.step(torch.from_numpy(obs_b[t]), h,
                                                torch.from_numpy(starts[t]), prev)
                logp_all = torch.log_softmax(logits, dim=-1)
                greedy_push += (logits.argmax(dim=-1) != 0).numpy()
                a = (logp_all.exp().cumsum(dim=-1) < u_all[t]).sum(dim=-1).clamp_(max=n_act - 1)
                if prev_in:
                    prev = F.one_hot(a, n_act).float()
                a_np = a.numpy()
                actions[t] = a_np
                logprobs[t] = logp_all.gather(-1, a.unsqueeze(-1)).squeeze(-1).numpy()
                values[t] = value.numpy()
                obs, r, term, trunc, info = env.step(a_np)
                term = np.asarray(term, dtype=bool)
                trunc = np.asarray(trunc, dtype=bool)
                done = term | trunc
                r = np.asarray(r, dtype=np.float64)
                ep_ret += r
                ep_len += 1
                pushed_b[t] = _info_array(info, "pushed", n, done)
                opted_b[t] = term
                ep_push += pushed_b[t]
                ep_open += _info_array(info, "opened", n, done)
                if trunc.any():
                    r = r.copy()
                    idx = np.flatnonzero(trunc)
                    fo = info["final_obs"]
                    final = np.stack([np.asarray(fo[i], dtype=np.float32) for i in idx])
                    fx = torch.from_numpy(self._norm(final))
                    _, v_final, _ = pol.step(fx, h_new[idx], torch.zeros(idx.size),
                                             None if prev is None else prev[idx])
                    r[idx] += cfg.gamma * v_final.numpy()
                rewards[t] = r
                if done.any():
                    for i in np.flatnonzero(done):
                        done_ret.append(ep_ret[i])
                        done_len.append(ep_len[i])
                        done_push.append(ep_push[i])
                        done_open.append(ep_open[i])
                        done_optout.append(bool(term[i]))
                    ep_ret[done] = ep_len[done] = ep_push[done] = ep_open[done] = 0.0
                h = h_new
                start_np = done.astype(np.float32)
                nonterm[t + 1] = 1.0 - start_np
                if cfg.normalize_obs:
                    self.obs_rms.update(obs)
            # bootstrap the unfinished episodes
            _, next_value, _ = pol.step(torch.from_numpy(self._norm(obs)), h,
                                        torch.from_numpy(start_np), prev)
            values[t_len] = next_value.numpy()
        constraint_stats = self._apply_constraints(rewards, pushed_b, opted_b)
        user_days = t_len * n * cfg.slot_minutes / 1440.0
        constraint_stats["greedy_pushes_per_day"] = float(greedy_push.sum()) / user_days
        # generalised advantage estimation (float32, as the tensors of the update)
        adv = np.empty((t_len, n), dtype=np.float32)
        gamma, gl = np.float32(cfg.gamma), np.float32(cfg.gamma * cfg.gae_lambda)
        delta = rewards + gamma * values[1:] * nonterm[1:] - values[:-1]
        coef = gl * nonterm[1:]
        last = np.zeros(n, dtype=np.float32)
        for t in range(t_len - 1, -1, -1):
            last = delta[t] + coef[t] * last
            adv[t] = last
        values_t = torch.from_numpy(values[:t_len])
        adv_t = torch.from_numpy(adv)
        batch = {"obs": torch.from_numpy(obs_b), "starts": torch.from_numpy(starts),
                 "actions": torch.from_numpy(actions), "logprobs": torch.from_numpy(logprobs),
                 "values": values_t, "advantages": adv_t, "returns": adv_t + values_t}
        if prev_in:
            batch["prev_actions"] = previous_actions(batch["actions"], n_act)
        if not done_ret:        # no episode ended: report the partial ones
            done_ret, done_len = list(ep_ret), list(ep_len)
            done_push, done_open, done_optout = list(ep_push), list(ep_open), [False] * n
        pushes, opens = float(np.sum(done_push)), float(np.sum(done_open))
        stats = {"episodes": float(len(done_ret)), "episode_return": float(np.mean(done_ret)),
                 "episode_length": float(np.mean(done_len)),
                 "pushes": float(np.mean(done_push)), "opens": float(np.mean(done_open)),
                 "ctr": opens / pushes if pushes > 0 else float("nan"),
                 "opt_out_rate": float(np.mean(done_optout)), **constraint_stats}
        return batch, stats

    def _apply_constraints(self, rewards: np.ndarray, pushed: np.ndarray,
                           opted: np.ndarray) -> dict[str, float]:
        """Charge the rollout's rewards with the current Lagrange multipliers (in place), then
        move the multipliers by the rollout's rates (dual ascent); returns the rates and the
        multipliers the rollout was trained with."""
        cfg = self.config
        user_days = rewards.size * cfg.slot_minutes / 1440.0
        rates = {"pushes_per_day": float(pushed.sum()) / user_days,
                 "opt_outs_per_day": float(opted.sum()) / user_days}
        lam = self.lagrange
        n_push = float(pushed.sum())
        push_price = lam["max_pushes"] - lam["min_pushes"] + (
            lam["opt_outs"] * float(opted.sum()) / n_push if n_push else 0.0)
        if push_price:
            rewards -= np.float32(push_price) * pushed
        used = {f"lambda_{k}": v for k, v in lam.items()}
        for key, limit, rate, sign in (
                ("max_pushes", cfg.max_pushes_per_day, rates["pushes_per_day"], 1.0),
                ("min_pushes", cfg.min_pushes_per_day, rates["pushes_per_day"], -1.0),
                ("opt_outs", cfg.max_opt_outs_per_day, rates["opt_outs_per_day"], 1.0)):
            if limit is not None:
                step = cfg.lagrange_lr * LAGRANGE_SCALES[key] * sign * (rate - limit) / limit
                lam[key] = max(0.0, lam[key] + step)
        return rates | used

    def _bonus(self, logits: torch.Tensor, logp_all: torch.Tensor) -> torch.Tensor:
        """The exploration bonus the loss rewards (see ``GRUPPOConfig.entropy_bonus``), per
        step."""
        kind = self.config.entropy_bonus
        if kind == "cross-entropy":
            if self.layout_mode != "schedule":
                return logp_all.mean(-1)
            logp_push = torch.logsumexp(logp_all[..., 1:], dim=-1)
            logp_style = torch.log_softmax(logits[..., 1:], dim=-1)
            return 0.5 * (logp_all[..., 0] + logp_push) + logp_style.mean(-1)
        if kind == "joint" or self.layout_mode != "schedule":
            return -(logp_all.exp() * logp_all).sum(-1)
        p_wait = logp_all[..., 0].exp()
        h_push = -(p_wait * logp_all[..., 0] + (1.0 - p_wait) * torch.log1p(-p_wait.clamp(
            max=1.0 - 1e-7)))
        logp_style = torch.log_softmax(logits[..., 1:], dim=-1)
        return h_push - (logp_style.exp() * logp_style).sum(-1)

    def _update(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.config
        lr = self._lr()
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        ent_coef = self._ent_coef()
        n = cfg.num_envs
        groups = np.array_split(np.arange(n), cfg.num_minibatches)
        h0 = self.policy.initial_state(n)
        pg_l, v_l, ent_l, kl_l, clip_l = [], [], [], [], []
        stop = False
        for _ in range(cfg.update_epochs):
            perm = self.np_rng.permutation(n)
            for g in groups:
                mb = torch.from_numpy(perm[g])
                prev = b["prev_actions"][:, mb] if "prev_actions" in b else None
                logits, newv, _ = self.policy.unroll(b["obs"][:, mb], b["starts"][:, mb],
                                                     h0[mb], prev)
                logp_all = torch.log_softmax(logits, dim=-1)
                newlogp = logp_all.gather(-1, b["actions"][:, mb].unsqueeze(-1)).squeeze(-1)
                bonus = self._bonus(logits, logp_all)
                logratio = newlogp - b["logprobs"][:, mb]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clip_l.append(float(((ratio - 1.0).abs() > cfg.clip_coef).float().mean()))
                adv = b["advantages"][:, mb]
                if cfg.norm_adv:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss = torch.max(-adv * ratio, -adv * torch.clamp(
                    ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
                ret, oldv = b["returns"][:, mb], b["values"][:, mb]
                if cfg.clip_vloss:
                    v_clipped = oldv + torch.clamp(newv - oldv, -cfg.clip_coef, cfg.clip_coef)
                    v_loss = 0.5 * torch.max((newv - ret) ** 2, (v_clipped - ret) ** 2).mean()
                else:
                    v_loss = 0.5 * ((newv - ret) ** 2).mean()
                loss = pg_loss - ent_coef * bonus.mean() + cfg.vf_coef * v_loss
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                pg_l.append(float(pg_loss.detach()))
                v_l.append(float(v_loss.detach()))
                with torch.no_grad():
                    ent_l.append(float(-(logp_all.exp() * logp_all).sum(-1).mean()))
                kl_l.append(float(approx_kl))
            if cfg.target_kl is not None and kl_l[-1] > cfg.target_kl:
                stop = True
            if stop:
                break
        y_pred, y_true = b["values"].flatten(), b["returns"].flatten()
        var_y = float(y_true.var())
        ev = float("nan") if var_y == 0 else 1.0 - float((y_true - y_pred).var()) / var_y
        return {"policy_loss": float(np.mean(pg_l)), "value_loss": float(np.mean(v_l)),
                "entropy": float(np.mean(ent_l)), "approx_kl": float(np.mean(kl_l)),
                "clipfrac": float(np.mean(clip_l)), "explained_variance": ev,
                "learning_rate": lr}

    # ------------------------------------------------------------------ logging
    def _writer(self) -> Any:
        if self.out is None or not self.config.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            import warnings
            warnings.warn("tensorboard is not installed: logging to progress.csv only "
                          "(pip install tensorboard, or the `rl` extra).", stacklevel=3)
            return None
        return SummaryWriter(str(self.out / "tb"))

    def _log(self, row: dict[str, float], writer: Any, name: str = "progress.csv",
             columns: tuple[str, ...] = CSV_COLUMNS, tag: str = "train") -> None:
        """Append ``row`` to the run folder's CSV ``name`` and, with a writer, its columns
        after ``iteration`` and ``global_step`` to TensorBoard under ``tag/``."""
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / name
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(columns))
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, float("nan")) for k in columns})
        if writer is not None:
            for k in columns[2:]:
                v = row.get(k)
                if v is not None and math.isfinite(v):
                    writer.add_scalar(f"{tag}/{k}", v, int(row["global_step"]))

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | os.PathLike) -> Path:
        """Write a checkpoint folder: ``model.safetensors`` (weights, observation statistics,
        the action-sampling generator), ``optimizer.pt`` (loaded with ``weights_only=True``),
        ``config.json``, ``state.json`` (iteration, step, minibatch RNG) and ``params.json``."""
        from safetensors.torch import save_file

        d = Path(path)
        d.mkdir(parents=True, exist_ok=True)
        tensors = self._policy_tensors()
        if self._best_tensors is not None:
            tensors.update({f"best.{k}": v for k, v in self._best_tensors.items()})
        tensors["torch_gen_state"] = self.torch_gen.get_state().clone()
        atomic_write(d / "model.safetensors", lambda tmp: save_file(tensors, str(tmp)))
        atomic_write(d / "optimizer.pt", lambda tmp: torch.save(self.optimizer.state_dict(), tmp))
        if self.params is not None:
            self.params.save(d / "params.json")
        elif (d / "params.json").exists():
            (d / "params.json").unlink()
        atomic_write_text(d / "config.json", json.dumps(self.config.to_dict(), indent=2))
        state = {"iteration": self.iteration, "global_step": self.global_step,
                 "np_rng": self.np_rng.bit_generator.state, "n_actions": self.n_actions,
                 "mode": self.layout_mode, "n_styles": self.n_styles,
                 "history": self.history, "lagrange": self.lagrange, "evals": self.evals,
                 "best": self.best, "threshold_evals": self.threshold_evals,
                 "final_push_threshold": self.final_push_threshold,
                 "final_calibrated": self._final_calibrated,
                 "collapse_streak": self._collapse_streak,
                 "collapse_warned": sorted(self._collapse_warned),
                 "collapse_code": self.collapse_code}
        atomic_write_text(d / "state.json", json.dumps(state, indent=2))
        return d

    @classmethod
    def load(cls, path: str | os.PathLike, out: str | os.PathLike | None = None,
             progress: bool = True, **overrides: Any) -> GRUPPOTrainer:
        """Resume from a checkpoint folder written by :meth:`save`.

        ``overrides`` replace config fields (e.g. ``total_steps`` to train further).
        """
        from safetensors.torch import load_file

        d = Path(path)
        if not (d / "model.safetensors").is_file():
            raise FileNotFoundError(f"No GRU-PPO checkpoint in {d} (model.safetensors missing).")
        cfg = _read_json(d / "config.json")
        cfg.update(overrides)
        config = GRUPPOConfig.from_checkpoint_dict(cfg)
        params = PopulationParams.load(d / "params.json") if (d / "params.json").exists() \
            else None
        trainer = cls(config, params=params, out=out, progress=progress)
        tensors = _read_tensors(d / "model.safetensors", load_file)
        trainer.policy.load_state_dict({k[len("policy."):]: v for k, v in tensors.items()
                                        if k.startswith("policy.")})
        trainer.obs_rms.load(tensors)
        trainer.torch_gen.set_state(tensors["torch_gen_state"])
        trainer.optimizer.load_state_dict(torch.load(d / "optimizer.pt", weights_only=True))
        state = _read_json(d / "state.json")
        trainer.iteration = int(state["iteration"])
        trainer.global_step = int(state["global_step"])
        trainer.np_rng.bit_generator.state = state["np_rng"]
        trainer.history = list(state.get("history", []))
        trainer.lagrange.update({k: float(v) for k, v in state.get("lagrange", {}).items()})
        trainer.evals = list(state.get("evals", []))
        trainer.best = state.get("best")
        trainer.threshold_evals = list(state.get("threshold_evals", []))
        trainer.final_push_threshold = state.get("final_push_threshold")
        trainer._final_calibrated = bool(state.get("final_calibrated", False))
        best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
        trainer._best_tensors = best or None
        trainer._collapse_streak = [int(v) for v in state.get("collapse_streak", [0, 0])]
        trainer._collapse_warned = set(state.get("collapse_warned", []))
        trainer.collapse_code = int(state.get("collapse_code", 0))
        return trainer

    def agent(self, *, seed: SeedLike = None, name: str = "gru-ppo",
              which: str = "final") -> GRUPPOAgent:
        """The trained policy as a covercast :class:`~covercast.agents.base.Agent`:
        ``which="final"`` the current weights, ``"best"`` the best validated policy
        (``GRUPPOConfig.eval_every``)."""
        _check_which(which)
        if which == "final":
            tensors = self._policy_tensors()
        elif self._best_tensors is None:
            raise ValueError("No validated policy yet: set `eval_every` in the config (and "
                             "train) to keep the best one, or ask for which='final'.")
        else:
            tensors = self._best_tensors
        agent = GRUPPOAgent._from_tensors(tensors, self.config, self.n_actions,
                                          self.layout_mode, self.n_styles, seed=seed, name=name)
        if which == "best" and self.best is not None:
            agent.push_threshold = self.best.get("push_threshold")
        elif which == "final":
            agent.push_threshold = self.final_push_threshold
        return agent


def _read_json(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON file, or a ``ValueError`` / ``FileNotFoundError`` naming the file
    and what is wrong with it (missing, truncated, not JSON)."""
    if not path.is_file():
        raise FileNotFoundError(f"The GRU-PPO checkpoint file {path} is missing.")
    try:
        out = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"The GRU-PPO checkpoint file {path} is not valid JSON ({e}); it is "
                         "truncated or corrupted: restore it or train again.") from None
    if not isinstance(out, dict):
        raise ValueError(f"The GRU-PPO checkpoint file {path} holds a "
                         f"{type(out).__name__}, not a JSON object.")
    return out


def _read_tensors(path: Path, load_file: Callable[[str], Any]) -> dict[str, Any]:
    """A checkpoint's safetensors file, or a ``ValueError`` naming the file when it cannot be
    read (truncated or corrupted)."""
    try:
        return load_file(str(path))
    except Exception as e:                    # safetensors raises its own SafetensorError
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"The GRU-PPO weights {path} cannot be read ({e}); the file is "
                         "truncated or corrupted: restore it or train again.") from None


def check_push_thresholds(thresholds: Any) -> None:
    """Raise ``ValueError`` unless ``thresholds`` is a sequence of numbers in (0, 1)."""
    if isinstance(thresholds, (str, bytes)) or not hasattr(thresholds, "__iter__") \
            or not all(_in_unit_interval(t) for t in thresholds):
        raise ValueError(f"`push_thresholds` must be a sequence of numbers in (0, 1), got "
                         f"{thresholds!r}.")


def _in_unit_interval(t: Any) -> bool:
    return not isinstance(t, bool) and isinstance(t, (int, float)) and 0 < t < 1


def _check_threshold(t: Any) -> None:
    if not _in_unit_interval(t):
        raise ValueError(f"`push_threshold` must be None or a number in (0, 1), got {t!r}.")


def _check_which(which: Any) -> None:
    if which not in ("final", "best"):
        raise ValueError(f"`which` must be 'final' or 'best', got {which!r}.")


def _default_params() -> PopulationParams:
    from covercast.simulators.params import default_params
    return default_params()


# ================================================================================== agent
class GRUPPOAgent(PolicyAgent):
    """A trained GRU policy behind the common ``predict`` interface.

    ``state`` is a float32 array, ``None`` at the start (zeros): the GRU hidden state
    ``(N, hidden_size)``, followed, for a policy with ``prev_action_input``, by the one-hot of
    the action ``predict`` returned last (``(N, hidden_size + n_actions)`` in all).
    ``episode_start`` zeroes both for the rows that begin an episode.

    Parameters
    ----------
    policy : GRUPolicy
        The network.
    obs_rms : RunningMeanStd or None
        Observation statistics of training (None: observations are used as they are).
    mode, n_styles, seed, name
        As for :class:`~covercast.agents.base.Agent`.
    """

    default_name = "gru-ppo"

    def __init__(self, policy: GRUPolicy, obs_rms: RunningMeanStd | None, mode: str = "schedule",
                 n_styles: int = 5, *, seed: SeedLike = None, name: str | None = None,
                 hour_one_hot: bool = False, push_threshold: float | None = None) -> None:
        super().__init__(mode, n_styles, seed=seed, name=name)
        self.hour_one_hot = bool(hour_one_hot)
        self.push_threshold = push_threshold
        if policy.obs_dim != policy_input_dim(self.hour_one_hot):
            raise ValueError(f"The policy reads {policy.obs_dim} inputs but observations with "
                             f"hour_one_hot={self.hour_one_hot} give "
                             f"{policy_input_dim(self.hour_one_hot)}.")
        if not isinstance(policy, GRUPolicy):
            raise ValueError(f"`policy` must be a GRUPolicy, got {type(policy).__name__}.")
        if policy.n_actions != self.n_actions:
            raise ValueError(f"The policy has {policy.n_actions} actions but the {mode!r} layout "
                             f"with {n_styles} styles has {self.n_actions}.")
        self.policy = policy.eval()
        self.obs_rms = obs_rms

    @classmethod
    def load(cls, path: str | os.PathLike, *, seed: SeedLike = None,
             name: str = "gru-ppo", which: str = "final") -> GRUPPOAgent:
        """The policy of a checkpoint folder (:meth:`GRUPPOTrainer.save`), without building
        the training environment: ``which="final"`` the weights at the checkpoint, ``"best"``
        the best validated policy (``GRUPPOConfig.eval_every``)."""
        from safetensors.torch import load_file

        _check_which(which)
        d = Path(path)
        if not (d / "model.safetensors").is_file():
            raise FileNotFoundError(f"No GRU-PPO checkpoint in {d} (model.safetensors missing).")
        cfg = GRUPPOConfig.from_checkpoint_dict(_read_json(d / "config.json"))
        state = _read_json(d / "state.json")
        tensors = _read_tensors(d / "model.safetensors", load_file)
        threshold = state.get("final_push_threshold")
        if which == "best":
            tensors = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
            if not tensors:
                raise ValueError(f"The checkpoint in {d} holds no validated policy (it was "
                                 "trained without `eval_every`); load which='final'.")
            threshold = (state.get("best") or {}).get("push_threshold")
        agent = cls._from_tensors(tensors, cfg, int(state["n_actions"]), state["mode"],
                                  int(state["n_styles"]), seed=seed, name=name)
        agent.push_threshold = threshold
        return agent

    @classmethod
    def _from_tensors(cls, tensors: Mapping[str, torch.Tensor], cfg: GRUPPOConfig,
                      n_actions: int, mode: str, n_styles: int, *, seed: SeedLike,
                      name: str) -> GRUPPOAgent:
        """An agent from ``policy.*`` weights and observation statistics."""
        policy = GRUPolicy(policy_input_dim(cfg.hour_one_hot), n_actions, cfg.embed_size,
                           cfg.hidden_size, prev_action_input=cfg.prev_action_input)
        policy.load_state_dict({k[len("policy."):]: v for k, v in tensors.items()
                                if k.startswith("policy.")})
        rms = None
        if cfg.normalize_obs:
            rms = RunningMeanStd(OBS_DIM)
            rms.load(tensors)
        return cls(policy, rms, mode=mode, n_styles=n_styles, seed=seed, name=name,
                   hour_one_hot=cfg.hour_one_hot)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "hidden_size": self.policy.hidden_size,
                "embed_size": self.policy.embed_size,
                "prev_action_input": self.policy.prev_action_input,
                "hour_one_hot": self.hour_one_hot, "push_threshold": self.push_threshold}

    @property
    def push_threshold(self) -> float | None:
        """Greedy decoding (``deterministic=True``): None, the most likely action; a number
        ``t`` in (0, 1), push (with the most likely style) when the probability of pushing at
        all exceeds ``t``. Set by the trainer's calibration on validation users
        (``GRUPPOConfig.push_thresholds``); sampling is unaffected."""
        return self._push_threshold

    @push_threshold.setter
    def push_threshold(self, t: float | None) -> None:
        if t is not None:
            _check_threshold(t)
            if self.mode == "style":
                raise ValueError("`push_threshold` decides when to push; in the 'style' layout "
                                 "every step is a push.")
        self._push_threshold = None if t is None else float(t)

    @property
    def state_size(self) -> int:
        """Width of the recurrent ``state``: hidden size, plus the actions with
        ``prev_action_input``."""
        pol = self.policy
        return pol.hidden_size + (pol.n_actions if pol.prev_action_input else 0)

    def _check_state(self, state: Any, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(h (n, H), previous one-hot action (n, A) or None)`` from ``state``."""
        pol = self.policy
        if state is None:
            return pol.initial_state(n), None
        s = np.asarray(state, dtype=np.float32)
        if s.shape != (n, self.state_size):
            what = "GRU hidden state and previous action" if pol.prev_action_input else \
                "GRU hidden state"
            raise ValueError(f"`state` must be the {what} returned by predict, shape "
                             f"({n}, {self.state_size}), got {s.shape}; pass None to "
                             "start fresh.")
        t = torch.from_numpy(s.copy())
        hid = pol.hidden_size
        return t[:, :hid], (t[:, hid:] if pol.prev_action_input else None)

    @torch.no_grad()
    def _logits(self, x: np.ndarray, state: Any, start: np.ndarray
                ) -> tuple[torch.Tensor, torch.Tensor]:
        xx = policy_inputs(x, self.obs_rms, self.hour_one_hot)
        h, prev = self._check_state(state, x.shape[0])
        logits, _, h_new = self.policy.step(torch.from_numpy(np.ascontiguousarray(xx)), h,
                                            torch.from_numpy(start.astype(np.float32)), prev)
        return logits, h_new

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[int | np.ndarray, Any]:
        x, single = as_obs_batch(obs)
        start = as_episode_start(episode_start, x.shape[0])
        logits, h = self._logits(x, state, start)
        p = torch.softmax(logits.double(), dim=-1).numpy()
        if deterministic and self.push_threshold is not None:
            push = 1.0 - p[:, 0] > self.push_threshold
            a = np.where(push, 1 + p[:, 1:].argmax(axis=1), 0).astype(np.int64)
        elif deterministic:
            a = p.argmax(axis=1).astype(np.int64)
        else:
            u = self._rng.random(x.shape[0])
            a = np.minimum((p.cumsum(axis=1) < u[:, None]).sum(axis=1), self.n_actions - 1)
            a = a.astype(np.int64)
        new_state = h.numpy()
        if self.policy.prev_action_input:
            new_state = np.concatenate(
                [new_state, np.eye(self.n_actions, dtype=np.float32)[a]], axis=1)
        return (int(a[0]) if single else a), new_state

    def action_probabilities(self, obs: Any, state: Any = None) -> np.ndarray:
        x, _ = as_obs_batch(obs)
        logits, _ = self._logits(x, state, np.zeros(x.shape[0], dtype=bool))
        return torch.softmax(logits.double(), dim=-1).numpy()
