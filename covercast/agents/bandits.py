"""Style bandits: learn which cover style gets opened, while a timing agent decides when.

Both agents choose the *style* when a push is due; *when* a push is due comes from a timing
agent (:class:`~covercast.agents.baselines.ActivityHeuristic` by default, or e.g. a
:class:`~covercast.agents.baselines.StaticScheduler`). In the ``style`` layout
(``covercast/CoverStyle-v0``) the environment decides the time and every step is a push; the
``timing`` layout has no style to choose and is refused.

* :class:`ThompsonStyleAgent` -- Beta-Bernoulli Thompson sampling on opens per style, shared
  by all observation rows or one posterior per row (``per_user=True``).
* :class:`LinUCBStyleAgent` -- disjoint LinUCB (Li et al., WWW 2010) on a small, documented
  context taken from the observation (:data:`LINUCB_CONTEXT_NAMES`).

**Credit assignment.** A push is a success if it is opened, a failure otherwise. Opens can come
late (a push waits in the notification tray until the user's next session), so each row keeps
its last push *pending*: an open reported in ``info["opened"]`` while a push is pending credits
that push's style; a pending push is a failure when a newer push replaces it (the tray holds
one), when ``credit_window_h`` hours pass without an open, or when the user opts out. An open
in the very step of a new push is credited to the new push. ``info["pushed"]`` (pushes
actually delivered) is used when present, else the action.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import integrate, stats

from covercast.agents.base import (
    Agent,
    SeedLike,
    as_obs_batch,
    as_seed_sequence,
    check_positive,
    hour_of_day,
    info_array,
    observed_profile,
)
from covercast.agents.baselines import ActivityHeuristic
from covercast.covers.attributes import DEFAULT_STYLES
from covercast.envs.observation import OBS_INDEX

__all__ = ["StyleBandit", "ThompsonStyleAgent", "LinUCBStyleAgent", "LINUCB_CONTEXT_NAMES",
           "linucb_context"]

#: The LinUCB context, in order. The four ``share_*`` features are the observed share of the
#: user's organic sessions in each quarter of the day (they sum to 1, so they also play the
#: intercept); they tell segments apart (commuters, evening users, night owls), and segments
#: differ in taste. ``hour_sin``/``hour_cos``/``weekend`` are the clock; ``open_rate_7d`` is
#: ``opens_7d / max(pushes_7d, 1)``.
LINUCB_CONTEXT_NAMES: tuple[str, ...] = (
    "share_00_06", "share_06_12", "share_12_18", "share_18_24", "hour_sin", "hour_cos",
    "weekend", "open_rate_7d")


def linucb_context(x: np.ndarray) -> np.ndarray:
    """The LinUCB context ``(N, 8)`` (:data:`LINUCB_CONTEXT_NAMES`) of observation rows."""
    x = np.asarray(x, dtype=np.float64)
    prof = observed_profile(x).reshape(x.shape[0], 4, 6).sum(axis=2)
    pushes = x[:, OBS_INDEX["pushes_7d"]]
    rate = x[:, OBS_INDEX["opens_7d"]] / np.maximum(pushes, 1.0)
    return np.column_stack([prof, x[:, OBS_INDEX["hour_sin"]], x[:, OBS_INDEX["hour_cos"]],
                            x[:, OBS_INDEX["weekend"]], rate])


class StyleBandit(Agent):
    """Base of the style bandits: timing delegation and delayed-open credit assignment.

    Subclasses implement :meth:`_choose` (styles for the rows due a push), :meth:`_style_probs`
    and :meth:`_learn` (one update per resolved push).

    Parameters
    ----------
    mode : {"schedule", "style"}
        The action layout (``timing`` has no style to choose).
    n_styles, seed, name :
        See :class:`~covercast.agents.base.Agent`.
    timing : Agent, optional
        Decides when to push (its style is ignored); default
        ``ActivityHeuristic(n_styles=n_styles)``. Its state is the bandit's ``state``.
    credit_window_h : float
        Hours after which an unopened push counts as a failure (default 24).
    """

    learns = True

    def __init__(self, mode: str = "schedule", n_styles: int = len(DEFAULT_STYLES), *,
                 timing: Agent | None = None, credit_window_h: float = 24.0,
                 seed: SeedLike = None, name: str | None = None) -> None:
        super().__init__(mode, n_styles, seed=seed, name=name)
        if mode == "timing":
            raise ValueError("A style bandit chooses cover styles, and the 'timing' layout "
                             "(PushTiming-v0) has none to choose; use mode='schedule' or "
                             "'style', or a timing agent.")
        if timing is None:
            timing = ActivityHeuristic(n_styles=self.n_styles)
        if not isinstance(timing, Agent):
            raise ValueError(f"`timing` must be a covercast Agent (e.g. ActivityHeuristic or "
                             f"StaticScheduler), got {type(timing).__name__}.")
        if timing.n_styles != self.n_styles:
            raise ValueError(f"`timing` has n_styles={timing.n_styles} but this bandit has "
                             f"{self.n_styles}; build both for the same styles.")
        self.timing = timing
        self.credit_window_h = check_positive(credit_window_h, "credit_window_h")
        self._pending_style = np.zeros(0, dtype=np.int64)
        self._pending_age = np.zeros(0)
        self._pending_ctx = np.zeros((0, 0))
        self.n_pushes_learned = 0
        """Pushes whose outcome was learned (successes and failures)."""

    @property
    def n_pending(self) -> int:
        """Pushes waiting for their outcome (one at most per row)."""
        return int(np.count_nonzero(self._pending_style >= 0))

    def config(self) -> dict[str, Any]:
        return super().config() | {"timing": self.timing.config(),
                                   "credit_window_h": self.credit_window_h}

    # ------------------------------------------------------------------ decisions
    def _decide(self, x, state, episode_start, deterministic):
        n = x.shape[0]
        if self._pending_style.shape[0] == n:
            # a new user in these rows: what the previous one left pending is not learned
            self._pending_style[episode_start] = -1
        if self.layout.decides_timing:
            push, _, state = self.timing._decide(x, state, episode_start, deterministic)
        else:
            push = np.ones(n, dtype=bool)
        style = np.zeros(n, dtype=np.int64)
        rows = np.flatnonzero(push)
        if rows.size:
            style[rows] = self._choose(x, rows, deterministic)
        return push, style, state

    def _distribution(self, x, state):
        n = x.shape[0]
        if self.layout.decides_timing:
            p_push, _ = self.timing._distribution(x, state)
        else:
            p_push = np.ones(n)
        return p_push, self._style_probs(x)

    @abstractmethod
    def _choose(self, x: np.ndarray, rows: np.ndarray, deterministic: bool) -> np.ndarray:
        """Styles for the observation rows ``rows`` (those due a push)."""

    @abstractmethod
    def _style_probs(self, x: np.ndarray) -> np.ndarray:
        """``(N, n_styles)`` probability of each style given a push."""

    @abstractmethod
    def _learn(self, rows: np.ndarray, styles: np.ndarray, ctx: np.ndarray,
               success: np.ndarray) -> None:
        """One update per resolved push: its row, style, context at push time and outcome."""

    def _context(self, x: np.ndarray) -> np.ndarray:
        """What is stored with a pending push (the context it was chosen in)."""
        return np.zeros((x.shape[0], 0))

    # ------------------------------------------------------------------ learning
    def _ensure_rows(self, n: int, ctx_dim: int) -> None:
        if self._pending_style.shape[0] != n or self._pending_ctx.shape[1] != ctx_dim:
            self._pending_style = np.full(n, -1, dtype=np.int64)
            self._pending_age = np.zeros(n)
            self._pending_ctx = np.zeros((n, ctx_dim))

    def _resolve(self, rows: np.ndarray, success: bool) -> None:
        rows = rows[self._pending_style[rows] >= 0]
        if rows.size:
            self._learn(rows, self._pending_style[rows].copy(), self._pending_ctx[rows].copy(),
                        np.full(rows.size, float(success)))
            self.n_pushes_learned += int(rows.size)
            self._pending_style[rows] = -1

    def update(self, obs: Any, action: Any, reward: Any, next_obs: Any, terminated: Any,
               info: Mapping[str, Any] | None) -> None:
        """Credit opens to pending pushes and learn from resolved ones (see module docstring).

        ``obs`` / ``next_obs`` are the step's observations (their clocks give the step's
        duration), ``action`` the actions taken, ``terminated`` the opt-out flags, ``info``
        the responses (``pushed`` and ``opened`` are read; scalars or one per row).
        """
        x, _ = as_obs_batch(obs)
        x2, _ = as_obs_batch(next_obs)
        n = x.shape[0]
        if x2.shape[0] != n:
            raise ValueError(f"`next_obs` has {x2.shape[0]} rows but `obs` has {n}.")
        push_action, style = self.layout.decode(action)
        if push_action.shape != (n,):
            raise ValueError(f"`action` must hold one action per observation ({n}), got "
                             f"shape {push_action.shape}.")
        ctx = self._context(x)
        self._ensure_rows(n, ctx.shape[1])
        pushed = info_array(info, "pushed", n, np.nan)
        pushed = np.where(np.isnan(pushed), push_action, pushed > 0)
        pushed &= push_action
        opened = info_array(info, "opened", n) > 0
        term = np.atleast_1d(np.asarray(terminated, dtype=bool))
        if term.shape == (1,) and n > 1:
            term = np.full(n, term[0])
        if term.shape != (n,):
            raise ValueError(f"`terminated` must be a bool or have shape ({n},), got shape "
                             f"{term.shape}.")
        dt = np.mod(hour_of_day(x2) - hour_of_day(x), 24.0)
        dt = np.where(dt < 1e-6, 24.0, dt)

        rows = np.arange(n)
        # a new push replaces the pending one: the old one failed
        self._resolve(rows[pushed], success=False)
        new = rows[pushed]
        self._pending_style[new] = style[new]
        self._pending_age[new] = 0.0
        self._pending_ctx[new] = ctx[new]
        # opens credit the pending push (the new one when both happened in this step)
        self._resolve(rows[opened], success=True)
        # unopened pushes age; too old, or the user left: failure
        self._pending_age[rows[~pushed]] += dt[~pushed]
        stale = (self._pending_age >= self.credit_window_h - 1e-9) | term
        self._resolve(rows[stale], success=False)

    def reset(self, seed: SeedLike = None) -> None:
        """Forget everything learned (and the pending pushes); re-seed this agent and its
        timing agent (from two children of ``seed``)."""
        own, sub = as_seed_sequence(seed).spawn(2)
        self.timing.reset(sub)
        super().reset(own)

    def _reset_learning(self) -> None:
        self._pending_style = np.zeros(0, dtype=np.int64)
        self._pending_age = np.zeros(0)
        self._pending_ctx = np.zeros((0, 0))
        self.n_pushes_learned = 0


# ==================================================================================== Thompson
class ThompsonStyleAgent(StyleBandit):
    """Beta-Bernoulli Thompson sampling over styles, on opens.

    Each style ``s`` has a ``Beta(alpha_s, beta_s)`` posterior of its open probability, starting
    at ``prior``; when a push is due the agent draws one value per style and takes the largest
    (``deterministic=True``: the largest posterior mean). A resolved push adds 1 to ``alpha`` of
    its style if it was opened, else 1 to ``beta``.

    Parameters
    ----------
    mode, n_styles, timing, credit_window_h, seed, name :
        See :class:`StyleBandit`.
    prior : (float, float)
        ``(alpha, beta)`` of every style's prior (default ``(1, 1)``, uniform). Push open rates
        are a few percent, so e.g. ``(1, 19)`` (mean 5 %) explores less.
    per_user : bool
        One posterior per observation row (each user of the vector environment learns alone)
        instead of one shared by all rows (default). With the single-user environments the two
        are the same.
    """

    default_name = "thompson"

    def __init__(self, mode: str = "schedule", n_styles: int = len(DEFAULT_STYLES), *,
                 timing: Agent | None = None, prior: tuple[float, float] = (1.0, 1.0),
                 per_user: bool = False, credit_window_h: float = 24.0,
                 seed: SeedLike = None, name: str | None = None) -> None:
        super().__init__(mode, n_styles, timing=timing, credit_window_h=credit_window_h,
                         seed=seed, name=name)
        try:
            a0, b0 = prior
        except (TypeError, ValueError) as e:
            raise ValueError(f"`prior` must be a pair (alpha, beta) of numbers > 0, got "
                             f"{prior!r}.") from e
        self.prior = (check_positive(a0, "prior[0] (alpha)"), check_positive(b0, "prior[1] (beta)"))
        self.per_user = bool(per_user)
        self._reset_posterior()

    def config(self) -> dict[str, Any]:
        return super().config() | {"prior": list(self.prior), "per_user": self.per_user}

    def _reset_posterior(self) -> None:
        g = 0 if self.per_user else 1
        self.alpha = np.full((g, self.n_styles), self.prior[0])
        """Posterior alpha per (group, style): groups are rows with ``per_user``, else one."""
        self.beta = np.full((g, self.n_styles), self.prior[1])

    def _reset_learning(self) -> None:
        super()._reset_learning()
        self._reset_posterior()

    def _groups(self, n: int) -> np.ndarray:
        if not self.per_user:
            return np.zeros(n, dtype=np.int64)
        if self.alpha.shape[0] != n:
            if self.alpha.shape[0] != 0:
                raise ValueError(f"This per-user agent learned for {self.alpha.shape[0]} rows "
                                 f"and now sees {n}; call reset() to start over.")
            self.alpha = np.full((n, self.n_styles), self.prior[0])
            self.beta = np.full((n, self.n_styles), self.prior[1])
        return np.arange(n)

    @property
    def posterior_mean(self) -> np.ndarray:
        """``alpha / (alpha + beta)`` per (group, style)."""
        return self.alpha / (self.alpha + self.beta)

    def _choose(self, x, rows, deterministic):
        g = self._groups(x.shape[0])[rows]
        a, b = self.alpha[g], self.beta[g]
        if deterministic:
            return np.argmax(a / (a + b), axis=1)
        return np.argmax(self._rng.beta(a, b), axis=1)

    def _style_probs(self, x):
        """P(style s has the largest Beta draw), by quadrature on 4,001 points spanning the
        posteriors' mass."""
        g = self._groups(x.shape[0])
        uniq, inv = np.unique(g, return_inverse=True)
        probs = np.empty((uniq.size, self.n_styles))
        for i, gi in enumerate(uniq):
            a, b = self.alpha[gi][:, None], self.beta[gi][:, None]
            lo = float(np.min(stats.beta.ppf(1e-10, a, b)))
            hi = float(np.max(stats.beta.isf(1e-10, a, b)))
            grid = np.linspace(lo, hi, 4001)
            pdf = stats.beta.pdf(grid, a, b)                        # (S, M)
            logcdf = stats.beta.logcdf(grid, a, b)
            others = logcdf.sum(axis=0, keepdims=True) - logcdf     # sum over j != s
            integrand = pdf * np.exp(others)
            p = integrate.trapezoid(integrand, grid, axis=1)
            probs[i] = p / p.sum()
        return probs[inv]

    def _learn(self, rows, styles, ctx, success):
        g = self._groups(self._pending_style.shape[0])[rows]
        np.add.at(self.alpha, (g, styles), success)
        np.add.at(self.beta, (g, styles), 1.0 - success)


# ==================================================================================== LinUCB
class LinUCBStyleAgent(StyleBandit):
    """Disjoint LinUCB over styles on the context :func:`linucb_context`.

    Each style ``s`` has a ridge regression ``theta_s = A_s^-1 b_s`` of the open indicator on
    the context ``x`` (:data:`LINUCB_CONTEXT_NAMES`), ``A_s = ridge * I + sum x x^T``; when a
    push is due the agent takes ``argmax_s x . theta_s + alpha * sqrt(x^T A_s^-1 x)`` (ties
    broken at random; ``deterministic=True``: the lowest index). One model is shared by all rows
    (it is contextual: the context tells users apart).

    Parameters
    ----------
    mode, n_styles, timing, credit_window_h, seed, name :
        See :class:`StyleBandit`.
    alpha : float
        Width of the confidence bonus, >= 0 (default 0.5).
    ridge : float
        Ridge penalty, > 0 (default 1).
    """

    default_name = "linucb"

    def __init__(self, mode: str = "schedule", n_styles: int = len(DEFAULT_STYLES), *,
                 timing: Agent | None = None, alpha: float = 0.5, ridge: float = 1.0,
                 credit_window_h: float = 24.0, seed: SeedLike = None,
                 name: str | None = None) -> None:
        super().__init__(mode, n_styles, timing=timing, credit_window_h=credit_window_h,
                         seed=seed, name=name)
        self.alpha = check_positive(alpha, "alpha", allow_zero=True)
        self.ridge = check_positive(ridge, "ridge")
        self._reset_model()

    @property
    def context_dim(self) -> int:
        return len(LINUCB_CONTEXT_NAMES)

    def config(self) -> dict[str, Any]:
        return super().config() | {"alpha": self.alpha, "ridge": self.ridge,
                                   "context": list(LINUCB_CONTEXT_NAMES)}

    def _reset_model(self) -> None:
        d = self.context_dim
        self.A_inv = np.repeat(np.eye(d)[None] / self.ridge, self.n_styles, axis=0)
        """``A_s^-1`` per style, ``(n_styles, d, d)`` (kept by Sherman-Morrison updates)."""
        self.b = np.zeros((self.n_styles, d))
        self.counts = np.zeros(self.n_styles, dtype=np.int64)
        """Resolved pushes per style."""

    def _reset_learning(self) -> None:
        super()._reset_learning()
        self._reset_model()

    @property
    def theta(self) -> np.ndarray:
        """Ridge coefficients per style, ``(n_styles, d)``."""
        return np.einsum("sij,sj->si", self.A_inv, self.b)

    def _context(self, x):
        return linucb_context(x)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """UCB scores ``(N, n_styles)`` of observation rows."""
        c = linucb_context(x)
        mean = c @ self.theta.T
        var = np.einsum("nd,sde,ne->ns", c, self.A_inv, c)
        return mean + self.alpha * np.sqrt(np.maximum(var, 0.0))

    def _choose(self, x, rows, deterministic):
        sc = self.scores(x[rows])
        best = sc.max(axis=1, keepdims=True)
        ties = sc >= best - 1e-12
        if deterministic:
            return np.argmax(ties, axis=1)
        u = self._rng.random(sc.shape) * ties
        return np.argmax(u + ties, axis=1)     # uniform among the tied styles

    def _style_probs(self, x):
        sc = self.scores(x)
        ties = sc >= sc.max(axis=1, keepdims=True) - 1e-12
        return ties / ties.sum(axis=1, keepdims=True)

    def _learn(self, rows, styles, ctx, success):
        for s, c, r in zip(styles, ctx, success, strict=True):
            Ai = self.A_inv[s]
            v = Ai @ c
            self.A_inv[s] = Ai - np.outer(v, v) / (1.0 + c @ v)
            self.b[s] += r * c
            self.counts[s] += 1
