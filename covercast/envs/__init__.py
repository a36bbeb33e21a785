"""Gymnasium environments built on :mod:`covercast.simulators` (no torch import).

* ``covercast/PushTiming-v0`` (:class:`PushTimingEnv`): push now or wait, one user;
* ``covercast/CoverStyle-v0`` (:class:`CoverStyleEnv`): which style, at given push hours;
* ``covercast/PushSchedule-v0`` (:class:`PushScheduleEnv`): both at once;
* :class:`PopulationVectorEnv`: PushSchedule for N users on one engine, with an optional daily
  push budget (``gym.make_vec("covercast/PushSchedule-v0", num_envs=N,
  vectorization_mode="vector_entry_point")`` or :func:`make_vec`).

:func:`make` sizes ``TimeLimit`` from ``horizon_days`` for any slot length. The names below are
imported on first use, so ``import covercast`` (which registers the ids) stays light.
"""

from __future__ import annotations

from covercast._lazy import lazy_exports

_LAZY = {
    "CoverGenerationEnv": "covercast.envs.cover_generation",
    "CoverStyleEnv": "covercast.envs.cover_style",
    "PushScheduleEnv": "covercast.envs.push_schedule",
    "PushTimingEnv": "covercast.envs.push_timing",
    "UserEnv": "covercast.envs.base",
    "PopulationVectorEnv": "covercast.envs.vector",
    "OBS_DIM": "covercast.envs.observation",
    "OBS_INDEX": "covercast.envs.observation",
    "OBS_NAMES": "covercast.envs.observation",
    "ObservationBuilder": "covercast.envs.observation",
    "observation_bounds": "covercast.envs.observation",
    "ENV_IDS": "covercast.envs.registration",
    "episode_steps": "covercast.envs.registration",
    "make": "covercast.envs.registration",
    "make_vec": "covercast.envs.registration",
    "register_envs": "covercast.envs.registration",
    "RESPONSE_KEYS": "covercast.envs.rewards",
    "OpenDwellReward": "covercast.envs.rewards",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
