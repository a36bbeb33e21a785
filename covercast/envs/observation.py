"""The observation vector every covercast environment and agent shares.

Only what a platform can see goes in: the clock, the push/open history, dwell, organic session
counts and the user's *observed* activity profile (the share of their organic sessions seen in
each hour of day so far). Hidden fatigue, taste, topic affinity and segment never do -- that is
why memory (a GRU) can help.

==========  ======================  =====================================================  =====  =====
index       name                    meaning                                                min    max
==========  ======================  =====================================================  =====  =====
0           ``hour_sin``            sin(2 pi hour / 24), hour = UTC time of day at the       -1     1
                                    start of the decision slot (with minutes)
1           ``hour_cos``            cos(2 pi hour / 24)                                      -1     1
2           ``weekday_sin``         sin(2 pi weekday / 7), Monday = 0                        -1     1
3           ``weekday_cos``         cos(2 pi weekday / 7)                                    -1     1
4           ``weekend``             1 on Saturday and Sunday                                  0     1
5           ``log_h_since_push``    log1p(hours since the last delivered push), capped at     0     6.58
                                    log1p(720) (30 days; also the value when never pushed)
6           ``log_h_since_open``    log1p(hours since the last open), same cap                0     6.58
7           ``pushes_24h``          pushes delivered in the last 24 h                         0     inf
8           ``opens_24h``           opens in the last 24 h                                    0     inf
9           ``dwell_min_24h``       minutes in pushed sessions in the last 24 h               0     inf
10          ``pushes_7d``           pushes delivered in the last 7 days                       0     inf
11          ``opens_7d``            opens in the last 7 days                                  0     inf
12          ``dwell_min_7d``        minutes in pushed sessions in the last 7 days             0     inf
13          ``sessions_24h``        organic sessions in the last 24 h                         0     inf
14          ``profile_now``         observed share of organic sessions in the current hour    0     1
                                    of day (1/24 before any session is seen)
15          ``sessions_per_day``    organic sessions per day observed so far                  0     inf
16-39       ``profile_h00..h23``    observed share of organic sessions in each hour of day    0     1
==========  ======================  =====================================================  =====  =====
"""

from __future__ import annotations

from typing import Any

import numpy as np

_CAP_HOURS = 720.0
LOG_HOURS_CAP = float(np.log1p(_CAP_HOURS))
"""Cap of the log-hours features: 30 days (also the value when there was never a push/open)."""

OBS_NAMES: tuple[str, ...] = (
    "hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "weekend",
    "log_h_since_push", "log_h_since_open",
    "pushes_24h", "opens_24h", "dwell_min_24h", "pushes_7d", "opens_7d", "dwell_min_7d",
    "sessions_24h", "profile_now", "sessions_per_day",
) + tuple(f"profile_h{h:02d}" for h in range(24))

#: Position of each observation feature by name.
OBS_INDEX: dict[str, int] = {name: i for i, name in enumerate(OBS_NAMES)}
PROFILE_SLICE = slice(OBS_INDEX["profile_h00"], OBS_INDEX["profile_h23"] + 1)
OBS_DIM = len(OBS_NAMES)


def observation_bounds() -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` float32 arrays for a ``gymnasium.spaces.Box`` of the observation."""
    low = np.zeros(OBS_DIM, dtype=np.float32)
    high = np.full(OBS_DIM, np.inf, dtype=np.float32)
    low[:4] = -1.0
    high[:5] = 1.0
    high[OBS_INDEX["log_h_since_push"]] = high[OBS_INDEX["log_h_since_open"]] = LOG_HOURS_CAP
    high[OBS_INDEX["profile_now"]] = 1.0
    high[PROFILE_SLICE] = 1.0
    return low, high


class ObservationBuilder:
    """Turns :meth:`Population.observe` plus the observed hour-of-day profile into vectors.

    It keeps, per user, the organic sessions seen in each hour of day (``(n_users, 24)``);
    call :meth:`record_sessions` after every slot and :meth:`build` to get the ``(n_users,
    OBS_DIM)`` float32 observations. The population vector env uses it; the single-user envs'
    stepper (:class:`~covercast.simulators.user.UserSimulator`) builds the same row in its
    compiled code (tests/envs/test_observation.py checks both against the table above).
    """

    def __init__(self, n_users: int):
        if isinstance(n_users, bool) or not isinstance(n_users, (int, np.integer)) or n_users < 1:
            raise ValueError(f"`n_users` must be an integer >= 1, got {n_users!r}.")
        self.n_users = int(n_users)
        self.profile_counts = np.zeros((self.n_users, 24), dtype=np.float64)
        self.total_sessions = np.zeros(self.n_users, dtype=np.float64)
        self.elapsed_h = np.zeros(self.n_users, dtype=np.float64)
        """Hours each user has been observed (users replaced in a population start at 0)."""
        self._out = np.zeros((self.n_users, OBS_DIM), dtype=np.float32)
        # observed share of sessions per hour of day, kept up to date row by row (a row is
        # recomputed when its user has sessions); `_share_stale` forces a full recomputation.
        # float32, the observation's type: each share is computed in float64 and cast once.
        self._share = np.full((self.n_users, 24), 1.0 / 24.0, dtype=np.float32)
        self._share_stale = False
        self._log_since = np.empty((2, self.n_users))       # scratch of build()

    def reset(self) -> None:
        """Forget every user's history."""
        self.profile_counts[:] = 0.0
        self.total_sessions[:] = 0.0
        self.elapsed_h[:] = 0.0
        self._share[:] = 1.0 / 24.0
        self._share_stale = False

    def reset_users(self, users: np.ndarray) -> None:
        """Forget the history of some users (indices or a boolean mask), e.g. replaced ones."""
        self.profile_counts[users] = 0.0
        self.total_sessions[users] = 0.0
        self.elapsed_h[users] = 0.0
        self._share[users] = 1.0 / 24.0

    def record_sessions(self, hour: int, session_user: np.ndarray, session_count: np.ndarray,
                        slot_hours: float) -> None:
        """Add a slot's organic sessions (sparse users and counts) at hour of day ``hour``.

        ``hour`` is the hour of day at the start of the slot that just ended.
        """
        if session_user.size:
            _kernel().record_sessions(self.profile_counts, self.total_sessions, self._share,
                                         int(hour), session_user, session_count,
                                         not self._share_stale)
        self.elapsed_h += slot_hours

    def add_history(self, users: np.ndarray, counts: np.ndarray, hours: float) -> None:
        """Add sessions seen before the episode: ``counts`` ``(len(users), 24)`` by hour of
        day over ``hours`` hours (:meth:`Population.draw_history`) to rows ``users``."""
        users = np.asarray(users)
        counts = np.asarray(counts, dtype=np.float64)
        self.profile_counts[users] += counts
        self.total_sessions[users] += counts.sum(axis=1)
        self.elapsed_h[users] += hours
        tot = self.total_sessions[users]
        seen = tot > 0
        if seen.any() and not self._share_stale:
            self._share[users[seen]] = self.profile_counts[users[seen]] / tot[seen, None]

    def rows(self, users: np.ndarray, hour: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features of rows ``users`` that come from the profile alone: the shares by hour of
        day ``(len(users), 24)``, the share at ``hour`` and sessions per day."""
        users = np.asarray(users)
        tot = self.total_sessions[users]
        share = np.full((users.size, 24), 1.0 / 24.0)
        np.divide(self.profile_counts[users], tot[:, None], out=share, where=(tot > 0)[:, None])
        return share, share[:, hour], _sessions_per_day(tot, self.elapsed_h[users])

    def build(self, obs: dict[str, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        """The ``(n_users, OBS_DIM)`` observation matrix (a reused buffer unless ``out``).

        ``obs`` is :meth:`Population.observe`'s dict, or :meth:`Population.observe_state`'s
        (which has ``now``, ``last_push`` and ``last_open`` instead of the hours since: nothing
        is allocated)."""
        o = self._out if out is None else out
        if o.shape != (self.n_users, OBS_DIM) or o.dtype != np.float32 \
                or not o.flags.c_contiguous or not o.flags.writeable:
            raise ValueError(f"`out` must be a writeable C-contiguous float32 array of shape "
                             f"({self.n_users}, {OBS_DIM}), got {o.dtype} {o.shape}.")
        hour = int(obs["hour"][0])
        clock = clock_features(hour + float(obs["minute"][0]) / 60.0, float(obs["weekday"][0]))
        if self._share_stale:
            tot = self.total_sessions
            share = np.full((self.n_users, 24), 1.0 / 24.0)
            np.divide(self.profile_counts, tot[:, None], out=share, where=(tot > 0)[:, None])
            self._share[:] = share
            self._share_stale = False
        logs = self._log_since
        if "last_push" in obs:           # hours since = now - last (as Population.observe)
            now = float(obs["now"])
            np.subtract(now, obs["last_push"], out=logs[0])
            np.subtract(now, obs["last_open"], out=logs[1])
        else:
            logs[0] = obs["hours_since_push"]
            logs[1] = obs["hours_since_open"]
        # capping the hours before log1p gives the same values (log1p is increasing and
        # log1p(720) is the cap) without log1p's slow path for inf (never pushed / opened)
        np.minimum(logs, _CAP_HOURS, out=logs)
        np.log1p(logs, out=logs)
        _kernel().fill_observations(
            o, clock, logs, obs["pushes_24h"], obs["opens_24h"], obs["dwell_24h"],
            obs["pushes_7d"], obs["opens_7d"], obs["dwell_7d"], obs["sessions_24h"],
            self._share, self.total_sessions, self.elapsed_h, hour)
        return o


def _kernel() -> Any:
    """The compiled loops (:mod:`covercast.envs._obs_kernel`), imported on first use."""
    from covercast.envs import _obs_kernel

    return _obs_kernel


def _sessions_per_day(total: np.ndarray, elapsed_h: np.ndarray) -> np.ndarray:
    """Observed organic sessions per day (0 for users not observed yet)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(elapsed_h > 0, total * 24.0 / np.where(elapsed_h > 0, elapsed_h, 1.0),
                        0.0)


def clock_features(hour: float, weekday: float) -> np.ndarray:
    """Features 0-4 (hour and weekday encodings, weekend flag) as float64, shape ``(5,)``.

    ``hour`` is the UTC time of day in hours (with minutes), ``weekday`` 0 = Monday.
    """
    return np.array([np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24),
                     np.sin(2 * np.pi * weekday / 7), np.cos(2 * np.pi * weekday / 7),
                     1.0 if weekday >= 5 else 0.0])
