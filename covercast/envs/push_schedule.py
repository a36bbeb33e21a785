"""``covercast/PushSchedule-v0``: when to push one user, and with which cover style."""

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

__all__ = ["PushScheduleEnv"]


class PushScheduleEnv(UserEnv):
    """Each slot, push the user with a chosen cover style, or wait.

    The flagship environment: one simulated user over a horizon of slots (default 14 days of
    60-minute slots). Each step is one slot: the action is taken at the start of the slot, the
    user answers during it (organic sessions, maybe a push seen now or later from the
    notification tray, an open with dwell and engagement, fatigue, maybe an opt-out), and the
    observation is what the platform sees at the start of the next slot.

    ## Action Space

    ``Discrete(1 + n_styles)`` (6 with the default styles ``minimal, vivid, pastel, noir,
    retro``): ``0`` = no push; ``k >= 1`` = push now with a cover of style ``k - 1``, drawn
    uniformly from the bank's covers of that style (the push's topic is the cover's topic).

    ## Observation Space

    ``Box(40,)`` float32, the layout shared by every covercast environment and agent
    (:mod:`covercast.envs.observation`); only what a platform can see, never the hidden fatigue,
    taste or segment:

    | index | name | meaning | min | max |
    |---|---|---|---|---|
    | 0 | hour_sin | sin(2 pi hour / 24), UTC time of day at the start of the slot | -1 | 1 |
    | 1 | hour_cos | cos(2 pi hour / 24) | -1 | 1 |
    | 2 | weekday_sin | sin(2 pi weekday / 7), Monday = 0 | -1 | 1 |
    | 3 | weekday_cos | cos(2 pi weekday / 7) | -1 | 1 |
    | 4 | weekend | 1 on Saturday and Sunday | 0 | 1 |
    | 5 | log_h_since_push | log1p(hours since the last delivered push), cap log1p(720) | 0 | 6.58 |
    | 6 | log_h_since_open | log1p(hours since the last open), same cap | 0 | 6.58 |
    | 7 | pushes_24h | pushes delivered in the last 24 h | 0 | inf |
    | 8 | opens_24h | opens in the last 24 h | 0 | inf |
    | 9 | dwell_min_24h | minutes in pushed sessions in the last 24 h | 0 | inf |
    | 10 | pushes_7d | pushes delivered in the last 7 days | 0 | inf |
    | 11 | opens_7d | opens in the last 7 days | 0 | inf |
    | 12 | dwell_min_7d | minutes in pushed sessions in the last 7 days | 0 | inf |
    | 13 | sessions_24h | organic sessions in the last 24 h | 0 | inf |
    | 14 | profile_now | observed share of organic sessions in the current hour of day | 0 | 1 |
    | 15 | sessions_per_day | organic sessions per day observed so far | 0 | inf |
    | 16-39 | profile_h00..h23 | observed share of organic sessions in each hour of day | 0 | 1 |

    ## Rewards

    ``reward = reward_fn(responses)``, by default
    ``opened + w_dwell * dwell_s / 60 - w_optout * opted_out`` with ``w_dwell = 0.1`` (per
    minute of dwell in pushed sessions) and ``w_optout = 5``. ``info`` holds the raw responses
    of the slot (:data:`covercast.envs.rewards.RESPONSE_KEYS`): ``pushed`` (delivered),
    ``blocked``, ``opened``, ``dwell_s``, ``likes``, ``shares``, ``comments``, ``surveys``,
    ``satisfaction`` (mean 1-5 survey score, only when ``surveys > 0``), ``opted_out``,
    ``sessions`` (organic), ``style`` and ``cover`` (-1 without a push). A push seen late is
    opened (and rewarded) in the slot where the user sees it.

    ## Episode End

    * Termination: the user opts out (``info["opted_out"]``); the terminal step's reward
      includes the opt-out penalty. Stepping on after that raises ``ResetNeeded``.
    * Truncation: after ``horizon_days`` days (default 14), i.e. ``horizon_days * 1440 /
      slot_minutes`` slots, by the environment itself, for any slot length (336 steps with
      60-minute slots, 4032 with 5-minute slots); ``env.spec.max_episode_steps`` reports the
      number. A ``max_episode_steps`` passed to ``gym.make`` adds a ``TimeLimit``, which can
      only end episodes earlier.

    ## Arguments

    ```python
    import gymnasium as gym, covercast
    env = gym.make("covercast/PushSchedule-v0", params=None, bank=None, slot_minutes=60,
                   reward_fn=None, w_dwell=None, w_optout=None, start="2026-01-05T00:00:00Z",
                   history_days=0, render_mode=None, response=None, horizon_days=14,
                   bank_switch=None)
    env = covercast.envs.make("covercast/PushSchedule-v0", horizon_days=7, slot_minutes=5)
    ```

    * ``params``: a :class:`~covercast.simulators.params.PopulationParams` (or the path of its
      JSON, e.g. one fitted from a log); ``None`` = the default population.
    * ``bank``: the covers, with the population's styles and topics: ``None`` /
      ``"procedural"`` = the procedural default bank; ``"diffusion"``, ``"vae-iat"``,
      ``"dcgan"`` = the bank built from that committed generator (24 covers per style, cached
      in the process and on disk; the first build needs torch);
      a :class:`~covercast.covers.bank.CoverBank`; or the path of a bank ``.npz``.
    * ``bank_switch``: ``(step, bank)``, covers from another bank from decision ``step`` of
      every episode on (a content intervention on the same users; :class:`UserEnv`).
    * ``slot_minutes``: slot length, a divisor of 1440 (5, 10, 15, 20, 30, 60, 120, ...).
    * ``reward_fn``: ``reward_fn(responses) -> float`` replacing the default reward;
      ``w_dwell`` / ``w_optout``: the default reward's weights (not with ``reward_fn``).
    * ``start``: wall-clock time (UTC) of the start of every episode, on the slot grid.
    * ``history_days``: days of the user's organic sessions the platform has already seen at
      hour 0 (default 0: a new user). With ``d > 0`` the observed activity profile and
      sessions per day start from ``d`` days of sessions before the episode (Poisson at the
      user's rates, no pushes; drawn from ``np_random``), i.e. an existing user; the 24 h /
      7 d windows still count from hour 0. A platform knows when its existing users open the
      app: this is the setting where timing can be learned from the first push on.
    * ``render_mode``: ``"ansi"`` for a one-line text summary of the last step.
    * ``response``: how the user answers a push, a
      :class:`~covercast.simulators.response.ResponseModel` (default: the model of
      :mod:`covercast.simulators.params`); the population vector env takes it too.

    Each :meth:`reset` draws a new user (segment, activity, taste, ...) from the population,
    seeded from ``self.np_random``: the same seed and the same actions give the same episode.

    ## Version History

    * v0: initial version.
    """

    env_id = "covercast/PushSchedule-v0"

    def __init__(self, params: PopulationParams | str | os.PathLike | None = None,
                 bank: Any = None, slot_minutes: int = 60, reward_fn: RewardFn | None = None,
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
        self.action_space = spaces.Discrete(1 + self.n_styles)

    def _action_meaning(self) -> str:
        styles = ", ".join(f"{k + 1} = {s}" for k, s in enumerate(self.style_names))
        return f"0 = no push, {styles}"

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = self._check_step(action)
        style = a - 1
        return self._finish(self._advance(style), style)
