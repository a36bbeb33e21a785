"""Fixed baseline agents: random, the static scheduler, and the activity heuristic.

None of them learns from rewards (``update`` is a no-op) and none reads hidden state: they are
deployable policies built from what a platform observes.

* :class:`RandomAgent` -- push with a fixed probability each slot, style drawn from a fixed
  distribution (uniform by default): the floor any sensible policy must beat.
* :class:`StaticScheduler` -- everyone at fixed hours of the day with one style: the
  "fixed-duration push system" control group of the source paper (seed 000, section 4.3),
  like :class:`covercast.simulators.policies.StaticSchedulePolicy`.
* :class:`ActivityHeuristic` -- push at the user's most active *observed* hours (the hour-of-day
  profile of their organic sessions in the observation), at most ``pushes_per_day`` a day and
  never less than ``min_gap_h`` hours after the previous push.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from covercast._io import check_int
from covercast.agents.base import (
    Agent,
    SeedLike,
    check_positive,
    check_style,
    hour_of_day,
    hours_since_push,
    observed_profile,
    on_the_hour,
    weekday_of,
)
from covercast.covers.attributes import DEFAULT_STYLES
from covercast.envs.observation import OBS_INDEX

__all__ = ["RandomAgent", "StaticScheduler", "ActivityHeuristic", "HeuristicState",
           "DEFAULT_PUSH_HOURS"]

#: Push hours of the static scheduler (UTC): the source paper's control sends two a day.
DEFAULT_PUSH_HOURS: tuple[int, ...] = (8, 20)


def _check_hours(hours: Any, name: str = "hours") -> tuple[int, ...]:
    if isinstance(hours, (int, np.integer)) and not isinstance(hours, bool):
        hours = (int(hours),)
    try:
        hours = tuple(hours)
    except TypeError as e:
        raise ValueError(f"`{name}` must be a sequence of hours of the day (0-23), got "
                         f"{hours!r}.") from e
    if not hours:
        raise ValueError(f"`{name}` must list at least one hour of the day (0-23), got ().")
    for h in hours:
        check_int(h, f"{name} entries", 0, 23)
    if len(set(hours)) != len(hours):
        raise ValueError(f"`{name}` must be distinct, got {hours}.")
    return tuple(sorted(int(h) for h in hours))


def _one_hot(style: int, n: int, n_styles: int) -> np.ndarray:
    out = np.zeros((n, n_styles))
    out[:, style] = 1.0
    return out


# ==================================================================================== random
class RandomAgent(Agent):
    """Push with probability ``push_prob`` every slot; the style drawn from ``style_probs``.

    Parameters
    ----------
    mode, n_styles, seed, name :
        See :class:`~covercast.agents.base.Agent`.
    push_prob : float
        Probability of pushing in a slot, in [0, 1]. The default ``2 / 24`` sends two pushes a
        day on average with hourly slots, the volume of the static scheduler.
    style_probs : sequence of float, optional
        Style distribution given a push (default uniform); non-negative, summing to 1.

    Notes
    -----
    With ``deterministic=True`` the agent takes the mode of its distribution, as
    stable-baselines3 does: it pushes only if ``push_prob > 0.5``, with the most likely style.
    """

    default_name = "random"

    def __init__(self, mode: str = "schedule", n_styles: int = len(DEFAULT_STYLES), *,
                 push_prob: float = 2 / 24, style_probs: Sequence[float] | None = None,
                 seed: SeedLike = None, name: str | None = None) -> None:
        super().__init__(mode, n_styles, seed=seed, name=name)
        p = check_positive(push_prob, "push_prob", allow_zero=True)
        if p > 1:
            raise ValueError(f"`push_prob` must be a probability in [0, 1], got {push_prob!r}.")
        self.push_prob = p
        if style_probs is None:
            sp = np.full(self.n_styles, 1.0 / self.n_styles)
        else:
            sp = np.asarray(style_probs, dtype=np.float64)
            if sp.shape != (self.n_styles,) or not np.all(np.isfinite(sp)) or np.any(sp < 0) \
                    or abs(sp.sum() - 1.0) > 1e-6:
                raise ValueError(f"`style_probs` must be {self.n_styles} non-negative numbers "
                                 f"summing to 1 (one per style), got {list(np.ravel(sp))}.")
        self.style_probs = sp / sp.sum()
        self._style_cdf = np.cumsum(self.style_probs)

    def config(self) -> dict[str, Any]:
        return super().config() | {"push_prob": self.push_prob,
                                   "style_probs": [float(v) for v in self.style_probs]}

    def _decide(self, x, state, episode_start, deterministic):
        n = x.shape[0]
        if deterministic:
            push = np.full(n, self.push_prob > 0.5)
            style = np.full(n, int(np.argmax(self.style_probs)), dtype=np.int64)
            return push, style, state
        push = self._rng.random(n) < self.push_prob
        u = self._rng.random(n) * self._style_cdf[-1]
        style = np.minimum(np.searchsorted(self._style_cdf, u, side="right"), self.n_styles - 1)
        return push, style.astype(np.int64), state

    def _distribution(self, x, state):
        n = x.shape[0]
        return np.full(n, self.push_prob), np.broadcast_to(self.style_probs,
                                                           (n, self.n_styles)).copy()


# ==================================================================================== static
class StaticScheduler(Agent):
    """Push at fixed hours of the day (UTC) with one style: the source paper's control group.

    A push is sent in the slot that starts exactly on one of ``hours`` (``hh:00``), so with
    slots shorter than an hour each hour gets one push, not one per slot. With slots longer
    than an hour, list hours the slot grid reaches (e.g. even hours for 120-minute slots).

    Parameters
    ----------
    mode, n_styles, name :
        See :class:`~covercast.agents.base.Agent` (the agent draws nothing at random).
    hours : sequence of int
        Distinct hours of the day, 0-23 (default 08:00 and 20:00).
    style : int
        Style index of every push (default 0, the first style).
    """

    default_name = "static"

    def __init__(self, mode: str = "schedule", n_styles: int = len(DEFAULT_STYLES), *,
                 hours: Sequence[int] = DEFAULT_PUSH_HOURS, style: int = 0,
                 seed: SeedLike = None, name: str | None = None) -> None:
        super().__init__(mode, n_styles, seed=seed, name=name)
        self.hours = _check_hours(hours)
        self.style = check_style(style, self.n_styles)
        self._table = np.zeros(24, dtype=bool)
        self._table[list(self.hours)] = True

    def config(self) -> dict[str, Any]:
        return super().config() | {"hours": list(self.hours), "style": self.style}

    def due(self, x: np.ndarray) -> np.ndarray:
        """Whether each observation row is at a push hour (slot starting on the hour)."""
        h = hour_of_day(x)
        return on_the_hour(h) & self._table[np.rint(h).astype(np.int64) % 24]

    def _decide(self, x, state, episode_start, deterministic):
        return self.due(x), np.full(x.shape[0], self.style, dtype=np.int64), state

    def _distribution(self, x, state):
        return self.due(x).astype(np.float64), _one_hot(self.style, x.shape[0], self.n_styles)


# ==================================================================================== heuristic
class HeuristicState(NamedTuple):
    """Per-row memory of :class:`ActivityHeuristic` (returned by ``predict``, pass it back).

    All fields are ``(N,)`` arrays, one entry per observation row.
    """

    weekday: np.ndarray
    """Weekday of the last decision (-1 before the first): a change starts a new day."""
    pushes_today: np.ndarray
    """Pushes decided since the start of the current (UTC) day."""
    last_hour: np.ndarray
    """Time of day (hours) of the last decision."""
    elapsed_h: np.ndarray
    """Hours since the episode started (to turn sessions per day into sessions seen)."""

    @classmethod
    def initial(cls, n: int) -> HeuristicState:
        return cls(np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n),
                   np.zeros(n))


class ActivityHeuristic(Agent):
    """Push at the user's most active observed hours, capped per day, with a minimum gap.

    The observation carries the user's observed profile: the share of their organic sessions
    seen in each hour of day (``profile_h00..h23``) and the sessions per day seen so far. Each
    slot the agent

    1. estimates the hour-of-day profile as ``(n * observed + k * prior) / (n + k)``, where ``n``
       is the number of sessions seen (``sessions_per_day * elapsed days``), ``prior`` spreads
       over ``fallback_hours`` and ``k = prior_sessions`` -- so before any session is seen it
       pushes at ``fallback_hours``; then smooths it over neighbouring hours
       (``[s, 1 - 2 s, s]`` with ``s = smoothing``, around midnight too);
    2. picks the user's push hours greedily: the most active hour, then the most active hour at
       least ``min_gap_h`` hours (around the clock) from those already picked, up to
       ``pushes_per_day`` hours;
    3. pushes when the slot starts on one of those hours (``hh:00``), fewer than
       ``pushes_per_day`` pushes were sent since midnight (UTC) and the last push was at least
       ``min_gap_h`` hours ago.

    So it never sends more than ``pushes_per_day`` a day, nor two pushes closer than
    ``min_gap_h``, even when the profile (and with it the chosen hours) moves during a day.
    The day's push count lives in the state returned by :meth:`predict`
    (:class:`HeuristicState`); pass it back, with ``episode_start``, at every step.

    Parameters
    ----------
    mode, n_styles, name :
        See :class:`~covercast.agents.base.Agent` (the agent draws nothing at random).
    pushes_per_day : int
        Daily cap, >= 1 (default 2, the static scheduler's volume).
    min_gap_h : float
        Minimum hours between two pushes, > 0 and <= 24 (default 4).
    style : int
        Style of every push (default 0).
    fallback_hours : sequence of int
        Hours used while little has been observed (default 08:00 and 20:00).
    prior_sessions : float
        Weight ``k`` of the fallback prior, in sessions (default 3; 0 = trust the first
        sessions fully).
    smoothing : float
        Share ``s`` given to each neighbouring hour, in [0, 1/3] (default 0.25).
    """

    default_name = "heuristic"

    def __init__(self, mode: str = "schedule", n_styles: int = len(DEFAULT_STYLES), *,
                 pushes_per_day: int = 2, min_gap_h: float = 4.0, style: int = 0,
                 fallback_hours: Sequence[int] = DEFAULT_PUSH_HOURS,
                 prior_sessions: float = 3.0, smoothing: float = 0.25,
                 seed: SeedLike = None, name: str | None = None) -> None:
        super().__init__(mode, n_styles, seed=seed, name=name)
        self.pushes_per_day = check_int(pushes_per_day, "pushes_per_day", 1, 24)
        self.min_gap_h = check_positive(min_gap_h, "min_gap_h")
        if self.min_gap_h > 24:
            raise ValueError(f"`min_gap_h` must be at most 24 hours (the cap is per day), got "
                             f"{min_gap_h!r}.")
        self.style = check_style(style, self.n_styles)
        self.fallback_hours = _check_hours(fallback_hours, "fallback_hours")
        self.prior_sessions = check_positive(prior_sessions, "prior_sessions", allow_zero=True)
        s = check_positive(smoothing, "smoothing", allow_zero=True)
        if s > 1 / 3:
            raise ValueError(f"`smoothing` must be in [0, 1/3] (each neighbour's share), got "
                             f"{smoothing!r}.")
        self.smoothing = s
        prior = np.zeros(24)
        prior[list(self.fallback_hours)] = 1.0 / len(self.fallback_hours)
        self._prior = prior
        hours = np.arange(24)
        d = np.abs(hours[:, None] - hours[None, :])
        self._near = np.minimum(d, 24 - d) < self.min_gap_h - 1e-9     # (24, 24) too close

    def config(self) -> dict[str, Any]:
        return super().config() | {
            "pushes_per_day": self.pushes_per_day, "min_gap_h": self.min_gap_h,
            "style": self.style, "fallback_hours": list(self.fallback_hours),
            "prior_sessions": self.prior_sessions, "smoothing": self.smoothing}

    # ------------------------------------------------------------------ the schedule
    def push_hours(self, x: np.ndarray, elapsed_h: np.ndarray | float = 0.0) -> np.ndarray:
        """The hours each row would push at: boolean ``(N, 24)``.

        ``elapsed_h`` is how long the user has been observed (hours): with ``sessions_per_day``
        it gives the number of sessions behind the observed profile.
        """
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[0]
        n_seen = np.maximum(x[:, OBS_INDEX["sessions_per_day"]], 0.0) * (
            np.broadcast_to(np.asarray(elapsed_h, dtype=np.float64), (n,)) / 24.0)
        k = self.prior_sessions
        den = n_seen + k
        with np.errstate(invalid="ignore", divide="ignore"):
            est = np.where(den[:, None] > 0,
                           (n_seen[:, None] * observed_profile(x) + k * self._prior)
                           / np.where(den > 0, den, 1.0)[:, None],
                           self._prior)
        s = self.smoothing
        score = (1 - 2 * s) * est + s * (np.roll(est, 1, axis=1) + np.roll(est, -1, axis=1))
        chosen = np.zeros((n, 24), dtype=bool)
        allowed = np.ones((n, 24), dtype=bool)
        rows = np.arange(n)
        for _ in range(self.pushes_per_day):
            masked = np.where(allowed, score, -np.inf)
            best = np.argmax(masked, axis=1)
            ok = np.isfinite(masked[rows, best])
            if not ok.any():
                break
            chosen[rows[ok], best[ok]] = True
            allowed[ok] &= ~self._near[best[ok]]
        return chosen

    # ------------------------------------------------------------------ decisions
    def _advance_state(self, x: np.ndarray, state: Any, episode_start: np.ndarray
                       ) -> tuple[HeuristicState, np.ndarray, np.ndarray]:
        """The state at this decision (new day, elapsed time), with the hour and weekday."""
        n = x.shape[0]
        if state is None:
            st = HeuristicState.initial(n)
        else:
            if not isinstance(state, HeuristicState) or state.weekday.shape != (n,):
                raise ValueError(f"`state` must be the HeuristicState returned by the previous "
                                 f"predict() for {n} observation(s) (or None at the start), got "
                                 f"{type(state).__name__}.")
            st = HeuristicState(*(np.array(a) for a in state))
        hour = hour_of_day(x)
        wd = weekday_of(x)
        fresh = episode_start | (st.weekday < 0)
        dt = np.mod(hour - st.last_hour, 24.0)
        new_day = wd != st.weekday
        dt = np.where(new_day & (dt < 1e-6), 24.0, dt)         # 24-hour slots
        elapsed = np.where(fresh, 0.0, st.elapsed_h + dt)
        today = np.where(fresh | new_day, 0, st.pushes_today)
        return HeuristicState(wd, today, hour, elapsed), hour, wd

    def _due(self, x: np.ndarray, st: HeuristicState, hour: np.ndarray) -> np.ndarray:
        due = (on_the_hour(hour) & (hours_since_push(x) >= self.min_gap_h - 1e-3)
               & (st.pushes_today < self.pushes_per_day))
        rows = np.flatnonzero(due)
        if rows.size:           # the schedule only where the clock, gap and cap allow a push
            sched = self.push_hours(x[rows], st.elapsed_h[rows])
            h = np.rint(hour[rows]).astype(np.int64) % 24
            due[rows] = sched[np.arange(rows.size), h]
        return due

    def _decide(self, x, state, episode_start, deterministic):
        st, hour, _ = self._advance_state(x, state, episode_start)
        push = self._due(x, st, hour)
        st = st._replace(pushes_today=st.pushes_today + push)
        return push, np.full(x.shape[0], self.style, dtype=np.int64), st

    def _distribution(self, x, state):
        st, hour, _ = self._advance_state(x, state, np.zeros(x.shape[0], dtype=bool))
        return (self._due(x, st, hour).astype(np.float64),
                _one_hot(self.style, x.shape[0], self.n_styles))
