"""Registered ids, and ``make`` / ``make_vec`` with an episode length in days.

``import covercast`` registers (without importing the environment modules or torch):

==============================  =============================================  ===================
id                              entry point                                    steps (default)
==============================  =============================================  ===================
``covercast/PushTiming-v0``     :class:`~covercast.envs.push_timing.PushTimingEnv`      336 (60-min slots)
``covercast/CoverStyle-v0``     :class:`~covercast.envs.cover_style.CoverStyleEnv`      28 (2 pushes/day)
``covercast/PushSchedule-v0``   :class:`~covercast.envs.push_schedule.PushScheduleEnv`  336 (60-min slots)
==============================  =============================================  ===================

**Episode length.** Each environment truncates its episodes itself after ``horizon_days`` days
(an argument of the environment, default :data:`DEFAULT_HORIZON_DAYS` = 14): ``horizon_days *
1440 / slot_minutes`` slots, or ``horizon_days * len(push_hours)`` pushes for CoverStyle
(:func:`episode_steps`); ``covercast/CoverGeneration-v0`` after ``horizon_days *
len(push_hours)`` campaigns. The ids are therefore registered with ``max_episode_steps=None`` (no
``TimeLimit`` whose fixed number of steps would be wrong for another slot length), so
``gym.make(id, slot_minutes=5)`` gives 14 days (4032 steps) and ``gym.make(id,
horizon_days=7)`` 7 days; ``env.spec.max_episode_steps`` reports the environment's number of
steps. A ``max_episode_steps`` given to ``gym.make`` adds a ``TimeLimit`` as usual, which can
only end episodes earlier; to lengthen them pass ``horizon_days``. :func:`make` is
``gym.make`` with a checked ``horizon_days``. ``covercast/PushSchedule-v0`` also has a vector
entry point: ``gym.make_vec("covercast/PushSchedule-v0", num_envs=N,
vectorization_mode="vector_entry_point")`` builds a
:class:`~covercast.envs.vector.PopulationVectorEnv` (N users on one engine; 14 days by default
for any slot length too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["ENV_IDS", "GENERATION_ENV_ID", "DEFAULT_HORIZON_DAYS", "register_envs", "episode_steps",
           "horizon_slots", "horizon_pushes", "check_horizon_days", "make", "make_vec"]

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


#: Longest episode an environment accepts, in days (a century: beyond it a step counter would
#: lose precision long before any run ends).
MAX_HORIZON_DAYS = 36_500.0


def check_horizon_days(horizon_days: Any) -> float:
    """``horizon_days`` must be a number in (0, 36500]; returns it as a float."""
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, (int, float, np.integer,
                                                                       np.floating)) \
            or not math.isfinite(horizon_days) or not 0 < horizon_days <= MAX_HORIZON_DAYS:
        raise ValueError(f"`horizon_days` must be a positive number of days, at most "
                         f"{MAX_HORIZON_DAYS:,.0f}; got {horizon_days!r}.")
    return float(horizon_days)


def horizon_slots(horizon_days: float, slot_minutes: int) -> int:
    """Slots of ``slot_minutes`` minutes in ``horizon_days`` days (which must be a whole
    number of slots)."""
    horizon_days = check_horizon_days(horizon_days)
    if isinstance(slot_minutes, bool) or not isinstance(slot_minutes, (int, np.integer)) \
            or slot_minutes <= 0 or 1440 % int(slot_minutes):
        raise ValueError(f"`slot_minutes` must be a positive integer dividing 1440, got "
                         f"{slot_minutes!r}.")
    slots = horizon_days * 1440.0 / int(slot_minutes)
    n = int(round(slots))
    if abs(slots - n) > 1e-9 or n < 1:
        raise ValueError(f"`horizon_days` = {horizon_days:g} is not a whole number of "
                         f"{slot_minutes}-minute slots; use a multiple of "
                         f"{int(slot_minutes) / 1440:g} days.")
    return n


def horizon_pushes(horizon_days: float, n_push_hours: int,
                   env_id: str = "covercast/CoverStyle-v0") -> int:
    """Pushes in ``horizon_days`` days (a whole number) at ``n_push_hours`` pushes a day."""
    horizon_days = check_horizon_days(horizon_days)
    if abs(horizon_days - round(horizon_days)) > 1e-9 or round(horizon_days) < 1:
        raise ValueError(f"`horizon_days` must be a whole number of days (>= 1) for {env_id} "
                         f"(one push per push hour per day), got {horizon_days!r}.")
    return int(round(horizon_days)) * int(n_push_hours)


def episode_steps(env_id: str, horizon_days: float = DEFAULT_HORIZON_DAYS,
                  slot_minutes: int = 60,
                  push_hours: Sequence[float] = _DEFAULT_PUSH_HOURS) -> int:
    """Number of decisions in ``horizon_days`` days: the environment's episode length.

    ``horizon_days * 1440 / slot_minutes`` slots for PushTiming and PushSchedule (it must be a
    whole number, :func:`horizon_slots`); ``horizon_days * len(push_hours)`` pushes for
    CoverStyle (``horizon_days`` must then be a whole number of days, :func:`horizon_pushes`).
    """
    env_id = _check_id(env_id)
    if env_id == "covercast/CoverStyle-v0":
        return horizon_pushes(horizon_days, len(push_hours), env_id)
    return horizon_slots(horizon_days, slot_minutes)


def make(env_id: str, *, horizon_days: float = DEFAULT_HORIZON_DAYS,
         **kwargs: Any) -> gym.Env:
    """``gym.make(env_id, horizon_days=horizon_days, **kwargs)``, with ``horizon_days`` checked
    against the slot length (or push hours) first.

    Parameters
    ----------
    env_id : str
        One of :data:`ENV_IDS`.
    horizon_days : float
        Episode length in simulated days (default 14); the environment truncates its episodes
        after :func:`episode_steps` steps and reports them as ``env.spec.max_episode_steps``.
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
    episode_steps(env_id, horizon_days, kwargs.get("slot_minutes", 60),
                  kwargs.get("push_hours", _DEFAULT_PUSH_HOURS))
    return gym.make(env_id, horizon_days=horizon_days, **kwargs)


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
        # the env truncates after horizon_days * len(push_hours) campaigns (28 by default)
        gym.register(id=GENERATION_ENV_ID,
                     entry_point="covercast.envs.cover_generation:CoverGenerationEnv",
                     max_episode_steps=None)
    for env_id in ENV_IDS:
        if env_id in gym.registry:
            continue
        # max_episode_steps=None: the env truncates at its own `horizon_days` (a TimeLimit of a
        # fixed number of steps would be wrong for any other slot length or push hours)
        gym.register(id=env_id, entry_point=_ENTRY[env_id],
                     vector_entry_point=_VECTOR_ENTRY.get(env_id), max_episode_steps=None,
                     disable_env_checker=False)
