"""``covercast/CoverStyle-v0``: which cover style to push one user with, at fixed push hours."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from covercast.envs.base import DEFAULT_START, UserEnv
from covercast.envs.registration import DEFAULT_HORIZON_DAYS, horizon_pushes
from covercast.envs.rewards import RewardFn
from covercast.simulators.params import PopulationParams
from covercast.simulators.response import ResponseModel

__all__ = ["CoverStyleEnv"]


class CoverStyleEnv(UserEnv):
    """At each push time, choose the style of the push's cover; the timing is fixed.

    The style half of ``covercast/PushSchedule-v0``: a push goes out at every hour of
    ``push_hours`` (UTC, every day); each step is one push. The environment advances the slots
    between two pushes itself, so a step's reward is everything that happened from this push
    until the next push time: the push's open (possibly late, from the notification tray),
    dwell, engagement and a possible opt-out. A style bandit lives here.

    ## Action Space

    ``Discrete(n_styles)`` (5 with the default styles ``minimal, vivid, pastel, noir,
    retro``): push now with a cover of style ``action``, drawn uniformly from the bank's covers
    of that style.

    ## Observation Space

    ``Box(40,)`` float32, the shared layout of :mod:`covercast.envs.observation` (table in
    :class:`~covercast.envs.push_schedule.PushScheduleEnv`), observed at the push time: clock
    encodings, time since the last push and open, 24 h / 7 day counts and the observed
    activity profile. Taste, fatigue and segment are hidden.

    ## Rewards

    ``reward_fn(responses)`` over the responses summed over the slots from this push to the next
    push time (``info["slots"]`` says how many), by default ``opened + w_dwell * dwell_s / 60 -
    w_optout * opted_out`` (``w_dwell = 0.1``, ``w_optout = 5``); ``satisfaction`` is the mean
    of the surveys answered in that span.

    ## Episode End

    * Termination: the user opts out; the step stops at the slot where it happened.
    * Truncation: after ``horizon_days * len(push_hours)`` pushes (``horizon_days``, default
      14, must be a whole number of days): 28 with the default two push hours, for any
      ``slot_minutes``; ``env.spec.max_episode_steps`` reports the number.

    :meth:`reset` runs the slots from the start of the episode (Monday 00:00 UTC by default)
    up to the first push time, without pushes; the observation then already holds those organic
    sessions.

    ## Arguments

    ```python
    gym.make("covercast/CoverStyle-v0", push_hours=(8, 20), params=None, bank=None,
             slot_minutes=60, reward_fn=None, w_dwell=None, w_optout=None,
             start="2026-01-05T00:00:00Z", history_days=0, render_mode=None, response=None,
             horizon_days=14, bank_switch=None)
    ```

    * ``push_hours``: distinct hours of day (UTC) of the pushes, in ``[0, 24)``; fractional
      hours are allowed on the slot grid (e.g. ``8.5`` with ``slot_minutes=30``).
    * the others as in :class:`~covercast.envs.push_schedule.PushScheduleEnv`.

    ## Version History

    * v0: initial version.
    """

    env_id = "covercast/CoverStyle-v0"
    _steps_are_slots = False      # a step is one push: horizon_steps is set from push_hours

    def __init__(self, push_hours: Sequence[float] = (8, 20),
                 params: PopulationParams | str | os.PathLike | None = None, bank: Any = None,
                 slot_minutes: int = 60, reward_fn: RewardFn | None = None,
                 w_dwell: float | None = None, w_optout: float | None = None,
                 start: str = DEFAULT_START, history_days: float = 0.0,
                 render_mode: str | None = None, population: str | os.PathLike | None = None,
                 response: ResponseModel | None = None,
                 horizon_days: float = DEFAULT_HORIZON_DAYS,
                 bank_switch: tuple[int, Any] | None = None) -> None:
        super().__init__(params=params, bank=bank, slot_minutes=slot_minutes,
                         reward_fn=reward_fn, w_dwell=w_dwell, w_optout=w_optout, start=start,
                         history_days=history_days, render_mode=render_mode,
                         population=population, response=response, horizon_days=horizon_days,
                         bank_switch=bank_switch)
        self.push_hours = self._parse_push_hours(push_hours)
        self.horizon_steps = horizon_pushes(self.horizon_days, len(self.push_hours), self.env_id)
        spd = 1440 // self.slot_minutes
        self._push_slot = [False] * spd
        for h in self.push_hours:
            self._push_slot[int(round(h * 60)) // self.slot_minutes] = True
        # slot of the day the episode starts in
        self._slot0 = self._minute0 // self.slot_minutes
        self._spd = spd
        # per slot of the day: slots until a push slot (0 on one), and from a push slot to
        # the next one (a full day when there is a single push hour)
        push_slots = np.flatnonzero(self._push_slot)
        ahead = (push_slots[None, :] - np.arange(spd)[:, None]) % spd
        self._wait = ahead.min(axis=1).tolist()
        self._gap = np.where(ahead > 0, ahead, spd).min(axis=1).tolist()
        self.action_space = spaces.Discrete(self.n_styles)

    def _parse_push_hours(self, push_hours: Any) -> tuple[float, ...]:
        if isinstance(push_hours, (str, bytes)) or not isinstance(push_hours, Sequence) \
                or len(push_hours) == 0:
            raise ValueError(f"`push_hours` must be a non-empty sequence of hours of day, e.g. "
                             f"(8, 20); got {push_hours!r}.")
        hours = []
        for h in push_hours:
            if isinstance(h, bool) or not isinstance(h, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(h)) or not 0 <= float(h) < 24:
                raise ValueError(f"`push_hours` must hold hours of day in [0, 24), got {h!r} in "
                                 f"{push_hours!r}.")
            minutes = float(h) * 60
            if abs(minutes - round(minutes)) > 1e-6 or round(minutes) % self.slot_minutes:
                raise ValueError(f"Push hour {h!r} is not on the {self.slot_minutes}-minute slot "
                                 f"grid; use multiples of {self.slot_minutes / 60:g} h.")
            hours.append(float(h))
        if len(set(hours)) != len(hours):
            raise ValueError(f"`push_hours` must be distinct, got {push_hours!r}.")
        return tuple(sorted(hours))

    def _action_meaning(self) -> str:
        return "the style of the push: " + ", ".join(
            f"{k} = {s}" for k, s in enumerate(self.style_names))

    def _after_reset(self) -> np.ndarray | None:
        """Run the slots before the first push time (no pushes, nothing rewarded)."""
        slot = self._slot0
        if not self._push_slot[slot]:
            self._advance(-1, self._wait[slot])
            return self._sim.observation.copy()
        return None

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = self._check_step(action)
        # the push's slot then the quiet span up to the next push time, unless the user opts
        # out in the push's slot (the episode ends there)
        s = self._advance(a, self._gap[(self._slot0 + self._slot) % self._spd])
        obs, reward, terminated, truncated, info = self._finish(s, a)
        info["slots"] = self._sim.slots_run
        return obs, reward, terminated, truncated, info
