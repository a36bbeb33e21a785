"""What the three single-user environments share: one simulated user, its clock, its responses.

:class:`UserEnv` owns a one-user :class:`~covercast.simulators.population.Population` (rebuilt
from ``self.np_random`` at every :meth:`reset`), the :class:`~covercast.envs.observation.
UserObservation`, the reward function and the per-step responses. Subclasses define the
action space and how an action becomes pushes (:meth:`UserEnv.step`).
"""

from __future__ import annotations

import math
import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from covercast.envs.observation import OBS_DIM, UserObservation, clock_features, observation_bounds
from covercast.envs.rewards import RewardFn, make_reward_fn
from covercast.simulators.params import PopulationParams, default_params
from covercast.simulators.population import Population

__all__ = ["UserEnv", "resolve_params", "resolve_bank", "check_slot_minutes", "DEFAULT_START",
           "Tally", "responses"]

#: Hour 0 of every episode: a Monday, 00:00 UTC.
DEFAULT_START = "2026-01-05T00:00:00Z"


def resolve_params(params: PopulationParams | str | os.PathLike | None,
                   population: str | os.PathLike | None = None) -> PopulationParams:
    """The environment's population from its ``params`` / ``population`` arguments.

    ``population`` is a suite name (``"calibrated-v1"``, ``"high-fatigue-v1"``, the alias
    ``"default"``, ...; :mod:`covercast.simulators.suite`) or a JSON path; ``params`` a
    :class:`PopulationParams`, a suite name or a JSON path. Give at most one; neither: the
    default population (``calibrated-v1``).
    """
    from covercast.simulators.suite import load_population

    if population is not None and params is not None:
        raise ValueError("Pass the population as `params` or as `population`, not both.")
    spec = population if population is not None else params
    if spec is None:
        return default_params()
    if isinstance(spec, (PopulationParams, str, os.PathLike)):
        return load_population(spec)
    raise ValueError(f"`params` must be a PopulationParams, a suite population name, a path to "
                     f"its JSON or None (the default population), got {type(spec).__name__}.")


def resolve_bank(bank: Any, params: PopulationParams) -> Any:
    """``None`` -> the procedural default bank; a path -> :meth:`CoverBank.load`.

    The bank's styles and topics must be the population's.
    """
    if bank is None:
        from covercast.covers.procedural import default_bank
        bank = default_bank()
    elif isinstance(bank, (str, os.PathLike)):
        from covercast.covers.bank import CoverBank
        bank = CoverBank.load(bank)
    Population._check_bank(bank, params)
    return bank


def check_slot_minutes(slot_minutes: Any) -> int:
    """``slot_minutes`` must be a positive integer dividing 1440; returns it as an int."""
    if isinstance(slot_minutes, bool) or not isinstance(slot_minutes, (int, np.integer)) \
            or slot_minutes <= 0 or 1440 % int(slot_minutes) != 0:
        raise ValueError(f"`slot_minutes` must be a positive integer dividing 1440 (minutes in a "
                         f"day), e.g. 5, 10, 15, 20, 30, 60, 120; got {slot_minutes!r}.")
    return int(slot_minutes)


#: Longest observed history an environment accepts (a year).
MAX_HISTORY_DAYS = 365.0


def check_history_days(history_days: Any) -> float:
    """``history_days`` must be a number in [0, 365]; returns it as a float."""
    if isinstance(history_days, bool) or not isinstance(
            history_days, (int, float, np.integer, np.floating)) \
            or not math.isfinite(history_days) or not 0 <= history_days <= MAX_HISTORY_DAYS:
        raise ValueError(f"`history_days` must be a number in [0, {MAX_HISTORY_DAYS:g}] (days of "
                         f"organic sessions the platform has seen before the episode), got "
                         f"{history_days!r}.")
    return float(history_days)


class Tally:
    """The responses of one user summed over one or more slots: the summaries that
    :meth:`Population.step_user` / :meth:`Population.advance_user` report (see
    :data:`~covercast.simulators.population.USER_SUMMARY_KEYS`)."""

    __slots__ = ("pushed", "blocked", "opened", "dwell_s", "likes", "shares", "comments",
                 "surveys", "sat_sum", "opted_out", "sessions")

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.pushed = self.blocked = self.opened = 0
        self.likes = self.shares = self.comments = self.surveys = self.sessions = 0
        self.dwell_s = self.sat_sum = 0.0
        self.opted_out = False

    def add(self, summary: tuple) -> None:
        """Add a summary (its ``cover`` is not kept)."""
        (pushed, blocked, opened, dwell_s, likes, shares, comments, surveys, sat_sum, opted_out,
         sessions, _) = summary
        self.pushed += pushed
        self.blocked += blocked
        if opened:
            self.opened += opened
            self.dwell_s += dwell_s
            self.likes += likes
            self.shares += shares
            self.comments += comments
            if surveys:
                self.surveys += surveys
                self.sat_sum += sat_sum
        if opted_out:
            self.opted_out = True
        self.sessions += sessions

    def summary(self, cover: int = -1) -> tuple:
        """The sums as a summary tuple, with ``cover``."""
        return (self.pushed, self.blocked, self.opened, self.dwell_s, self.likes, self.shares,
                self.comments, self.surveys, self.sat_sum, self.opted_out, self.sessions, cover)


def responses(summary: tuple, style: int) -> dict[str, Any]:
    """The responses dict of a step (keys :data:`~covercast.envs.rewards.RESPONSE_KEYS`,
    Python scalars) from a summary tuple; ``satisfaction`` only when a survey was answered."""
    (pushed, blocked, opened, dwell_s, likes, shares, comments, surveys, sat_sum, opted_out,
     sessions, cover) = summary
    r = {"pushed": pushed, "blocked": blocked, "opened": opened, "dwell_s": dwell_s,
         "likes": likes, "shares": shares, "comments": comments, "surveys": surveys,
         "opted_out": opted_out, "sessions": sessions, "style": style, "cover": cover}
    if surveys:
        r["satisfaction"] = sat_sum / surveys
    return r


class UserEnv(gym.Env[np.ndarray, np.int64]):
    """Base class of the single-user environments (not registered itself).

    Parameters
    ----------
    params : PopulationParams, suite name, path or None
        The user model; ``None``: :func:`~covercast.simulators.params.default_params`.
    population : str or path, optional
        The user model by suite name (e.g. ``"high-fatigue-v1"``; see
        :mod:`covercast.simulators.suite`) or JSON path; exclusive with ``params``.
    bank : CoverBank, path or None
        The covers; ``None``: :func:`~covercast.covers.procedural.default_bank`.
    slot_minutes : int
        Length of a decision slot in minutes (divides 1440; 5 to 1440).
    reward_fn : callable, optional
        ``reward_fn(responses) -> float``; exclusive with ``w_dwell`` / ``w_optout``.
    w_dwell, w_optout : float, optional
        Weights of the default reward :class:`~covercast.envs.rewards.OpenDwellReward`.
    start : str
        Wall-clock time (UTC) of hour 0 of every episode, on the slot grid.
    history_days : float
        Days of the user's organic sessions the platform has already seen when the episode
        starts (0 to 365; default 0: a new user, nothing seen). With ``d > 0`` the observed
        activity profile and sessions per day start from ``d`` days of sessions before hour 0
        (:meth:`~covercast.simulators.population.Population.draw_history`: Poisson at the
        user's rates then, no pushes, drawn from ``np_random``): an existing user. The 24 h /
        7 d windows still count from hour 0.
    render_mode : {None, "ansi"}
        ``"ansi"``: :meth:`render` returns a one-line text summary of the last step.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    #: Registered id (set by subclasses; used in messages).
    env_id = "covercast/UserEnv"

    def __init__(self, params: PopulationParams | str | os.PathLike | None = None,
                 bank: Any = None, slot_minutes: int = 60, reward_fn: RewardFn | None = None,
                 w_dwell: float | None = None, w_optout: float | None = None,
                 start: str = DEFAULT_START, history_days: float = 0.0,
                 render_mode: str | None = None, population: str | os.PathLike | None = None
                 ) -> None:
        self.params = resolve_params(params, population)
        self.history_days = check_history_days(history_days)
        self.bank = resolve_bank(bank, self.params)
        self.slot_minutes = check_slot_minutes(slot_minutes)
        self.slot_hours = self.slot_minutes / 60.0
        self.reward_fn = make_reward_fn(reward_fn, w_dwell, w_optout)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"`render_mode` must be None or one of "
                             f"{self.metadata['render_modes']}, got {render_mode!r}.")
        self.render_mode = render_mode
        # validates `start` on the slot grid (ValueError naming it) and builds the tables once
        self._pop = Population(self.params, 1, bank=self.bank, seed=0, start=start,
                               slot_minutes=self.slot_minutes)
        self.start = self._pop.start
        self._minute0 = self.start.hour * 60 + self.start.minute    # minute of day of hour 0
        self.n_styles = len(self.params.styles)
        self.style_names: tuple[str, ...] = tuple(self.params.styles)
        low, high = observation_bounds()
        self.observation_space = spaces.Box(low, high, shape=(OBS_DIM,), dtype=np.float32)
        self._builder = UserObservation()
        self._slot = 0                 # slots since hour 0 (the coming slot's index)
        self._n_actions = 0            # action_space.n as an int (set at reset)
        self._started = False
        self._done = False
        self._last_info: dict[str, Any] | None = None
        self._last_reward = 0.0
        # the compiled path (Population._k_env_step): the observation's state while it runs,
        # the observation it writes and the clock features by clock key (float32)
        self._k_ok = self._pop._k_ok          # numba loaded and the population suits it
        self._kb: np.ndarray | None = None
        self._kobs = np.zeros(OBS_DIM, dtype=np.float32)
        self._kclock: np.ndarray | None = None

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: a new user drawn from ``self.np_random``, at hour 0.

        ``options`` is not used (must be None or empty).
        """
        super().reset(seed=seed)
        if options:
            raise ValueError(f"`options` is not used by {self.env_id}; got {options!r}.")
        self._pop.reset(int(self.np_random.integers(0, 2**63 - 1)))
        self._builder.reset()
        self._kb = None
        if self.history_days:
            self._builder.add_history(self._pop.draw_history(self.history_days,
                                                             self.np_random)[0],
                                      float(round(24.0 * self.history_days)))
        self._slot = 0
        self._n_actions = int(self.action_space.n)
        self._started = True
        self._done = False
        self._last_info = None
        self._last_reward = 0.0
        obs = self._after_reset()
        return (self._observe() if obs is None else obs), {}

    def _after_reset(self) -> np.ndarray | None:
        """Hook: advance the clock to the first decision (CoverStyle); may return the
        observation after it."""
        return None

    def _check_step(self, action: Any) -> int:
        """Validate the call order and the action; return the action as an int."""
        if not self._started:
            raise ResetNeeded(f"Call reset() before step() on {self.env_id}.")
        if self._done:
            raise ResetNeeded(f"The episode of {self.env_id} ended (the user opted out); call "
                              "reset() before step().")
        n = self._n_actions
        if type(action) is int or isinstance(action, np.integer):
            a = int(action)
        else:
            arr = np.asarray(action)
            if arr.shape not in ((), (1,)) or not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"Invalid action {action!r} for {self.env_id}: expected an "
                                 f"integer in [0, {n - 1}] ({self._action_meaning()}).")
            a = int(arr.reshape(()))
        if not 0 <= a < n:
            raise ValueError(f"Invalid action {a} for {self.env_id}: expected an integer in "
                             f"[0, {n - 1}] ({self._action_meaning()}).")
        return a

    def _action_meaning(self) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------------ simulation
    def _hour_of_day(self, slot: int | None = None) -> int:
        """Hour of day (UTC) at the start of slot ``slot`` (default: the coming one)."""
        if slot is None:
            slot = self._slot
        return (self._minute0 + slot * self.slot_minutes) // 60 % 24

    def _advance(self, style: int) -> tuple:
        """Push with ``style`` (``-1``: no push) at the start of the coming slot and run the
        slot (:meth:`Population.step_user`); record its sessions; return its summary."""
        if self._kb is not None:
            self._k_leave()
        hour = (self._minute0 + self._slot * self.slot_minutes) // 60 % 24
        s = self._pop.step_user(style)
        self._slot += 1
        self._builder.record(hour, s[10], self.slot_hours)
        return s

    def _advance_span(self, style: int, n_slots: int) -> tuple[tuple, tuple | None]:
        """:meth:`_advance` then, unless the user opted out in that slot,
        :meth:`_advance_quiet` over ``n_slots`` slots (0: none), in one call of
        :meth:`Population.step_user_span`; returns the two summaries (the second ``None`` when
        the span did not run)."""
        if self._kb is not None:
            self._k_leave()
        hour = (self._minute0 + self._slot * self.slot_minutes) // 60 % 24
        s, q, sessions = self._pop.step_user_span(style, n_slots)
        self._slot += 1
        self._builder.record(hour, s[10], self.slot_hours)
        if q is not None:
            self._builder.record_slots(self._minute0 + self._slot * self.slot_minutes,
                                       self.slot_minutes, sessions, self.slot_hours)
            self._slot += n_slots
        return s, q

    def _advance_quiet(self, n_slots: int) -> tuple:
        """Run ``n_slots`` slots without pushes in one go (:meth:`Population.advance_user`),
        recording each slot's sessions; return the span's summary."""
        if self._kb is not None:
            self._k_leave()
        s, sessions = self._pop.advance_user(n_slots)
        self._builder.record_slots(self._minute0 + self._slot * self.slot_minutes,
                                   self.slot_minutes, sessions, self.slot_hours)
        self._slot += n_slots
        return s

    def _k_step(self, style: int, n_slots: int) -> list[float] | None:
        """The compiled path (numba, :mod:`covercast.simulators._kernel`): a push of
        ``style`` at the coming slot (``-3``: no such slot) then, unless the user opts out in
        it, ``n_slots`` quiet slots, the sessions recorded and the next observation built into
        ``self._kobs``, in one call (:meth:`Population._k_env_step`). Returns the call's
        report (status, clock key, then the summary of all the slots as :class:`Tally` sums
        them), or ``None`` when the compiled path is not available (nothing happened)."""
        b = self._kb
        if b is None:
            if not (self._k_ok and self._pop._lean):
                return None
            b = self._kb = self._builder.to_array(self._minute0, self.slot_minutes)
            if self._kclock is None:
                self._kclock = np.full((7 * 1440, 5), np.nan, dtype=np.float32)
        o = self._pop._k_env_step(style, n_slots, b, self._kobs, self._kclock)
        if o is None:
            self._k_leave()
            return None
        if o[1] >= 0:                 # clock features not in the table yet: as build()
            minutes, weekday = divmod(int(o[1]), 7)
            hour, minute = divmod(minutes, 60)
            clock = clock_features(hour + minute / 60.0, float(weekday)).astype(np.float32)
            self._kclock[int(o[1])] = clock
            self._kobs[:5] = clock
        self._slot += int(o[0]) if style == -3 else 1 + int(o[0])
        return o

    def _k_finish(self, o: list[float], style: int
                  ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """:meth:`_finish` for :meth:`_k_step`'s report: the same responses (as
        :func:`responses` makes them), reward and observation."""
        surveys = int(o[9])
        info = {"pushed": int(o[2]), "blocked": int(o[3]), "opened": int(o[4]),
                "dwell_s": o[5], "likes": int(o[6]), "shares": int(o[7]),
                "comments": int(o[8]), "surveys": surveys, "opted_out": o[11] != 0.0,
                "sessions": int(o[12]), "style": style, "cover": int(o[13])}
        if surveys:
            info["satisfaction"] = o[10] / surveys
        return self._finish(None, style, info, self._kobs.copy())

    def _k_leave(self) -> None:
        """Take the observation's state back from the compiled path."""
        self._builder.from_array(self._kb)
        self._kb = None

    def _observe(self) -> np.ndarray:
        if self._kb is not None:
            self._k_leave()
        return self._builder.build(self._pop.observe_user(0))

    def _finish(self, summary: tuple | None, style: int, info: dict[str, Any] | None = None,
                obs: np.ndarray | None = None
                ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """The step's return from its summary (responses in ``info``, the reward from them,
        the next observation), or from the responses ``info`` and observation ``obs`` made
        already (the compiled path's)."""
        if info is None:
            info = responses(summary, style)
        reward = self.reward_fn(info)
        if type(reward) is not float:
            try:
                reward = float(reward)
            except (TypeError, ValueError) as e:
                raise ValueError(f"`reward_fn` must return a number, got {reward!r}.") from e
        if not math.isfinite(reward):
            raise ValueError(f"`reward_fn` returned {reward!r} for responses {info}; it must "
                             "return a finite number.")
        terminated = info["opted_out"]
        self._done = terminated
        self._last_info = info
        self._last_reward = reward
        return self._observe() if obs is None else obs, reward, terminated, False, info

    # ------------------------------------------------------------------ extras
    @property
    def population(self) -> Population:
        """The one-user population of the current episode (read it, do not step it)."""
        return self._pop

    @property
    def steps_per_day(self) -> float:
        """Decisions per simulated day."""
        return 1440 / self.slot_minutes

    def hidden_state(self) -> dict[str, np.ndarray]:
        """The user's hidden state for oracles and diagnostics only (an agent that reads it is
        not a deployable policy): :meth:`Population.hidden_state` of the one-user population,
        i.e. arrays with a leading axis of length 1 (``fatigue[0]``, ``taste[0]``, ...)."""
        return self._pop.hidden_state()

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        ts = self._pop.timestamp
        if self._last_info is None:
            return f"{ts:%a %H:%M} {self.env_id}: episode start"
        r = self._last_info
        style = self.style_names[r["style"]] if r["style"] >= 0 else "-"
        parts = [f"{ts:%a %H:%M}", f"push={style}" if r["pushed"] else "no push",
                 f"opened={r['opened']}", f"dwell={r['dwell_s']:.0f}s",
                 f"sessions={r['sessions']}", f"reward={self._last_reward:.3f}"]
        if r["opted_out"]:
            parts.append("OPTED OUT")
        return " ".join(parts)
