"""The numba loops of :class:`~covercast.envs.observation.ObservationBuilder` (imported on first
use, so that importing :mod:`covercast.envs` does not import numba).

The observation matrix is row-major ``(n_users, 40)``: numpy filling it column by column walks
every row once per column; these loops fill each row in one go (one pass over the memory, no
temporaries). The arithmetic is numpy's, feature by feature (the float64 value, then one cast to
float32), so the rows are those of the column-wise code.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def fill_observations(o: np.ndarray, clock: np.ndarray, log_since: np.ndarray,
                      push24: np.ndarray, open24: np.ndarray, dwell24: np.ndarray,
                      push7: np.ndarray, open7: np.ndarray, dwell7: np.ndarray,
                      sess24: np.ndarray, share: np.ndarray, total: np.ndarray,
                      elapsed_h: np.ndarray, hour: int) -> None:
    """Write every row of ``o`` ``(n, 40)`` float32 (layout of :mod:`.observation`).

    ``log_since`` ``(2, n)`` holds features 5 and 6 (capped log1p of the hours since the last
    push / open), computed by numpy beforehand: numpy's vectorized ``log1p`` is several times
    faster than a scalar one here, and it keeps the values bit for bit those of numpy.
    """
    n = o.shape[0]
    c0, c1, c2, c3, c4 = clock[0], clock[1], clock[2], clock[3], clock[4]
    for i in range(n):
        o[i, 0] = c0
        o[i, 1] = c1
        o[i, 2] = c2
        o[i, 3] = c3
        o[i, 4] = c4
        o[i, 5] = log_since[0, i]
        o[i, 6] = log_since[1, i]
        o[i, 7] = push24[i]
        o[i, 8] = open24[i]
        o[i, 9] = dwell24[i] / 60.0
        o[i, 10] = push7[i]
        o[i, 11] = open7[i]
        o[i, 12] = dwell7[i] / 60.0
        o[i, 13] = sess24[i]
        o[i, 14] = share[i, hour]
        e = elapsed_h[i]
        o[i, 15] = total[i] * 24.0 / e if e > 0 else 0.0
        for h in range(24):
            o[i, 16 + h] = share[i, h]


@njit(cache=True)
def record_sessions(counts: np.ndarray, total: np.ndarray, share: np.ndarray, hour: int,
                    users: np.ndarray, n_sessions: np.ndarray, update_share: bool) -> None:
    """Add ``n_sessions[j]`` sessions at ``hour`` to user ``users[j]``; refresh their shares."""
    for j in range(users.size):
        u = users[j]
        counts[u, hour] += n_sessions[j]
        total[u] += n_sessions[j]
        if update_share:
            t = total[u]
            for h in range(24):
                share[u, h] = counts[u, h] / t
