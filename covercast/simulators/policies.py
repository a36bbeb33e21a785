"""Logging policies: who to push this slot and with which cover style, with exact propensities.

A logging policy is any callable

    policy(obs: dict[str, np.ndarray], rng: np.random.Generator)
        -> (push: bool (N,), style: int (N,), propensity: float (N,))

over the observation dict of :meth:`covercast.simulators.population.Population.observe` (one
entry per user). ``propensity[i]`` is the probability the policy gave to the action it took for
user ``i``: ``P(push, style)`` for pushed users, ``P(no push)`` for the others; it always lies in
(0, 1]. ``style`` is meaningful for pushed users only (0 elsewhere).

The policies here are :class:`LoggingPolicy` subclasses: each defines its full action
distribution (:meth:`LoggingPolicy.distribution`), so besides sampling they give the
probability of *any* action (:meth:`LoggingPolicy.action_probability`), as off-policy
estimators need. No policy pushes a user who has opted out (``obs["opted_out"]``): a platform
knows which devices turned notifications off, and it keeps propensities exact (not pushing them
has probability 1).

* :class:`StaticSchedulePolicy` -- the source paper's control: push everyone at fixed hours of
  the day, with one style (deterministic, propensity 1).
* :class:`UniformRandomPolicy` -- push with a fixed probability each slot, style uniform.
* :class:`EpsilonGreedyWrapper` -- follow a base policy with probability ``1 - epsilon``,
  else act like :class:`UniformRandomPolicy`; propensities of the mixture are exact.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from covercast._io import check_int, check_number
from covercast.covers.attributes import DEFAULT_STYLES

__all__ = ["LoggingPolicy", "StaticSchedulePolicy", "UniformRandomPolicy",
           "EpsilonGreedyWrapper"]


def _n_users(obs: dict[str, np.ndarray]) -> int:
    if "opted_out" not in obs:
        raise ValueError("The observation has no `opted_out` entry; pass the dict returned by "
                         "Population.observe().")
    return int(np.shape(obs["opted_out"])[0])


class LoggingPolicy(ABC):
    """Base class: a stochastic push/style policy defined by its action distribution.

    Subclasses implement :meth:`distribution`; :meth:`__call__` samples from it and reports
    propensities. Actions per user: no push, or push with style ``s`` (``0 <= s < n_styles``).
    """

    n_styles: int

    @abstractmethod
    def distribution(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The action distribution before masking opted-out users.

        Returns
        -------
        p_push : numpy.ndarray
            ``(N,)`` probability of pushing each user.
        style_probs : numpy.ndarray
            ``(N, n_styles)`` or ``(n_styles,)`` (same for everyone): the style distribution
            given a push; rows sum to 1.
        """

    def _masked(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        n = _n_users(obs)
        p_push, style_probs = self.distribution(obs)
        p_push = np.broadcast_to(np.asarray(p_push, dtype=np.float64), (n,))
        p_push = np.where(np.asarray(obs["opted_out"], dtype=bool), 0.0, p_push)
        return p_push, np.asarray(style_probs, dtype=np.float64)

    def __call__(self, obs: dict[str, np.ndarray], rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample an action per user; return ``(push, style, propensity)``."""
        p_push, style_probs = self._masked(obs)
        n = p_push.size
        push = rng.random(n) < p_push
        u = rng.random(n)
        if style_probs.ndim == 1:
            cdf = np.cumsum(style_probs)
            style = np.searchsorted(cdf / cdf[-1], u, side="right")
            p_style = style_probs[np.minimum(style, self.n_styles - 1)]
        else:
            cdf = np.cumsum(style_probs, axis=1)
            style = (u[:, None] * cdf[:, -1:] >= cdf).sum(axis=1)
            style = np.minimum(style, self.n_styles - 1)
            p_style = style_probs[np.arange(n), style]
        style = np.where(push, np.minimum(style, self.n_styles - 1), 0).astype(np.int64)
        prop = np.where(push, p_push * p_style, 1.0 - p_push)
        return push, style, prop

    def action_probability(self, obs: dict[str, np.ndarray], push: np.ndarray,
                           style: np.ndarray) -> np.ndarray:
        """Probability this policy gives to the given actions (for off-policy evaluation).

        ``push`` is a boolean ``(N,)``, ``style`` an int ``(N,)`` (ignored where not pushed).
        """
        p_push, style_probs = self._masked(obs)
        push = np.asarray(push, dtype=bool)
        style = np.asarray(style, dtype=np.int64)
        n = p_push.size
        if push.shape != (n,) or style.shape != (n,):
            raise ValueError(f"`push` and `style` must have shape ({n},), got {push.shape} and "
                             f"{style.shape}.")
        s = np.where(push, style, 0)
        if push.any() and (s.min() < 0 or s.max() >= self.n_styles):
            raise ValueError(f"`style` must lie in [0, {self.n_styles - 1}] where pushed, got "
                             f"[{s.min()}, {s.max()}].")
        ps = style_probs[s] if style_probs.ndim == 1 else style_probs[np.arange(n), s]
        return np.where(push, p_push * ps, 1.0 - p_push)


class StaticSchedulePolicy(LoggingPolicy):
    """Push every (opted-in) user at fixed hours of the day with one style.

    The control group of the source paper. Deterministic: every propensity is 1. A push is
    sent at the slot that starts on the hour (``minute == 0``), so with slots shorter than an
    hour each listed hour gets one push, not one per slot.

    Parameters
    ----------
    hours : sequence of int
        Distinct hours of the day (0-23, in the population's clock, UTC).
    style : int
        Style index of every push.
    n_styles : int
        Number of styles of the population (default: the default styles, 5).
    """

    def __init__(self, hours: Sequence[int] = (8, 20), style: int = 0,
                 n_styles: int = len(DEFAULT_STYLES)) -> None:
        if isinstance(hours, (int, np.integer)):
            hours = (int(hours),)
        hours = tuple(hours)
        if len(hours) == 0:
            raise ValueError("`hours` must list at least one hour of the day (0-23), got ().")
        for h in hours:
            check_int(h, "hours entries", 0, 23)
        if len(set(hours)) != len(hours):
            raise ValueError(f"`hours` must be distinct, got {hours}.")
        self.n_styles = check_int(n_styles, "n_styles")
        self.style = check_int(style, "style", 0, self.n_styles - 1)
        self.hours = tuple(sorted(int(h) for h in hours))
        self._hour_table = np.zeros(24, dtype=bool)
        self._hour_table[list(self.hours)] = True

    def __repr__(self) -> str:
        return f"StaticSchedulePolicy(hours={self.hours}, style={self.style})"

    def _due(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        for key in ("hour", "minute"):
            if key not in obs:
                raise ValueError(f"The observation has no `{key}` entry; pass the dict returned "
                                 "by Population.observe().")
        return self._hour_table[np.asarray(obs["hour"])] & (np.asarray(obs["minute"]) == 0)

    def distribution(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return self._due(obs).astype(np.float64), np.eye(self.n_styles)[self.style]

    def __call__(self, obs: dict[str, np.ndarray], rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Deterministic: no random draw, and a fast path for large populations.
        n = _n_users(obs)
        push = self._due(obs) & ~np.asarray(obs["opted_out"], dtype=bool)
        push = np.broadcast_to(push, (n,)).copy()
        return push, np.full(n, self.style, dtype=np.int64), np.ones(n)


class UniformRandomPolicy(LoggingPolicy):
    """Push each (opted-in) user with probability ``push_prob`` every slot; style uniform.

    Propensity ``push_prob / n_styles`` for a push with a given style, ``1 - push_prob`` for no
    push (1 for opted-out users, who are never pushed).
    """

    def __init__(self, push_prob: float, n_styles: int = len(DEFAULT_STYLES)) -> None:
        self.push_prob = check_number(push_prob, "push_prob", lo=0, hi=1, lo_open=True)
        self.n_styles = check_int(n_styles, "n_styles")

    def __repr__(self) -> str:
        return f"UniformRandomPolicy(push_prob={self.push_prob}, n_styles={self.n_styles})"

    def distribution(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        n = _n_users(obs)
        return np.full(n, self.push_prob), np.full(self.n_styles, 1.0 / self.n_styles)


class EpsilonGreedyWrapper(LoggingPolicy):
    """Follow ``base`` with probability ``1 - epsilon``, else explore uniformly.

    The exploration branch is :class:`UniformRandomPolicy` (``push_prob``, ``n_styles``). The
    action distribution is the mixture ``(1 - epsilon) * base + epsilon * uniform``, so every
    action has probability at least ``epsilon * min(push_prob / n_styles, 1 - push_prob)``
    and propensities are exact even when the base policy is deterministic.

    Parameters
    ----------
    base : LoggingPolicy
        The policy to follow (it must define :meth:`~LoggingPolicy.distribution`).
    epsilon : float
        Exploration probability in [0, 1].
    n_styles : int
        Number of styles; must equal ``base.n_styles``.
    push_prob : float
        Push probability of the exploration branch, in (0, 1].
    """

    def __init__(self, base: LoggingPolicy, epsilon: float, n_styles: int = len(DEFAULT_STYLES),
                 push_prob: float = 0.1) -> None:
        if not isinstance(base, LoggingPolicy):
            raise ValueError(f"`base` must be a LoggingPolicy (with an action distribution), got "
                             f"{type(base).__name__}; wrap plain callables in a LoggingPolicy "
                             "subclass that defines distribution().")
        self.base = base
        self.epsilon = check_number(epsilon, "epsilon", lo=0, hi=1)
        self.n_styles = check_int(n_styles, "n_styles")
        if base.n_styles != self.n_styles:
            raise ValueError(f"`n_styles` = {self.n_styles} differs from the base policy's "
                             f"n_styles = {base.n_styles}; use the same number of styles.")
        self.explore = UniformRandomPolicy(push_prob, n_styles)
        self.push_prob = self.explore.push_prob

    def __repr__(self) -> str:
        return (f"EpsilonGreedyWrapper({self.base!r}, epsilon={self.epsilon}, "
                f"n_styles={self.n_styles}, push_prob={self.push_prob})")

    def distribution(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        n = _n_users(obs)
        e = self.epsilon
        pb, sb = self.base.distribution(obs)
        pb = np.broadcast_to(np.asarray(pb, dtype=np.float64), (n,))
        sb = np.broadcast_to(np.asarray(sb, dtype=np.float64), (n, self.n_styles))
        pu = self.push_prob
        su = 1.0 / self.n_styles
        p_push = (1 - e) * pb + e * pu
        # P(push with style s) = (1-e) pb sb[s] + e pu su; divide by P(push) for the style law.
        joint = (1 - e) * pb[:, None] * sb + e * pu * su
        with np.errstate(invalid="ignore", divide="ignore"):
            style = np.where(p_push[:, None] > 0, joint / np.where(p_push > 0, p_push, 1)[:, None],
                             su)
        return p_push, style
