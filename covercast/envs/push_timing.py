"""``covercast/PushTiming-v0``: push one user now, or wait (the cover style is not the agent's)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from gymnasium import spaces

from covercast.envs.base import DEFAULT_START, UserEnv
from covercast.envs.registration import DEFAULT_HORIZON_DAYS
from covercast.envs.rewards import RewardFn
from covercast.simulators.params import PopulationParams
from covercast.simulators.response import ResponseModel

__all__ = ["PushTimingEnv"]


class PushTimingEnv(UserEnv):
    """Each slot, decide whether to push the user now; the cover style is fixed or random.

    The timing half of ``covercast/PushSchedule-v0``: same user model, slots, observation,
    reward and episode end; only the action differs.

    ## Action Space

    ``Discrete(2)``: ``0`` = wait, ``1`` = push now. The push's cover is drawn uniformly from the
    bank's covers of the style given by the ``style`` argument: a fixed style (index or name,
    default ``0``, the first style) or ``"random"`` (a style drawn uniformly from
    ``self.np_random`` for every push).

    ## Observation Space

    ``Box(40,)`` float32, the shared layout of :mod:`covercast.envs.observation` (see the table
    in :class:`~covercast.envs.push_schedule.PushScheduleEnv`): hour and weekday encodings,
    time since the last push and open, 24 h / 7 day push, open, dwell and session counts, and
    the user's observed hour-of-day activity profile. Hidden fatigue, taste and segment are not
    observed.

    ## Rewards

    ``reward_fn(responses)``, by default ``opened + w_dwell * dwell_s / 60 - w_optout *
    opted_out`` (``w_dwell = 0.1``, ``w_optout = 5``). ``info`` holds the raw responses of the
    slot (:data:`covercast.envs.rewards.RESPONSE_KEYS`), including the ``style`` pushed.

    ## Episode End

    * Termination: the user opts out (stepping on raises ``ResetNeeded``).
    * Truncation: after ``horizon_days`` days (default 14) of slots, for any ``slot_minutes``
      (336 steps of 60 minutes, 4032 of 5 minutes), as in
      :class:`~covercast.envs.push_schedule.PushScheduleEnv`.

    ## Arguments

    ```python
    gym.make("covercast/PushTiming-v0", style=0, params=None, bank=None, slot_minutes=60,
             reward_fn=None, w_dwell=None, w_optout=None, start="2026-01-05T00:00:00Z",
             history_days=0, render_mode=None, response=None,
             horizon_days=14, bank_switch=None)
    ```

    * ``style``: the style of every push: an index in ``[0, n_styles)``, a style name, or
      ``"random"``.
    * the others as in :class:`~covercast.envs.push_schedule.PushScheduleEnv`.

    ## Version History

    * v0: initial version.
    """

    env_id = "covercast/PushTiming-v0"

    def __init__(self, style: int | str = 0,
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
        self.style = style
        self._style = self._parse_style(style)
        self.action_space = spaces.Discrete(2)

    def _parse_style(self, style: Any) -> int:
        """The fixed style index, or -1 for ``"random"``."""
        names = list(self.style_names)
        if isinstance(style, str):
            if style == "random":
                return -1
            if style in names:
                return names.index(style)
            raise ValueError(f"`style` must be a style index in [0, {len(names) - 1}], a style "
                             f"name in {names} or 'random'; got {style!r}.")
        if isinstance(style, bool) or not isinstance(style, (int, np.integer)) \
                or not 0 <= int(style) < len(names):
            raise ValueError(f"`style` must be a style index in [0, {len(names) - 1}], a style "
                             f"name in {names} or 'random'; got {style!r}.")
        return int(style)

    def _action_meaning(self) -> str:
        return "0 = wait, 1 = push now"

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = self._check_step(action)
        style = -1
        if a:
            style = self._style if self._style >= 0 else int(
                self.np_random.integers(self.n_styles))
        return self._finish(self._advance(style), style)
