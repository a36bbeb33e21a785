"""A planning oracle: dynamic programming on the hidden state, the scheduling benchmark's
upper reference.

:class:`PlanningOracle` reads the simulated population's hidden state -- each user's fatigue,
taste, topic affinity, activity multiplier, segment and the push waiting unseen in the tray --
which no platform can see. It is **not deployable**; it is the benchmark's **upper
reference**: what a policy that knew each user and planned their whole episode would earn.
Unlike the lookahead oracle (:class:`~covercast.agents.oracle.LookaheadOracle`, a heuristic
with a one-step lookahead that learned policies beat), it weighs every push against all it
costs later: the fatigue it leaves (lower open probabilities, a higher opt-out hazard), the
opt-out that ends all later rewards, and the unseen push it replaces in the tray.

**The plan.** For each user, by backward induction over the hours left in the episode, on the
state ``(f, a)`` at the start of hour ``h``: fatigue ``f`` on a grid (cubic interpolation
between grid points) and the tray, ``a`` = none, or the age in hours of the push waiting unseen
(``1 .. seen_horizon_h - 1``; an older one is dropped)::

    V[H, f, a] = 0
    wait:  Q_w = V[h+1, f d, none]                                       (a = none)
           Q_w = ps_h stale(a + 1/2) g(h, f d') + ps_h V[h+1, f d, none]
                 + (1 - ps_h) V[h+1, f d, a + 1]                         (a push waiting)
    push:  Q_p = r(h, f) + (1 - p_out) (seen_h V[h+1, f' d, none] + (1 - seen_h) V[h+1, f' d, 1])
    V[h, f, a] = max(Q_w, Q_p)   at decision hours, Q_w in between

with ``f' = f + increment`` the fatigue after a push, ``d = 2 ** (-1 / half_life_h)`` an hour's
decay (``d'`` half an hour's), ``p_out`` the opt-out probability of the push (an opt-out ends
the episode: value 0 after the ``-w_optout``), ``ps_h`` the probability of an organic session
in hour ``h`` (a waiting push is seen there), ``seen_h`` the probability that a new push is seen
at once or within its hour, ``g`` the expected reward of seeing the push then and ``r(h, f)``
the expected reward of the push within its own hour: ``(1 - p_out) * E[open * (1 + w_dwell *
dwell_min)] - w_optout * p_out`` with the open seen at once or at the first session of the
hour. A push replaced in the tray (``Q_p`` from ``a`` = a push waiting) loses the rest of its
value: the population's "notifications collapse" rule. Followed from push to seen, these terms
add up to the value of a push the lookahead oracle computes -- and they come from the same
code: :class:`~covercast.agents.oracle.PushValueModel` (seen now or at the first session of
each later hour, staleness, fatigue when seen, the style's covers averaged, mean log-normal
dwell), evaluated with the user's true activity and segment, and taste and topic affinity as
expected on each future day (today's, pulled towards the segment's mean by the daily drift's
reversion). Everything is vectorised over users (numpy, no per-user Python loop).

**A decision.** At each decision the oracle reads the true fatigue and tray (the waiting push's
cover and age), evaluates both sides at them exactly (the planned values ``V[h+1]`` are looked
up by interpolation), and pushes when ``Q_p > Q_w``, with the style of highest expected reward
now (seen within ``seen_horizon_h`` hours, before the episode ends).

**Approximations** (documented, deliberate):

* the plan gives each user one style, the best for a fresh push (fatigue one increment) at an
  average hour; the decision then pushes the best style now (on the default population they
  differ for about 1 % of users, by under 1 % of a push's value); a push waiting in the tray is
  planned as an average cover of that style (the decision values its own cover);
* the daily drift of taste and topic affinity is planned by its expectation (its noise, a
  logit variance of order 0.01 after two weeks, is left out); decisions use the taste of the
  day (the tables are rebuilt after each day's drift); ``replan_every_h`` replans the rest;
* rewards are the user model's expected rewards; the tray's delay is counted at the middle of
  each hour, hourly rates are read at the hour of week an hour starts in, a push unseen for
  ``seen_horizon_h`` hours counts for nothing more;
* fatigue lives on a grid (cubic interpolation; values above its top are clamped: planned
  values within 0.1 % of those of a grid 16 times finer), and the cover-averaged reward per
  seen push is tabulated over the open logit's activity-and-fatigue term (step
  ``logit_step``, linear interpolation: relative errors of order 1e-3);
* with slots shorter than an hour the oracle decides on whole hours only (it waits in the other
  slots); slots longer than an hour must be a whole number of hours.

Plans are made once per episode (a user replaced in the population vector env, told by
``episode_start`` or by its episode's start time, is replanned), in about 3 s per 1,000 users x
14 days on one core; they keep ``float32`` values at daily checkpoints and the values of one
day at a time, recomputed from the checkpoint when the day changes (about 80 MB for 1,000 users
with the default grid).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from covercast.agents.base import Agent, SeedLike, as_episode_start, check_positive
from covercast.agents.oracle import (
    PushValueModel,
    attach_base,
    check_seen_horizon,
    env_style_mix,
    init_reward_and_style,
)
from covercast.covers.attributes import DEFAULT_STYLES
from covercast.simulators import response as R
from covercast.simulators.params import HOURS_PER_WEEK

__all__ = ["PlanningOracle", "default_fatigue_grid"]

_BLOCK_H = 24                   # hours between the plan's stored checkpoints
_USER_BLOCK_ELEMENTS = 4_000_000   # users x tray states x grid points computed at once
_TOL_H = 1e-6


def default_fatigue_grid(increment: float, top: float) -> np.ndarray:
    """The default fatigue grid: steps of ``increment / 4`` up to ``2 * increment``, of
    ``increment / 2`` up to ``4 * increment``, then geometric (x 1.35) up to ``top`` (the
    largest fatigue reachable by pushing every hour), ``top`` included."""
    fine = np.concatenate([np.arange(0.0, 2.0, 0.25), np.arange(2.0, 4.0 + 1e-9, 0.5)])
    g = list(fine * increment)
    while g[-1] * 1.35 < top:
        g.append(g[-1] * 1.35)
    g = [x for x in g if x < top - 1e-9] + [top]
    return np.asarray(g, dtype=np.float64)


def _day(t: Any) -> Any:
    """The population's day (its drift steps so far) at time ``t`` (hours)."""
    return np.floor(np.asarray(t, dtype=np.float64) / 24.0 + _TOL_H).astype(np.int64)


def _lerp_index(grid: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(i, w)`` with ``values ~ grid[i] * (1 - w) + grid[i + 1] * w`` (clamped to the grid)."""
    v = np.clip(values, grid[0], grid[-1])
    i = np.clip(np.searchsorted(grid, v, side="right") - 1, 0, grid.size - 2)
    w = (v - grid[i]) / (grid[i + 1] - grid[i])
    return i, w


def _stencil(grid: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(idx, w)``, each ``(4,) + values.shape``: ``sum_k w[k] * y[idx[k]]`` is the cubic
    through the four grid points around each value (Lagrange; the stencil shifted inwards at
    the ends; values clamped to the grid)."""
    F = grid.size
    v = np.clip(values, grid[0], grid[-1])
    if F < 4:
        i, w = _lerp_index(grid, v)
        return np.stack([i, i + 1]), np.stack([1.0 - w, w])
    i = np.clip(np.searchsorted(grid, v, side="right") - 1, 0, F - 2)
    s = np.clip(i - 1, 0, F - 4)
    idx = np.stack([s + k for k in range(4)])
    g = grid[idx]
    w = np.ones_like(g)
    for j in range(4):
        for m in range(4):
            if m != j:
                w[j] *= (v - g[m]) / (g[j] - g[m])
    return idx, w


def _interp(V: np.ndarray, st: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``V[..., F]`` interpolated with the stencil ``st`` of fixed values (last axis)."""
    idx, w = st
    out = V[..., idx[0]] * w[0]
    for k in range(1, idx.shape[0]):
        out += V[..., idx[k]] * w[k]
    return out


def _lerp_rows(V: np.ndarray, grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Row ``k`` of ``V`` ``(m, F)`` interpolated at ``values[k]``."""
    idx, w = _stencil(grid, values)
    k = np.arange(V.shape[0])
    return sum(V[k, idx[j]] * w[j] for j in range(idx.shape[0]))


class _Table:
    """Per-user tables over a uniform grid of the logit shift ``x``, interpolated linearly."""

    def __init__(self, x_grid: np.ndarray) -> None:
        self.x0 = float(x_grid[0])
        self.step = float(x_grid[1] - x_grid[0])
        self.size = x_grid.size

    def lookup(self, tab: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Tables ``tab`` ``(*lead, X)`` at ``x`` ``(*lead, ...)``: ``tab[u]`` at ``x[u]``."""
        lead = tab.shape[:-1]
        m = int(np.prod(lead))
        xr = x.reshape((m,) + x.shape[len(lead):])
        pos = np.clip((xr - self.x0) / self.step, 0.0, self.size - 1 - 1e-9)
        i = pos.astype(np.int64)
        fr = pos - i
        i += (np.arange(m) * self.size).reshape((m,) + (1,) * (xr.ndim - 1))
        flat = tab.reshape(-1)
        lo = flat[i]
        return (lo + (flat[i + 1] - lo) * fr).reshape(x.shape)


class PlanningOracle(Agent):
    """Upper reference: plans each user's pushes by dynamic programming, *reading hidden state*.

    Not a deployable policy: it reads the population's hidden fatigue, taste, topic affinity,
    activity, segment and tray through the environment it is attached to. It is the scheduling
    benchmark's upper reference (see the module docstring for the plan, the decision and the
    approximations).

    Parameters
    ----------
    mode : {"schedule", "timing"}
        The action layout: ``schedule`` (PushSchedule-v0 and the population vector env) chooses
        when and which style; ``timing`` (PushTiming-v0) only when, the style being the
        environment's (its ``style`` argument; ``"random"`` is averaged over styles) unless
        ``timing_style`` is given.
    n_styles, seed, name :
        See :class:`~covercast.agents.base.Agent` (the oracle draws nothing at random).
    env : gymnasium.Env or VectorEnv, optional
        The environment whose population the oracle reads; :meth:`attach` sets it too
        (``evaluate`` and ``evaluate_vector`` call it). Row ``i`` of a batched observation is
        user ``i`` of the population.
    horizon_h : float, optional
        The episode length in hours (from each user's episode start). Default: read from the
        environment (``max_episode_steps`` of the population vector env, or the time limit of
        a single-user env, times the slot length); required where the environment has none.
        Given, it overrides the environment's.
    seen_horizon_h : int
        Hours over which a push waiting in the tray is followed, 1-168 (default 24).
    w_dwell, w_optout : float, optional
        Reward weights (per dwell minute, per opt-out). Default: those of the environment's
        :class:`~covercast.envs.rewards.OpenDwellReward`, else its defaults (0.1 and 5).
    timing_style : int, optional
        The style pushes get in the ``timing`` layout (default: read from the environment).
    fatigue_grid : array_like, optional
        Fatigue values of the plan's grid, increasing from 0 (default:
        :func:`default_fatigue_grid`, 21 points with a 24 h half-life).
    logit_step : float
        Step of the table of the cover-averaged reward per seen push over the open logit's
        activity-and-fatigue term (default 0.05).
    tray : bool
        True (default): plan with the tray (above). False: ignore it -- a push is valued as if
        seen within ``seen_horizon_h`` hours whatever is pushed after it (a weaker plan, kept
        to measure what the tray is worth).
    replan_every_h : float, optional
        Replan each user this many hours after their last plan (with the taste then); default
        ``None``: once per episode.
    """

    default_name = "planning oracle (hidden state)"

    def __init__(self, mode: str = "schedule", n_styles: int = len(DEFAULT_STYLES), *,
                 env: Any = None, horizon_h: float | None = None, seen_horizon_h: int = 24,
                 w_dwell: float | None = None, w_optout: float | None = None,
                 timing_style: int | None = None, fatigue_grid: Any = None,
                 logit_step: float = 0.05, tray: bool = True,
                 replan_every_h: float | None = None, seed: SeedLike = None,
                 name: str | None = None) -> None:
        if mode not in ("schedule", "timing"):
            raise ValueError(f"The planning oracle plans when to push: `mode` must be "
                             f"'schedule' or 'timing', got {mode!r} (for the 'style' layout, "
                             "where the environment picks the time, use LookaheadOracle).")
        super().__init__(mode, n_styles, seed=seed, name=name)
        self.horizon_h = None if horizon_h is None else check_positive(horizon_h, "horizon_h")
        self.seen_horizon_h = check_seen_horizon(seen_horizon_h)
        init_reward_and_style(self, w_dwell, w_optout, timing_style)
        if fatigue_grid is not None:
            g = np.asarray(fatigue_grid, dtype=np.float64)
            if g.ndim != 1 or g.size < 2 or g[0] != 0.0 or not np.all(np.isfinite(g)) \
                    or not np.all(np.diff(g) > 0):
                raise ValueError("`fatigue_grid` must be a 1-D increasing array of at least two "
                                 f"finite fatigue values starting at 0, got {fatigue_grid!r}.")
            fatigue_grid = g
        self.fatigue_grid_given: np.ndarray | None = fatigue_grid
        self.logit_step = check_positive(logit_step, "logit_step")
        if not isinstance(tray, (bool, np.bool_)):
            raise ValueError(f"`tray` must be a bool, got {tray!r}.")
        self.tray = bool(tray)
        self.replan_every_h = None if replan_every_h is None else check_positive(
            replan_every_h, "replan_every_h")
        self._env = None
        self._outer = None
        self._env_style_mix: np.ndarray | None = None
        self._model: PushValueModel | None = None
        self._model_key: tuple | None = None
        self._P: dict[str, Any] | None = None
        #: Seconds spent planning (plans and the daily recomputations), and users planned.
        self.plan_seconds = 0.0
        self.users_planned = 0
        if env is not None:
            self.attach(env)

    def config(self) -> dict[str, Any]:
        g = self.fatigue_grid_given
        return super().config() | {
            "reads_hidden_state": True, "horizon_h": self.horizon_h,
            "seen_horizon_h": self.seen_horizon_h, "w_dwell": self.w_dwell,
            "w_optout": self.w_optout, "timing_style": self.timing_style,
            "fatigue_grid": None if g is None else g.tolist(), "logit_step": self.logit_step,
            "tray": self.tray, "replan_every_h": self.replan_every_h}

    # ------------------------------------------------------------------ wiring
    def attach(self, env: Any) -> None:
        """Read the population of ``env`` from now on (its reward weights, push style and
        episode length too); forgets the plans made so far."""
        self._env = attach_base(self, env)
        self._outer = env
        self._env_style_mix = env_style_mix(self, self._env)
        self._P = None

    def population(self) -> Any:
        """The population read now (the attached environment's current one)."""
        if self._env is None:
            raise ValueError("The planning oracle is not attached to an environment: pass "
                             "`env=`, call attach(env), or run it through "
                             "covercast.agents.evaluate (evaluate / evaluate_vector).")
        return self._env.population

    def _slot_hours(self) -> float:
        sh = getattr(self._env, "slot_hours", None)
        if sh is None:
            sh = self.population().slot_minutes / 60.0
        return float(sh)

    def _decision_step_h(self) -> int:
        """Hours between decisions: the slot, or one hour for shorter slots."""
        minutes = int(round(self._slot_hours() * 60))
        if minutes % 60 == 0:
            return minutes // 60
        if 60 % minutes == 0:
            return 1
        raise ValueError(f"The planning oracle needs slots that divide an hour or last whole "
                         f"hours; this environment's slots last {minutes} minutes.")

    def _sub_hour(self) -> bool:
        """Whether slots are shorter than an hour (decisions on whole hours only)."""
        return self._slot_hours() < 1.0 - _TOL_H

    def _max_steps(self) -> int | None:
        """``max_episode_steps`` of the attached environment (None if it has none)."""
        m = getattr(self._env, "max_episode_steps", None)      # the population vector env
        if isinstance(m, (int, np.integer)):
            return int(m)
        e = self._outer
        while e is not None:
            m = getattr(e, "_max_episode_steps", None)          # gymnasium's TimeLimit
            if isinstance(m, (int, np.integer)):
                return int(m)
            m = getattr(getattr(e, "spec", None), "max_episode_steps", None)
            if isinstance(m, (int, np.integer)):
                return int(m)
            e = getattr(e, "env", None)
        return None

    def _episode_start_h(self, pop: Any) -> np.ndarray:
        """Each user's episode start (hours on the population's clock)."""
        steps = getattr(self._env, "episode_steps", None)      # the population vector env
        sh = self._slot_hours()
        if steps is not None:
            return pop.now - np.asarray(steps, dtype=np.float64) * sh
        # a single-user env restarts its population's clock at every reset
        return np.full(pop.n_users, pop.now - round(pop.now / sh) * sh)

    def _horizon(self) -> float:
        if self.horizon_h is not None:
            return self.horizon_h
        m = self._max_steps()
        if m is None:
            raise ValueError("The planning oracle needs the episode length: the environment has "
                             "no `max_episode_steps` (no TimeLimit); pass `horizon_h`.")
        return m * self._slot_hours()

    def value_model(self) -> PushValueModel:
        """The :class:`~covercast.agents.oracle.PushValueModel` of the population read now."""
        pop = self.population()
        key = (id(pop.params), id(pop.bank), self.w_dwell, self.w_optout, self.seen_horizon_h)
        m = self._model
        if m is None or self._model_key != key or m.params is not pop.params \
                or m.bank is not pop.bank:
            self._model = m = PushValueModel(pop.params, pop.bank, w_dwell=self.w_dwell,
                                             w_optout=self.w_optout,
                                             seen_horizon_h=self.seen_horizon_h)
            self._model_key = key
            self._P = None
        return m

    # ------------------------------------------------------------------ storage
    def _cover_weights(self, model: PushValueModel) -> np.ndarray:
        """``(S', C)``: the cover mixture of each choice (a style, or the env's style mix)."""
        if self.mode == "schedule":
            return model.per_style.T.copy()
        mix = (np.eye(self.n_styles)[self.timing_style] if self.timing_style is not None
               else self._env_style_mix)
        if mix is None:
            raise ValueError("In the 'timing' layout the oracle needs the style pushes get: "
                             "attach it to a PushTiming-v0 env or pass `timing_style`.")
        return (model.per_style @ mix)[None, :]

    def _storage(self, model: PushValueModel, pop: Any, dt: int) -> dict[str, Any]:
        """Empty plan storage for ``pop`` and the grids of its parameters."""
        p = model.params
        fm = p.fatigue
        n = pop.n_users
        d1 = 2.0 ** (-1.0 / fm.half_life_h)
        grid = self.fatigue_grid_given if self.fatigue_grid_given is not None \
            else default_fatigue_grid(fm.increment, fm.increment / (1.0 - d1))
        ra = p.open.beta_activity * model.relact
        lo = float(ra.min()) - p.open.beta_fatigue * (grid[-1] + fm.increment)
        hi = float(ra.max())
        step = self.logit_step
        x_grid = np.arange(lo - step, hi + 2 * step, step)
        f_push = grid + fm.increment
        A = self.seen_horizon_h if self.tray else 1
        cover_w = self._cover_weights(model)
        X = x_grid.size
        return {
            "pop": pop, "n": n, "dt": dt, "d1": d1, "grid": grid, "A": A,
            "drift": dataclasses.replace(p.drift, sd_per_day=0.0),
            "x_grid": x_grid, "table": _Table(x_grid), "cover_w": cover_w,
            "p_out": R.opt_out_probability(f_push, p.opt_out),
            "wait_st": _stencil(grid, grid * d1), "push_st": _stencil(grid, f_push * d1),
            "stale_a": R.staleness_factor(np.arange(1, A) + 0.5, p.open.stale_tau_h),
            # per user (row): the plan it belongs to and what deciding needs
            "plan": np.full(n, -1, dtype=np.int64), "pos": np.zeros(n, dtype=np.int64),
            "t0": np.full(n, np.nan), "H": np.zeros(n, dtype=np.int64),
            "start": np.full(n, np.nan), "planned_at": np.full(n, np.nan),
            "mult": np.full(n, np.nan), "seg": np.full(n, -1, dtype=np.int64),
            "G_all": np.zeros((n, cover_w.shape[0], X)), "tables_day": np.full(n, -1),
            "s_bar": np.zeros(n, dtype=np.int64),
            "rate": np.zeros((n, HOURS_PER_WEEK)), "relact": np.zeros((n, HOURS_PER_WEEK)),
            "plans": {}, "next_id": 0,
        }

    # ------------------------------------------------------------------ planning
    def _hour_rewards(self, P: dict[str, Any], model: PushValueModel, Gp: np.ndarray,
                      rate: np.ndarray, relact: np.ndarray, limit: np.ndarray
                      ) -> dict[str, np.ndarray]:
        """What the backward step needs for hours ``j = 0 .. L-1`` (columns of ``rate``; the
        tables ``Gp`` ``(n, L, X)`` of each hour):
        ``push`` ``(n, L, F)`` the push's reward (within its hour with the tray, else over
        ``seen_horizon_h`` hours, not past ``limit`` hours), and with the tray ``seen``
        ``(n, L)`` (a new push is seen within its hour), ``ps`` ``(n, L)`` (a waiting push is
        seen in the hour) and ``wait`` ``(n, L, F)`` (the reward of seeing a waiting push in
        the hour, before its staleness)."""
        fm = model.params.fatigue
        grid, table = P["grid"], P["table"]
        L = limit.size
        j = np.arange(L)
        f_push = grid + fm.increment
        n_hours = 1 if self.tray else None
        w, ra, delay = model.seen_terms(rate, relact, j, n_hours=n_hours,
                                        limit=None if self.tray else limit)
        f_seen = R.fatigue_at(f_push[:, None], 0.0, delay[None, :], fm.half_life_h)   # (F, M)
        x = model.logit_shift(ra[:, :, None, :], f_seen[None, None])      # (n, L, F, M)
        e = np.einsum("nlfm,nlm->nlf", table.lookup(Gp, x), w)
        out = {"push": model.push_reward(e, P["p_out"])}
        if self.tray:
            prob, _, _ = model.seen_terms(rate, relact, j, n_hours=1, stale=False)
            out["seen"] = prob.sum(axis=2)
            wp, _, _ = model.seen_terms(rate, relact, j, n_hours=1, stale=False,
                                        seen_now=False)
            ps = out["ps"] = wp[:, :, 1]
            f_half = R.fatigue_at(grid, 0.0, 0.5, fm.half_life_h)              # (F,)
            xw = model.logit_shift(ra[:, :, 1, None], f_half[None, None, :])   # (n, L, F)
            out["wait"] = ps[:, :, None] * table.lookup(Gp, xw)
        return out

    def _backward(self, P: dict[str, Any], model: PushValueModel, plan: dict[str, Any],
                  sl: slice, h_a: int, h_b: int, V: np.ndarray, keep_all: bool
                  ) -> np.ndarray:
        """Backward induction for users ``sl`` of ``plan`` from its hour ``h_b`` (values
        ``V`` ``(n, A, F)``) to ``h_a``. Returns ``V[h_a]``, or with ``keep_all`` every
        ``V[h_a .. h_b]``."""
        L = h_b - h_a
        K = 1 if self.tray else self.seen_horizon_h
        cols = (plan["how0"] + h_a + np.arange(L + K + 1)) % HOURS_PER_WEEK
        Gp = plan["Gp_days"][sl][:, plan["day_of_hour"][h_a:h_b]]        # (n, L, X)
        rw = self._hour_rewards(P, model, Gp, plan["rate"][sl][:, cols],
                                plan["relact"][sl][:, cols],
                                plan["H"] - (h_a + np.arange(L)))
        st_w, st_p = P["wait_st"], P["push_st"]
        keep = 1.0 - P["p_out"]
        stale_a = P["stale_a"][None, :, None]
        A, dt = P["A"], P["dt"]
        out = np.empty((V.shape[0], L + 1) + V.shape[1:], dtype=np.float32) if keep_all \
            else None
        if keep_all:
            out[:, L] = V
        for h in range(h_b - 1, h_a - 1, -1):
            k = h - h_a
            Vw = _interp(V, st_w)                                      # waited: fatigue decays
            Q = np.empty_like(Vw)
            Q[:, 0] = Vw[:, 0]
            if A > 1:
                ps = rw["ps"][:, k, None, None]
                nxt = np.concatenate([Vw[:, 2:], Vw[:, :1]], axis=1)   # a + 1; too old: gone
                Q[:, 1:] = (stale_a * rw["wait"][:, k, None, :] + ps * Vw[:, :1]
                            + (1.0 - ps) * nxt)
            if h % dt == 0:
                Vp = _interp(V[:, :2], st_p)
                if A > 1:
                    seen = rw["seen"][:, k, None]
                    cont = seen * Vp[:, 0] + (1.0 - seen) * Vp[:, 1]
                else:
                    cont = Vp[:, 0]
                Q = np.maximum(Q, (rw["push"][:, k] + keep * cont)[:, None, :])
            V = Q
            if keep_all:
                out[:, k] = V
        return out if keep_all else V

    def _user_blocks(self, P: dict[str, Any], n: int) -> list[slice]:
        per = P["A"] * P["grid"].size * 8
        b = max(1, _USER_BLOCK_ELEMENTS // per)
        return [slice(lo, min(n, lo + b)) for lo in range(0, n, b)]

    def _tables(self, P: dict[str, Any], model: PushValueModel, hs: dict[str, np.ndarray],
                rows: np.ndarray) -> np.ndarray:
        """``(n, S', X)``: the cover-averaged reward per seen push of each choice, users
        ``rows`` with their taste now."""
        return model.mixture_table(model.user_terms(hs, rows), P["cover_w"], P["x_grid"])

    def _expected_tables(self, P: dict[str, Any], model: PushValueModel,
                         hs: dict[str, np.ndarray], rows: np.ndarray, s_bar: np.ndarray,
                         n_days: int) -> np.ndarray:
        """``(n, n_days, X)``: the table of choice ``s_bar`` after ``k`` more days of drift,
        with the expected taste and topic affinity then (the daily Ornstein-Uhlenbeck step
        without its noise: a ``1 - (1 - reversion) ** k`` pull towards the segment's mean)."""
        seg = hs["segment"][rows]
        cover_w = P["cover_w"]
        out = np.empty((rows.size, n_days, P["x_grid"].size))
        for k in range(n_days):
            hk = {"segment": seg, "fatigue": hs["fatigue"][rows],
                  "activity_multiplier": hs["activity_multiplier"][rows],
                  "taste": R.drift_step(hs["taste"][rows], model.taste_mean[seg], P["drift"],
                                        None, days=float(k)),
                  "topic_affinity": R.drift_step(hs["topic_affinity"][rows],
                                                 model.topic_mean[seg], P["drift"], None,
                                                 days=float(k))}
            for q in np.unique(s_bar):
                grp = np.flatnonzero(s_bar == q)
                sel = np.flatnonzero(cover_w[q] > 0)             # only the choice's covers
                user = model.user_terms(hk, grp, hours=np.zeros(1, np.int64), sel=sel)
                out[grp, k] = model.mixture_table(user, cover_w[q, sel][None, :],
                                                  P["x_grid"])[:, 0]
        return out

    def _make_plan(self, P: dict[str, Any], model: PushValueModel, hs: dict[str, np.ndarray],
                   rows: np.ndarray, t0: float, how0: int, H: int) -> None:
        """Plan users ``rows`` from hour ``t0`` (hour of week ``how0``) for ``H`` hours."""
        tic = time.perf_counter()
        fm = model.params.fatigue
        now = float(P["pop"].now)
        user = model.user_terms(hs, rows)
        G_all = model.mixture_table(user, P["cover_w"], P["x_grid"])         # (n, S', X)
        x_typ = model.logit_shift(np.zeros(1), np.full(1, fm.increment))
        typ = P["table"].lookup(G_all, np.broadcast_to(x_typ, G_all.shape[:2]))
        s_bar = np.argmax(typ, axis=1)
        P["G_all"][rows], P["s_bar"][rows] = G_all, s_bar
        P["tables_day"][rows] = _day(now)
        P["rate"][rows], P["relact"][rows] = user["rate"], user["relact"]
        # the drift steps before each planned hour (the population drifts at each day's start)
        day_of_hour = _day(t0 + np.arange(max(H, 1))) - _day(now)
        n_ck = max(1, -(-H // _BLOCK_H))
        A, F = P["A"], P["grid"].size
        plan = {"rows": rows, "how0": how0, "H": H, "block": -1, "values": None,
                "live": rows.size, "rate": user["rate"], "relact": user["relact"],
                "day_of_hour": day_of_hour,
                "Gp_days": self._expected_tables(P, model, hs, rows, s_bar,
                                                 int(day_of_hour[-1]) + 1),
                "ck": np.zeros((rows.size, n_ck, A, F), dtype=np.float32)}
        for sl in self._user_blocks(P, rows.size):
            V = np.zeros((sl.stop - sl.start, A, F))
            for b in range(n_ck - 1, -1, -1):
                h_a, h_b = b * _BLOCK_H, min((b + 1) * _BLOCK_H, H)
                V = self._backward(P, model, plan, sl, h_a, h_b, V, False)
                plan["ck"][sl, b] = V
        pid = P["next_id"]
        P["next_id"] += 1
        old = P["plan"][rows]
        P["plans"][pid] = plan
        for o in np.unique(old[old >= 0]):
            gone = P["plans"][o]
            gone["live"] -= int((old == o).sum())
            if gone["live"] <= 0:
                del P["plans"][o]
        P["plan"][rows], P["pos"][rows] = pid, np.arange(rows.size)
        P["t0"][rows], P["H"][rows] = t0, H
        self.plan_seconds += time.perf_counter() - tic
        self.users_planned += rows.size

    def _values_at(self, P: dict[str, Any], model: PushValueModel, pid: int, h: int
                   ) -> np.ndarray:
        """``V[h]`` ``(n_plan, A, F)`` of plan ``pid``'s users (the day's values, recomputed
        from the checkpoint when the day changes)."""
        plan = P["plans"][pid]
        H = plan["H"]
        if h >= H:
            return np.zeros((plan["rows"].size, P["A"], P["grid"].size), dtype=np.float32)
        b = max(0, (h - 1) // _BLOCK_H)
        if plan["block"] != b:
            tic = time.perf_counter()
            h_a, h_b = b * _BLOCK_H, min((b + 1) * _BLOCK_H, H)
            rows, ck = plan["rows"], plan["ck"]
            vals = np.empty((rows.size, h_b - h_a + 1) + ck.shape[2:], dtype=np.float32)
            for sl in self._user_blocks(P, rows.size):
                V = ck[sl, b + 1].astype(np.float64) if b + 1 < ck.shape[1] \
                    else np.zeros((sl.stop - sl.start,) + ck.shape[2:])
                vals[sl] = self._backward(P, model, plan, sl, h_a, h_b, V, True)
            plan["block"], plan["values"] = b, vals
            self.plan_seconds += time.perf_counter() - tic
        return plan["values"][:, h - b * _BLOCK_H]

    def _refresh(self, n_rows: int, episode_start: np.ndarray | None
                 ) -> tuple[dict[str, Any], dict[str, np.ndarray], Any]:
        """Plan the users who need a plan now; return the storage, the hidden state and the
        population."""
        pop = self.population()
        n = pop.n_users
        if n_rows != n:
            raise ValueError(f"The observation has {n_rows} row(s) but the oracle's population "
                             f"has {n} user(s); row i must be user i.")
        if len(pop.params.styles) != self.n_styles:
            raise ValueError(f"The population has {len(pop.params.styles)} styles but the "
                             f"oracle was built for {self.n_styles}.")
        model = self.value_model()
        dt = self._decision_step_h()
        P = self._P
        if P is None or P["pop"] is not pop or P["n"] != n or P["dt"] != dt:
            P = self._P = self._storage(model, pop, dt)
        hs = pop.hidden_state()
        now = float(pop.now)
        start = self._episode_start_h(pop)
        end = start + self._horizon()
        need = ((P["plan"] < 0) | (np.abs(start - P["start"]) > _TOL_H)
                | (hs["activity_multiplier"] != P["mult"]) | (hs["segment"] != P["seg"])
                | (now < P["planned_at"] - _TOL_H))
        if episode_start is not None:
            need |= episode_start
        if self.replan_every_h is not None:
            need |= now - P["planned_at"] >= self.replan_every_h - _TOL_H
        need &= ~hs["opted_out"]
        if need.any():
            ts = pop.timestamp
            # slots under an hour: decisions on the next whole hour
            wait_min = (60 - ts.minute) % 60 if self._sub_hour() else 0
            t0 = now + wait_min / 60.0
            how0 = (int(ts.day_of_week) * 24 + (ts.hour * 60 + ts.minute + wait_min) // 60) \
                % HOURS_PER_WEEK
            idx = np.flatnonzero(need)
            for e in np.unique(end[idx]):
                rows = idx[end[idx] == e]
                H = max(0, int(math.ceil(float(e) - t0 - _TOL_H)))
                self._make_plan(P, model, hs, rows, t0, how0, H)
            P["start"][idx] = start[idx]
            P["mult"][idx] = hs["activity_multiplier"][idx]
            P["seg"][idx] = hs["segment"][idx]
            P["planned_at"][idx] = now
        return P, hs, pop

    # ------------------------------------------------------------------ decisions
    def plan_values(self, n_rows: int | None = None, episode_start: Any = None
                    ) -> dict[str, np.ndarray]:
        """The values behind the decision now (planning first where needed).

        Returns
        -------
        dict
            ``value_now`` ``(N, S')``: expected reward of a push now of each choice (a style,
            or the env's style in the ``timing`` layout) at the true fatigue, seen within
            ``seen_horizon_h`` hours and before the episode ends, if nothing replaced it;
            ``style`` ``(N,)``: the best; ``q_push``, ``q_wait``: the planned values of pushing
            and of waiting now; ``pending``: expected reward still to come from the push
            waiting unseen in the tray if nothing replaced it (0 where none); ``decide``:
            whether this is a decision time for the user (False: a slot that does not start on
            the hour, the episode's end, or an opted-out user); ``push``: the decision
            (``q_push > q_wait``).
        """
        pop = self.population()
        n = pop.n_users if n_rows is None else n_rows
        start = None if episode_start is None else as_episode_start(episode_start, n)
        P, hs, pop = self._refresh(n, start)
        model = self._model
        fm = model.params.fatigue
        now = float(pop.now)
        ts = pop.timestamp
        grid, dt, A, table = P["grid"], P["dt"], P["A"], P["table"]
        out = {"value_now": np.zeros((n, P["cover_w"].shape[0])),
               "style": np.zeros(n, dtype=np.int64), "q_push": np.full(n, -np.inf),
               "q_wait": np.zeros(n), "pending": np.zeros(n),
               "decide": np.zeros(n, dtype=bool), "push": np.zeros(n, dtype=bool)}
        if self._sub_hour() and ts.minute != 0:
            return out
        h = np.rint(now - P["t0"])
        ok = (np.isfinite(h) & (h >= 0) & (h < P["H"]) & ~hs["opted_out"]
              & (np.abs(now - P["t0"] - h) < _TOL_H))
        h = np.where(ok, h, 0).astype(np.int64)
        ok &= h % dt == 0
        rows = np.flatnonzero(ok)
        out["decide"][rows] = True
        if rows.size == 0:
            return out
        h = h[rows]
        m = rows.size
        Vn = np.empty((m, A, grid.size))
        pids = P["plan"][rows]
        for pid in np.unique(pids):
            sel = np.flatnonzero(pids == pid)
            # the users of one plan share its start: one hour for all of them
            Vn[sel] = self._values_at(P, model, int(pid), int(h[sel[0]]) + 1)[
                P["pos"][rows[sel]]]
        K = self.seen_horizon_h
        how = int(ts.day_of_week) * 24 + int(ts.hour)
        cols = (how + np.arange(K + 1)) % HOURS_PER_WEEK
        rate, relact = P["rate"][rows][:, cols], P["relact"][rows][:, cols]
        left = (P["H"][rows] - h)[:, None]                              # hours before the end
        f = hs["fatigue"][rows]
        f_push = R.add_push_fatigue(f, 0.0, 0.0, fm)
        p_out = R.opt_out_probability(f_push, model.params.opt_out)
        keep = 1.0 - p_out
        j0 = np.zeros(1, np.int64)
        # the push now, each style, over the whole tray horizon: which style
        w, ra, delay = model.seen_terms(rate, relact, j0, limit=left)
        x = model.logit_shift(ra[:, 0], R.fatigue_at(f_push[:, None], 0.0, delay[None, :],
                                                     fm.half_life_h))     # (m, M)
        stale = rows[P["tables_day"][rows] != _day(now)]      # the taste drifted: new tables
        if stale.size:
            P["G_all"][stale] = self._tables(P, model, hs, stale)
            P["tables_day"][stale] = _day(now)
        G_all = P["G_all"][rows]
        S2 = G_all.shape[1]
        g = table.lookup(G_all, np.broadcast_to(x[:, None, :], (m, S2, x.shape[1])))
        value = model.push_reward(np.einsum("nsm,nm->ns", g, w[:, 0]), p_out[:, None])
        style = np.argmax(value, axis=1)
        out["value_now"][rows] = value
        if self.mode == "schedule":
            out["style"][rows] = style
        Gp = G_all[np.arange(m), P["s_bar"][rows]]
        wait_next = _lerp_rows(Vn[:, 0], grid, f * P["d1"])
        pend_id = hs["pending_push"][rows]
        if not self.tray:
            r_plan = model.push_reward((table.lookup(Gp, x) * w[:, 0]).sum(axis=1), p_out)
            q_push = r_plan + keep * _lerp_rows(Vn[:, 0], grid, f_push * P["d1"])
            q_wait = wait_next
        else:
            # the push now within its hour, then the plan (seen, or waiting with age 1)
            w1, ra1, d1 = model.seen_terms(rate, relact, j0, n_hours=1)
            x1 = model.logit_shift(ra1[:, 0], R.fatigue_at(f_push[:, None], 0.0, d1[None, :],
                                                           fm.half_life_h))
            r_hour = model.push_reward((table.lookup(Gp, x1) * w1[:, 0]).sum(axis=1), p_out)
            prob, _, _ = model.seen_terms(rate, relact, j0, n_hours=1, stale=False)
            seen = prob[:, 0].sum(axis=1)
            v0 = _lerp_rows(Vn[:, 0], grid, f_push * P["d1"])
            v1 = _lerp_rows(Vn[:, 1], grid, f_push * P["d1"]) if A > 1 else v0
            q_push = r_hour + keep * (seen * v0 + (1.0 - seen) * v1)
            q_wait = wait_next.copy()
            has = np.flatnonzero(pend_id >= 0)
            if has.size:
                users = rows[has]
                # hidden_state() wrote the engine's tray into these arrays
                cover = np.asarray(pop._pend_cover)[users].astype(np.int64)
                age = now - np.asarray(pop._pend_time, dtype=np.float64)[users]
                a = np.rint(age).astype(np.int64)
                terms = model.user_terms(hs, users, hours=np.zeros(1, np.int64))
                kk = np.arange(users.size)
                base, gain = terms["base"][kk, cover], terms["gain"][kk, cover]
                wq, raq, dq = model.seen_terms(rate[has], relact[has], j0, limit=left[has],
                                               seen_now=False, age_h=age)
                fq = R.fatigue_at(f[has][:, None], 0.0, dq[None, :], fm.half_life_h)
                pq = R.sigmoid(base[:, None] + model.logit_shift(raq[:, 0], fq)) * wq[:, 0]
                out["pending"][users] = pq.sum(axis=1) * gain
                young = np.flatnonzero(a < A)                     # older ones: gone, as planned
                if young.size:
                    hy = has[young]
                    ps = model.seen_terms(rate[hy], relact[hy], j0, n_hours=1, stale=False,
                                          seen_now=False)[0][:, 0, 1]
                    now_part = pq[young, 1] * gain[young]         # seen in this hour
                    nxt = np.where(a[young] + 1 < A, a[young] + 1, 0)
                    v_next = _lerp_rows(Vn[hy, nxt], grid, f[hy] * P["d1"])
                    q_wait[hy] = now_part + ps * wait_next[hy] + (1.0 - ps) * v_next
        out["q_push"][rows], out["q_wait"][rows] = q_push, q_wait
        out["push"][rows] = q_push > q_wait
        return out

    def _decide(self, x, state, episode_start, deterministic):
        v = self.plan_values(x.shape[0], episode_start)
        return v["push"], v["style"], state

    def _distribution(self, x, state):
        v = self.plan_values(x.shape[0])
        probs = np.zeros((x.shape[0], self.n_styles))
        probs[np.arange(x.shape[0]), v["style"]] = 1.0
        return v["push"].astype(np.float64), probs
