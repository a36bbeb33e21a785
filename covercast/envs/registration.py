"""Registered ids, and ``make`` / ``make_vec`` that size ``TimeLimit`` from the horizon.

``import covercast`` registers (without importing the environment modules or torch):

==============================  =============================================  =================
id                              entry point                                    max_episode_steps
==============================  =============================================  =================
``covercast/PushTiming-v0``     :class:`~covercast.envs.push_timing.PushTimingEnv`      336
``covercast/CoverStyle-v0``     :class:`~covercast.envs.cover_style.CoverStyleEnv`      28
``covercast/PushSchedule-v0``   :class:`~covercast.envs.push_schedule.PushScheduleEnv`  336
==============================  =============================================  =================

The registered ``max_episode_steps`` are 14 days of the default decisions (60-minute slots; two
pushes a day for CoverStyle). ``gym.make(id, slot_minutes=5)`` keeps the registered number of
*steps*, so pass ``max_episode_steps`` along with another slot length, or call :func:`make`,
which computes it from ``horizon_days``. ``covercast/PushSchedule-v0`` also has a vector entry
point: ``gym.make_vec("covercast/PushSchedule-v0", num_envs=N,
vectorization_mode="vector_entry_point")`` builds a
:class:`~covercast.envs.vector.PopulationVectorEnv` (N users on one engine).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym

__all__ = ["ENV_IDS", "GENERATION_ENV_ID", "DEFAULT_HORIZON_DAYS", "register_envs", "episode_steps", "make",
           "make_vec"]

#: Every environment id covercast registers.
ENV_IDS: tuple[str, ...] = ("covercast/PushTiming-v0", "covercast/CoverStyle-v0",
                            "covercast/PushSchedule-v0")

DEFAULT_HORIZON_DAYS = 14.0
"""Episode length of the registered ids, in days."""

_ENTRY = {
    "covercast/PushTiming-v0": "covercast.envs.push_timing:PushTimingEnv",
    "covercast/CoverStyle-v0": "covercast.envs.cover_style:CoverStyleEnv",
    "covercast/PushSchedule-v0": "covercast.envs.push_schedule:PushScheduleEnv",
}
_VECTOR_ENTRY = {"covercast/PushSchedule-v0": "covercast.envs.vector:PopulationVectorEnv"}
_DEFAULT_PUSH_HOURS = (8, 20)


def _check_id(env_id: Any) -> str:
    if env_id not in _ENTRY:
        raise ValueError(f"Unknown covercast environment id {env_id!r}; ids are {list(ENV_IDS)}.")
    return env_id


def episode_steps(env_id: str, horizon_days: float = DEFAULT_HORIZON_DAYS,
                  slot_minutes: int = 60,
                  push_hours: Sequence[float] = _DEFAULT_PUSH_HOURS) -> int:
    """Number of decisions in ``horizon_days`` days: the right ``max_episode_steps``.

    ``horizon_days * 1440 / slot_minutes`` slots for PushTiming and PushSchedule (it must be a
    whole number); ``horizon_days * len(push_hours)`` pushes for CoverStyle (``horizon_days``
    must then be a whole number of days).
    """
    env_id = _check_id(env_id)
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, (int, float)) \
            or not math.isfinite(horizon_days) or horizon_days <= 0:
        raise ValueError(f"`horizon_days` must be a positive number, got {horizon_days!r}.")
    if env_id == "covercast/CoverStyle-v0":
        if abs(horizon_days - round(horizon_days)) > 1e-9:
            raise ValueError(f"`horizon_days` must be a whole number of days for {env_id} (one "
                             f"push per push hour per day), got {horizon_days!r}.")
        return int(round(horizon_days)) * len(push_hours)
    if isinstance(slot_minutes, bool) or not isinstance(slot_minutes, int) or slot_minutes <= 0 \
            or 1440 % slot_minutes:
        raise ValueError(f"`slot_minutes` must be a positive integer dividing 1440, got "
                         f"{slot_minutes!r}.")
    slots = horizon_days * 1440.0 / slot_minutes
    n = int(round(slots))
    if abs(slots - n) > 1e-9 or n < 1:
        raise ValueError(f"`horizon_days` = {horizon_days} is not a whole number of "
                         f"{slot_minutes}-minute slots; use a multiple of "
                         f"{slot_minutes / 1440:g} days.")
    return n


def make(env_id: str, *, horizon_days: float = DEFAULT_HORIZON_DAYS,
         **kwargs: Any) -> gym.Env:
    """``gym.make(env_id, max_episode_steps=..., **kwargs)`` with the steps of ``horizon_days``.

    Parameters
    ----------
    env_id : str
        One of :data:`ENV_IDS`.
    horizon_days : float
        Episode length in simulated days (default 14).
    **kwargs
        The environment's arguments (``slot_minutes``, ``params``, ``push_hours``, ...) and
        ``gym.make``'s own; ``max_episode_steps`` is not allowed (it comes from
        ``horizon_days``).

    Examples
    --------
    >>> env = make("covercast/PushSchedule-v0", horizon_days=7, slot_minutes=5)  # doctest: +SKIP
    >>> env.spec.max_episode_steps                                               # doctest: +SKIP
    2016
    """
    env_id = _check_id(env_id)
    if "max_episode_steps" in kwargs:
        raise ValueError("covercast.envs.make computes `max_episode_steps` from `horizon_days`; "
                         "pass `horizon_days`, or call gym.make with `max_episode_steps`.")
    steps = episode_steps(env_id, horizon_days, kwargs.get("slot_minutes", 60),
                          kwargs.get("push_hours", _DEFAULT_PUSH_HOURS))
    return gym.make(env_id, max_episode_steps=steps, **kwargs)


def make_vec(num_envs: int, *, horizon_days: float = DEFAULT_HORIZON_DAYS,
             **kwargs: Any) -> gym.vector.VectorEnv:
    """The population vector environment of PushSchedule for ``num_envs`` users.

    Same as ``gym.make_vec("covercast/PushSchedule-v0", num_envs=num_envs,
    vectorization_mode="vector_entry_point", max_episode_steps=...)`` with the steps of
    ``horizon_days``; ``kwargs`` are :class:`~covercast.envs.vector.PopulationVectorEnv`'s.
    """
    if "max_episode_steps" in kwargs:
        raise ValueError("covercast.envs.make_vec computes `max_episode_steps` from "
                         "`horizon_days`; pass `horizon_days` instead.")
    env_id = "covercast/PushSchedule-v0"
    steps = episode_steps(env_id, horizon_days, kwargs.get("slot_minutes", 60))
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        max_episode_steps=steps, **kwargs)


#: The generation env: a continuous conditioning of a live generator per user segment. Not in
#: :data:`ENV_IDS`, whose envs share the Discrete action space and the Box(40,) observation.
GENERATION_ENV_ID = "covercast/CoverGeneration-v0"


def register_envs() -> None:
    """Register :data:`ENV_IDS` and :data:`GENERATION_ENV_ID` with Gymnasium (idempotent;
    ``import covercast`` calls it)."""
    if GENERATION_ENV_ID not in gym.registry:
        # 28 steps = 14 days of two campaigns a day (push_hours=(8, 20)).
        gym.register(id=GENERATION_ENV_ID,
                     entry_point="covercast.envs.cover_generation:CoverGenerationEnv",
                     max_episode_steps=28)
    for env_id in ENV_IDS:
        if env_id in gym.registry:
            continue
        steps = episode_steps(env_id, DEFAULT_HORIZON_DAYS)
        gym.register(id=env_id, entry_point=_ENTRY[env_id],
                     vector_entry_point=_VECTOR_ENTRY.get(env_id), max_episode_steps=steps,
                     disable_env_checker=False)
