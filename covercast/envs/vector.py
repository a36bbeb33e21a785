"""The population vector environment: the PushSchedule decision for N users on one engine."""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from covercast.envs.base import (
    DEFAULT_START,
    check_history_days,
    check_slot_minutes,
    resolve_bank,
    resolve_params,
)
from covercast.envs.observation import (
    LOG_HOURS_CAP,
    OBS_DIM,
    OBS_INDEX,
    PROFILE_SLICE,
    ObservationBuilder,
    observation_bounds,
)
from covercast.envs.rewards import OpenDwellReward, RewardFn, make_reward_fn
from covercast.simulators.params import PopulationParams
from covercast.simulators.population import Population, SlotOutcome
from covercast.simulators.response import ResponseModel

__all__ = ["PopulationVectorEnv", "last_observations"]

_DEFAULT_HORIZON_DAYS = 14.0


def last_observations(next_obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """The observation each row's step ended in: with same-step autoreset, ``next_obs`` of a
    row whose episode ended (``done``) is already the next user's first observation, and its
    own last one is in ``info["final_obs"]``; other rows keep ``next_obs``. What a learner's
    ``update(obs, action, reward, next_obs, ...)`` needs."""
    if done.any() and "final_obs" in info:
        return np.where(done[:, None], info["final_obs"], next_obs)
    return next_obs


class PopulationVectorEnv(VectorEnv):
    """PushSchedule for N users at once: one SimPy engine, numpy arrays, batched actions.

    Each of the ``num_envs`` sub-environments is one user of a single
    :class:`~covercast.simulators.population.Population`; all share the clock, so a step is one
    slot for everybody. Per user, the spaces, observation, responses and reward are those of
    ``covercast/PushSchedule-v0`` (:class:`~covercast.envs.push_schedule.PushScheduleEnv`), built
    by the same :class:`~covercast.envs.observation.ObservationBuilder`.

    ## Action Space

    ``MultiDiscrete([1 + n_styles] * num_envs)``: per user ``0`` = no push, ``k`` = push now
    with a cover of style ``k - 1`` (``single_action_space`` is ``Discrete(1 + n_styles)``).

    ## Observation Space

    ``Box((num_envs, 40))`` float32: row ``i`` is user ``i``'s observation in the layout of
    :mod:`covercast.envs.observation` (table in
    :class:`~covercast.envs.push_schedule.PushScheduleEnv`).

    ## Rewards

    Per user, ``reward_fn(responses)`` evaluated on arrays, by default ``opened + w_dwell *
    dwell_s / 60 - w_optout * opted_out``. A custom ``reward_fn`` receives the responses dict of
    ``(num_envs,)`` arrays and must return ``num_envs`` finite rewards. ``info`` holds those
    arrays (keys :data:`~covercast.envs.rewards.RESPONSE_KEYS`), each with Gymnasium's mask
    ``_key`` (all True, except ``_satisfaction``: the users who answered a survey;
    ``satisfaction`` is NaN elsewhere), and ``budget_dropped`` (bool per user, see below).

    ## Episode End and autoreset

    A user's episode ends when the user opts out (``terminations``) or after
    ``max_episode_steps`` of its own steps (``truncations``; default 14 days of slots). The
    environment uses Gymnasium's **same-step autoreset** (``metadata["autoreset_mode"] ==
    AutoresetMode.SAME_STEP``): in the step where user ``i``'s episode ends, user ``i`` is
    replaced by a fresh user sampled from the same parameters
    (:meth:`~covercast.simulators.population.Population.replace_users`), the returned
    observation row is the new user's first observation (no history, at the current time), and
    the ended episode's last observation and responses are in ``info["final_obs"]`` (an array
    ``(num_envs, 40)``, valid where ``info["_final_obs"]``) and ``info["final_info"]``. The
    population thus keeps N users, and the clock never goes back: the first N episodes start at
    ``start`` (Monday 00:00 UTC by default), later ones wherever the clock is.

    ## Daily push budget

    With ``daily_budget = B``, at most ``B`` pushes are delivered per calendar day (UTC) across
    the whole population. When a step asks for more pushes than the day has left, a uniformly
    random subset of the asked pushes (drawn from the environment's ``np_random``) is kept, the
    others are dropped (treated as action 0: no push, no reward effect); ``info
    ["budget_dropped"]`` marks the dropped users (``info["budget_dropped"].sum()`` is the count)
    and :attr:`budget_dropped_total` counts them since :meth:`reset`.

    ## Arguments

    ```python
    PopulationVectorEnv(num_envs, params=None, bank=None, slot_minutes=60, horizon_days=None,
                        max_episode_steps=None, daily_budget=None, reward_fn=None,
                        w_dwell=None, w_optout=None, start="2026-01-05T00:00:00Z",
                        history_days=0, copy=True, population=None, response=None)
    gym.make_vec("covercast/PushSchedule-v0", num_envs=N,
                 vectorization_mode="vector_entry_point")
    covercast.envs.make_vec(N, horizon_days=7, slot_minutes=5)
    ```

    * ``num_envs``: number of users N.
    * ``params`` or ``population``: the user model (a suite name such as
      ``"high-fatigue-v1"``, a JSON path, a ``PopulationParams``; default ``calibrated-v1``).
    * ``horizon_days`` or ``max_episode_steps``: a user's episode length (default 14 days, for
      any slot length: the id is registered without ``max_episode_steps``, so ``gym.make_vec``
      passes none).
    * ``history_days``: days of each user's organic sessions seen before their episode
      (also for the users that replace finished ones), as in
      :class:`~covercast.envs.push_schedule.PushScheduleEnv`.
    * ``daily_budget``: pushes per calendar day across the population (``None``: unlimited).
    * ``copy``: return a new observation array each step (``False``: a buffer reused by the
      next step).
    * ``response``: how users answer pushes, a
      :class:`~covercast.simulators.response.ResponseModel` (the same as the single-user
      environments take).
    * the others as in :class:`~covercast.envs.push_schedule.PushScheduleEnv`.

    ## Version History

    * v0: initial version.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int, params: PopulationParams | str | os.PathLike | None = None,
                 bank: Any = None, slot_minutes: int = 60, horizon_days: float | None = None,
                 max_episode_steps: int | None = None, daily_budget: int | None = None,
                 reward_fn: RewardFn | None = None, w_dwell: float | None = None,
                 w_optout: float | None = None, start: str = DEFAULT_START,
                 history_days: float = 0.0, copy: bool = True,
                 population: str | os.PathLike | None = None,
                 response: ResponseModel | None = None) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) \
                or num_envs < 1:
            raise ValueError(f"`num_envs` (the number of users) must be an integer >= 1, got "
                             f"{num_envs!r}.")
        self.num_envs = int(num_envs)
        self.params = resolve_params(params, population)
        self.bank = resolve_bank(bank, self.params)
        self.slot_minutes = check_slot_minutes(slot_minutes)
        self.slot_hours = self.slot_minutes / 60.0
        self.max_episode_steps = self._episode_steps(horizon_days, max_episode_steps)
        if daily_budget is not None and (isinstance(daily_budget, bool) or not isinstance(
                daily_budget, (int, np.integer)) or daily_budget < 0):
            raise ValueError(f"`daily_budget` must be None (unlimited) or an integer >= 0 "
                             f"(pushes per day across the population), got {daily_budget!r}.")
        self.daily_budget = None if daily_budget is None else int(daily_budget)
        self.reward_fn = make_reward_fn(reward_fn, w_dwell, w_optout)
        self.history_days = check_history_days(history_days)
        self.copy = bool(copy)
        n = self.num_envs
        self._pop = Population(self.params, n, bank=self.bank, seed=0, start=start,
                               slot_minutes=self.slot_minutes, response=response)
        self.response = self._pop.response
        self.start = self._pop.start
        self._day0_h = self.start.hour + self.start.minute / 60.0
        self.n_styles = len(self.params.styles)
        low, high = observation_bounds()
        self.single_observation_space = spaces.Box(low, high, shape=(OBS_DIM,),
                                                   dtype=np.float32)
        self.single_action_space = spaces.Discrete(1 + self.n_styles)
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)
        self._builder = ObservationBuilder(n)
        self._steps = np.zeros(n, dtype=np.int64)
        self._ones = np.ones(n, dtype=bool)
        self._ones.flags.writeable = False
        self._started = False
        self._budget_day = 0
        self._budget_used = 0
        self.budget_dropped_total = 0
        self._obs_buf = np.zeros((n, OBS_DIM), dtype=np.float32)
        # the copy=True observation array and its reference count when only the env holds it
        # (measured here: what sys.getrefcount reports differs between Python versions)
        self._obs_out = np.zeros((n, OBS_DIM), dtype=np.float32)
        self._obs_out_refs = sys.getrefcount(self._obs_out)
        self._final_out = np.zeros((n, OBS_DIM), dtype=np.float32)
        self._final_out_refs = sys.getrefcount(self._final_out)
        self._final_rows = np.zeros(0, dtype=np.int64)

    def _episode_steps(self, horizon_days: float | None, max_episode_steps: int | None) -> int:
        spd = 1440 // self.slot_minutes
        from_days = None
        if horizon_days is not None:
            if isinstance(horizon_days, bool) or not isinstance(horizon_days, (int, float)) \
                    or not math.isfinite(horizon_days) or horizon_days <= 0:
                raise ValueError(f"`horizon_days` must be a positive number, got "
                                 f"{horizon_days!r}.")
            slots = horizon_days * spd
            from_days = int(round(slots))
            if abs(slots - from_days) > 1e-9 or from_days < 1:
                raise ValueError(f"`horizon_days` = {horizon_days} is not a whole number of "
                                 f"{self.slot_minutes}-minute slots.")
        if max_episode_steps is None:
            return from_days if from_days is not None else int(_DEFAULT_HORIZON_DAYS * spd)
        if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps,
                                                                 (int, np.integer)) \
                or max_episode_steps < 1:
            raise ValueError(f"`max_episode_steps` must be an integer >= 1, got "
                             f"{max_episode_steps!r}.")
        if from_days is not None and from_days != int(max_episode_steps):
            raise ValueError(f"`horizon_days` = {horizon_days} ({from_days} slots of "
                             f"{self.slot_minutes} min) disagrees with `max_episode_steps` = "
                             f"{max_episode_steps}; give one of them, e.g. with "
                             "covercast.envs.make_vec(N, horizon_days=...).")
        return int(max_episode_steps)

    # ------------------------------------------------------------------ properties
    @property
    def n_users(self) -> int:
        """Number of users (``num_envs``)."""
        return self.num_envs

    @property
    def population(self) -> Population:
        """The engine (read it, do not step it)."""
        return self._pop

    @property
    def episode_steps(self) -> np.ndarray:
        """Steps each user's current episode has taken (read-only copy)."""
        return self._steps.copy()

    def hidden_state(self) -> dict[str, np.ndarray]:
        """Every user's hidden state (for oracles and diagnostics only)."""
        return self._pop.hidden_state()

    # ------------------------------------------------------------------ API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start over at ``start`` with N new users drawn from ``np_random``."""
        super().reset(seed=seed)
        if options:
            raise ValueError(f"`options` is not used by PopulationVectorEnv; got {options!r}.")
        self._pop.reset(int(self.np_random.integers(0, 2**63 - 1)))
        self._builder.reset()
        if self.history_days:
            self._add_history(np.arange(self.num_envs))
        self._steps[:] = 0
        self._budget_day = 0
        self._budget_used = 0
        self.budget_dropped_total = 0
        self._started = True
        return self._observe(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, Any]]:
        if not self._started:
            from gymnasium.error import ResetNeeded
            raise ResetNeeded("Call reset() before step() on PopulationVectorEnv.")
        a = self._check_actions(actions)
        pop = self._pop
        push = a > 0
        dropped = self._apply_budget(push)
        hour = int(math.floor(self._day0_h + pop.now + 1e-9)) % 24
        if push.any():
            out = pop.step(push=push, style=a - 1)
        else:
            out = pop.step()
        self._builder.record_sessions(hour, out.session_user, out.session_count,
                                      self.slot_hours)
        info = self._responses(out, a, push)
        info["budget_dropped"] = dropped
        info["_budget_dropped"] = self._ones
        rewards = self._rewards(info)
        terminated = info["opted_out"].copy()
        self._steps += 1
        truncated = (self._steps >= self.max_episode_steps) & ~terminated
        obs = self._observe()
        done = terminated | truncated
        if done.any():
            idx = np.flatnonzero(done)
            final_obs = self._free_final_obs_array()
            final_obs[idx] = obs[idx]
            self._final_rows = idx
            info["final_obs"] = final_obs
            info["_final_obs"] = done
            info["final_info"] = {k: v for k, v in info.items()
                                  if not k.startswith("_") and not k.startswith("final")}
            # a final value is there where the user ended *and* the live mask had one (a
            # final `satisfaction` only for users who answered a survey on that step)
            info["final_info"].update({f"_{k}": done & info[f"_{k}"] if f"_{k}" in info
                                       else done for k in list(info["final_info"])})
            info["_final_info"] = done
            pop.replace_users(idx)
            self._builder.reset_users(idx)
            if self.history_days:
                self._add_history(idx)
            self._steps[idx] = 0
            self._fresh_rows(obs, idx)
        return obs, rewards, terminated, truncated, info

    # ------------------------------------------------------------------ helpers
    def _check_actions(self, actions: Any) -> np.ndarray:
        a = np.asarray(actions)
        n, k = self.num_envs, 1 + self.n_styles
        if a.shape != (n,):
            raise ValueError(f"`actions` must have shape ({n},) (one action per user), got "
                             f"{a.shape}.")
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"`actions` must be integers in [0, {k - 1}] (0 = no push, k = "
                             f"push with style k-1), got dtype {a.dtype}.")
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= k:
            bad = int(np.flatnonzero((a < 0) | (a >= k))[0])
            raise ValueError(f"Invalid action {int(a[bad])} for user {bad}: actions must lie in "
                             f"[0, {k - 1}] (0 = no push, k = push with style k-1).")
        return a.astype(np.int64, copy=False)

    def _apply_budget(self, push: np.ndarray) -> np.ndarray:
        """Drop pushes beyond the day's budget (in place on ``push``); return the dropped mask."""
        dropped = np.zeros(self.num_envs, dtype=bool)
        if self.daily_budget is None:
            return dropped
        day = int(math.floor((self._day0_h + self._pop.now + 1e-9) / 24.0))
        if day != self._budget_day:
            self._budget_day = day
            self._budget_used = 0
        asked = np.flatnonzero(push)
        left = self.daily_budget - self._budget_used
        if asked.size > left:
            keep = self.np_random.choice(asked.size, size=left, replace=False)
            drop_mask = np.ones(asked.size, dtype=bool)
            drop_mask[keep] = False
            gone = asked[drop_mask]
            push[gone] = False
            dropped[gone] = True
            self.budget_dropped_total += int(gone.size)
            self._budget_used += left
        else:
            self._budget_used += int(asked.size)
        return dropped

    def _responses(self, out: SlotOutcome, a: np.ndarray, push: np.ndarray) -> dict[str, Any]:
        n = self.num_envs

        def count(users: np.ndarray) -> np.ndarray:
            return np.bincount(users, minlength=n)

        ou = out.open_user
        sat = out.open_satisfaction
        surveyed = sat > 0
        ou_surv = ou[surveyed]
        n_surv = count(ou_surv)
        with np.errstate(invalid="ignore", divide="ignore"):
            satisfaction = np.bincount(ou_surv, weights=sat[surveyed].astype(np.float64),
                                       minlength=n) / n_surv
        opted = np.zeros(n, dtype=bool)
        opted[out.opt_out_user] = True
        sessions = np.zeros(n, dtype=np.int64)
        sessions[out.session_user] = out.session_count
        style = np.where(push, a - 1, -1)
        cover = np.full(n, -1, dtype=np.int64)
        cover[out.push_user] = out.push_cover
        pushed = count(out.push_user)
        ones = self._ones
        return {
            "pushed": pushed, "_pushed": ones,
            "blocked": count(out.blocked_user), "_blocked": ones,
            "opened": count(ou), "_opened": ones,
            "dwell_s": np.bincount(ou, weights=out.open_dwell_s, minlength=n), "_dwell_s": ones,
            "likes": count(ou[out.open_like]), "_likes": ones,
            "shares": count(ou[out.open_share]), "_shares": ones,
            "comments": count(ou[out.open_comment]), "_comments": ones,
            "surveys": n_surv, "_surveys": ones,
            "satisfaction": satisfaction, "_satisfaction": n_surv > 0,
            "opted_out": opted, "_opted_out": ones,
            "sessions": sessions, "_sessions": ones,
            "style": style, "_style": ones,
            "cover": cover, "_cover": ones,
        }

    def _rewards(self, info: dict[str, Any]) -> np.ndarray:
        fn = self.reward_fn
        if type(fn) is OpenDwellReward:
            # the default reward, in one array: the same operations as OpenDwellReward.__call__
            # (opened + w_dwell * (dwell_s / 60) - w_optout * opted_out), bit for bit
            r = np.divide(info["dwell_s"], 60.0)
            r *= fn.w_dwell
            r += info["opened"]
            r[info["opted_out"]] -= fn.w_optout
            return r
        r = fn(info)
        r = np.asarray(r, dtype=np.float64)
        if r.ndim == 0:
            r = np.full(self.num_envs, float(r))
        if r.shape != (self.num_envs,):
            raise ValueError(f"`reward_fn` must return {self.num_envs} rewards (one per user), "
                             f"got shape {r.shape}.")
        if not np.all(np.isfinite(r)):
            raise ValueError("`reward_fn` returned a non-finite reward for user "
                             f"{int(np.flatnonzero(~np.isfinite(r))[0])}.")
        return r

    def _observe(self) -> np.ndarray:
        """Every row in one pass (compiled), from the engine's live arrays: into an array
        nobody else holds with ``copy=True`` (:meth:`_free_obs_array`), into the reused buffer
        otherwise."""
        out = self._free_obs_array() if self.copy else self._obs_buf
        return self._builder.build(self._pop.observe_state(), out=out)

    def _free_obs_array(self) -> np.ndarray:
        """An observation array no one but this env references: the one returned last time if
        the caller has let go of it (its reference count is back to the env's own), else a new
        one. Writing into memory already mapped saves the page faults of a fresh array (most
        of the cost of a new ``(N, 40)`` array), and an array nobody references cannot be
        told apart from a new one: ``copy=True`` keeps its meaning (what a step returned is
        never changed by a later step)."""
        # the same expression as in __init__, so that the counts compare (no local name)
        if sys.getrefcount(self._obs_out) > self._obs_out_refs:
            self._obs_out = np.empty((self.num_envs, OBS_DIM), dtype=np.float32)
        return self._obs_out

    def _free_final_obs_array(self) -> np.ndarray:
        """``info["final_obs"]``'s array, zero outside the rows about to be written: the one of
        the last autoreset with its rows zeroed again if nobody holds it any more (as
        :meth:`_free_obs_array`), else a new one."""
        if sys.getrefcount(self._final_out) > self._final_out_refs:
            self._final_out = np.zeros((self.num_envs, OBS_DIM), dtype=np.float32)
        else:
            self._final_out[self._final_rows] = 0.0
        return self._final_out

    def _add_history(self, users: np.ndarray) -> None:
        """The sessions seen of ``users`` before their episode (``history_days``)."""
        self._builder.add_history(users, self._pop.draw_history(self.history_days,
                                                                self.np_random, users),
                                  float(round(24.0 * self.history_days)))

    def _fresh_rows(self, obs: np.ndarray, idx: np.ndarray) -> None:
        """Rows ``idx`` become the first observation of a new user (the clock features 0-4
        are everybody's): exactly what :meth:`ObservationBuilder.build` gives."""
        rows = obs[idx]
        rows[:, OBS_INDEX["log_h_since_push"]] = LOG_HOURS_CAP
        rows[:, OBS_INDEX["log_h_since_open"]] = LOG_HOURS_CAP
        rows[:, OBS_INDEX["pushes_24h"]:OBS_INDEX["sessions_24h"] + 1] = 0.0
        if self.history_days:
            hour = int(math.floor(self._day0_h + self._pop.now + 1e-9)) % 24
            share, now, per_day = self._builder.rows(idx, hour)
            rows[:, PROFILE_SLICE] = share
            rows[:, OBS_INDEX["profile_now"]] = now
            rows[:, OBS_INDEX["sessions_per_day"]] = per_day
        else:
            rows[:, PROFILE_SLICE] = 1.0 / 24.0
            rows[:, OBS_INDEX["profile_now"]] = 1.0 / 24.0
            rows[:, OBS_INDEX["sessions_per_day"]] = 0.0
        obs[idx] = rows
