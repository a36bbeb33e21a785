"""Shared helpers of the agent tests: synthetic observations in the shared layout."""

from __future__ import annotations

import numpy as np
import pytest

from covercast.envs.observation import OBS_DIM, OBS_INDEX, PROFILE_SLICE, clock_features


def make_obs(hour: float = 8.0, weekday: int = 0, *, h_since_push: float = np.inf,
             pushes_24h: float = 0.0, profile: np.ndarray | None = None,
             sessions_per_day: float = 0.0, pushes_7d: float = 0.0,
             opens_7d: float = 0.0) -> np.ndarray:
    """One float32 observation with the given clock, push history and observed profile."""
    x = np.zeros(OBS_DIM, dtype=np.float32)
    x[:5] = clock_features(hour, weekday)
    cap = np.log1p(720.0)
    x[OBS_INDEX["log_h_since_push"]] = min(np.log1p(h_since_push), cap)
    x[OBS_INDEX["log_h_since_open"]] = cap
    x[OBS_INDEX["pushes_24h"]] = pushes_24h
    x[OBS_INDEX["pushes_7d"]] = pushes_7d
    x[OBS_INDEX["opens_7d"]] = opens_7d
    prof = np.full(24, 1 / 24) if profile is None else np.asarray(profile, dtype=float)
    x[PROFILE_SLICE] = prof
    x[OBS_INDEX["profile_now"]] = prof[int(hour) % 24]
    x[OBS_INDEX["sessions_per_day"]] = sessions_per_day
    return x


def random_obs(n: int, seed: int = 0) -> np.ndarray:
    """``n`` plausible random observations (on-the-hour clocks, random profiles)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        prof = rng.dirichlet(np.full(24, 0.5))
        rows.append(make_obs(float(rng.integers(24)), int(rng.integers(7)),
                             h_since_push=float(rng.choice([1.0, 5.0, 30.0, np.inf])),
                             pushes_24h=float(rng.integers(3)), profile=prof,
                             sessions_per_day=float(rng.uniform(0, 8)),
                             pushes_7d=float(rng.integers(10)), opens_7d=float(rng.integers(2))))
    return np.stack(rows)


@pytest.fixture
def obs_factory():
    return make_obs


@pytest.fixture
def random_obs_factory():
    return random_obs
