"""What the three single-user environments share: one simulated user, its clock, its responses.

:class:`UserEnv` owns a :class:`~covercast.simulators.user.UserSimulator` (a new user drawn from
``self.np_random`` at every :meth:`reset`), which steps the user and builds the observation in
one compiled call; the reward function and the per-step responses. Subclasses define the action
space and how an action becomes pushes (:meth:`UserEnv.step`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from gymnasium.error import ResetNeeded

from covercast.envs.observation import OBS_DIM, observation_bounds
from covercast.envs.registration import DEFAULT_HORIZON_DAYS, check_horizon_days, horizon_slots
from covercast.envs.rewards import RewardFn, make_reward_fn
from covercast.simulators.params import PopulationParams, default_params
from covercast.simulators.response import ResponseModel
from covercast.simulators.user import UserSimulator

__all__ = ["UserEnv", "resolve_params", "resolve_bank", "check_slot_minutes", "DEFAULT_START",
           "horizon_spec"]

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
    """The environment's covers from its ``bank`` argument.

    * ``None`` or ``"procedural"``: the procedural default bank;
    * ``"diffusion"``, ``"vae-iat"``, ``"dcgan"``: the bank built from the committed checkpoint
      (:func:`covercast.generators.banks.named_bank`: 24 covers per style, seed 0, cached in
      the process and on disk; building one needs torch, the ``gen`` extra);
    * a path (``str`` or ``os.PathLike``) of a bank ``.npz``: :meth:`CoverBank.load`;
    * a :class:`~covercast.covers.bank.CoverBank`: itself.

    The bank's styles and topics must be the population's. An unknown name is a
    ``ValueError`` naming the ones there are.
    """
    if bank is None or (isinstance(bank, str) and bank == "procedural"):
        from covercast.covers.procedural import default_bank
        bank = default_bank()
    elif isinstance(bank, (str, os.PathLike)):
        from covercast.generators.banks import BANK_NAMES, check_bank_spec, named_bank
        if isinstance(bank, str) and bank in BANK_NAMES:
            bank = named_bank(bank)
        else:
            from covercast.covers.bank import CoverBank
            bank = CoverBank.load(check_bank_spec(bank))
    from covercast.simulators.population import Population
    Population._check_bank(bank, params)
    return bank


def check_slot_minutes(slot_minutes: Any) -> int:
    """``slot_minutes`` must be a positive integer dividing 1440; returns it as an int."""
    if isinstance(slot_minutes, bool) or not isinstance(slot_minutes, (int, np.integer)) \
            or slot_minutes <= 0 or 1440 % int(slot_minutes) != 0:
        raise ValueError(f"`slot_minutes` must be a positive integer dividing 1440 (minutes in a "
                         f"day), e.g. 5, 10, 15, 20, 30, 60, 120; got {slot_minutes!r}.")
    return int(slot_minutes)


def horizon_spec() -> property:
    """An environment's ``spec`` property that reports the environment's own episode length.

    The covercast ids are registered without a ``TimeLimit`` (a fixed number of steps would be
    wrong for another slot length or other push hours): the environment truncates its episodes
    after ``self.horizon_steps`` steps itself. ``gym.make`` sets the unwrapped environment's
    ``spec`` with ``max_episode_steps=None``; this property fills in ``horizon_steps``, so
    ``env.spec.max_episode_steps`` stays the episode length. A ``TimeLimit`` added by
    ``gym.make(..., max_episode_steps=n)`` reports its own ``n`` on the wrapped environment.
    """

    def get(self: Any) -> EnvSpec | None:
        return self.__dict__.get("_spec")

    def set_(self: Any, value: EnvSpec | None) -> None:
        if value is not None and value.max_episode_steps is None:
            value = dataclasses.replace(value, max_episode_steps=self.horizon_steps)
        self.__dict__["_spec"] = value

    return property(get, set_, doc="The environment's spec, with ``max_episode_steps`` = "
                                   "``horizon_steps`` (see :func:`horizon_spec`).")


def _check_bank_switch(bank_switch: Any) -> tuple[int, Any]:
    """``bank_switch`` must be ``(step, bank)`` with an integer ``step >= 1``."""
    if not isinstance(bank_switch, (tuple, list)) or len(bank_switch) != 2:
        raise ValueError(f"`bank_switch` must be a pair (step, bank), got {bank_switch!r}.")
    step, other = bank_switch
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"The step of `bank_switch` must be an integer >= 1 (the decision "
                         f"from which the other bank's covers are pushed), got {step!r}.")
    return int(step), other


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


class UserEnv(gym.Env[np.ndarray, np.int64]):
    """Base class of the single-user environments (not registered itself).

    Parameters
    ----------
    params : PopulationParams, suite name, path or None
        The user model; ``None``: :func:`~covercast.simulators.params.default_params`.
    population : str or path, optional
        The user model by suite name (e.g. ``"high-fatigue-v1"``; see
        :mod:`covercast.simulators.suite`) or JSON path; exclusive with ``params``.
    bank : CoverBank, name, path or None
        The covers (:func:`resolve_bank`): ``None`` / ``"procedural"``: the procedural
        default bank; ``"diffusion"``, ``"vae-iat"``, ``"dcgan"``: the bank built from that
        committed generator (cached; needs torch the first time); or a bank ``.npz`` path.
    slot_minutes : int
        Length of a decision slot in minutes (divides 1440; 5 to 1440).
    reward_fn : callable, optional
        ``reward_fn(responses) -> float``; exclusive with ``w_dwell`` / ``w_optout``.
    w_dwell, w_optout : float, optional
        Weights of the default reward :class:`~covercast.envs.rewards.OpenDwellReward`.
    start : str
        Wall-clock time (UTC) of hour 0 of every episode, on the slot grid.
    horizon_days : float
        Episode length in simulated days (default 14): the environment truncates the episode
        (``truncated=True``) after :attr:`horizon_steps` steps, ``horizon_days * 1440 /
        slot_minutes`` slots (CoverStyle: ``horizon_days * len(push_hours)`` pushes), whatever
        the slot length. ``env.spec.max_episode_steps`` reports that number.
    history_days : float
        Days of the user's organic sessions the platform has already seen when the episode
        starts (0 to 365; default 0: a new user, nothing seen). With ``d > 0`` the observed
        activity profile and sessions per day start from ``d`` days of sessions before hour 0
        (:meth:`~covercast.simulators.population.Population.draw_history`: Poisson at the
        user's rates then, no pushes, drawn from ``np_random``): an existing user. The 24 h /
        7 d windows still count from hour 0.
    render_mode : {None, "ansi"}
        ``"ansi"``: :meth:`render` returns a one-line text summary of the last step.
    response : ResponseModel, optional
        How the user answers a push (:class:`~covercast.simulators.response.ResponseModel`;
        default: the model of :mod:`covercast.simulators.params`). Its functions are compiled
        with numba on first use.
    bank_switch : (int, bank), optional
        ``(step, other)``: from decision ``step`` (>= 1) of every episode on, pushes carry
        covers of ``other`` (a bank as ``bank`` takes it) instead of ``bank`` -- a content
        intervention on the same user: their state, history and random stream carry on, only
        the covers change (seed 001's A/B design with generated covers as the treatment). A
        push sent before the switch and still unseen at it is shown with a cover of the same
        style drawn from ``other`` (from ``np_random``). Each :meth:`reset` starts on ``bank``
        again; :attr:`bank` is the bank in use.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    #: Registered id (set by subclasses; used in messages).
    env_id = "covercast/UserEnv"
    #: Whether a step is one slot (the horizon is then ``horizon_days`` of slots).
    _steps_are_slots = True

    def __init__(self, params: PopulationParams | str | os.PathLike | None = None,
                 bank: Any = None, slot_minutes: int = 60, reward_fn: RewardFn | None = None,
                 w_dwell: float | None = None, w_optout: float | None = None,
                 start: str = DEFAULT_START, history_days: float = 0.0,
                 render_mode: str | None = None, population: str | os.PathLike | None = None,
                 response: ResponseModel | None = None,
                 horizon_days: float = DEFAULT_HORIZON_DAYS,
                 bank_switch: tuple[int, Any] | None = None) -> None:
        self.params = resolve_params(params, population)
        self.history_days = check_history_days(history_days)
        self.bank = resolve_bank(bank, self.params)
        self.slot_minutes = check_slot_minutes(slot_minutes)
        self.slot_hours = self.slot_minutes / 60.0
        #: number of steps after which an episode is truncated (see ``horizon_days``; a
        #: subclass whose steps are not slots sets it in its own ``__init__``)
        self.horizon_steps = horizon_slots(horizon_days, self.slot_minutes) \
            if self._steps_are_slots else 0
        self.horizon_days = check_horizon_days(horizon_days)
        self.reward_fn = make_reward_fn(reward_fn, w_dwell, w_optout)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"`render_mode` must be None or one of "
                             f"{self.metadata['render_modes']}, got {render_mode!r}.")
        self.render_mode = render_mode
        # validates `start` on the slot grid (ValueError naming it) and builds the tables once
        self._sim = UserSimulator(self.params, self.bank, start=start,
                                  slot_minutes=self.slot_minutes, response=response)
        self.response = self._sim.response
        self._switch_step: int | None = None
        if bank_switch is not None:
            step, other = _check_bank_switch(bank_switch)
            other = resolve_bank(other, self.params)
            self._switch_step = step
            self._banks = (self.bank, other)
            self._sims = (self._sim, UserSimulator(self.params, other, start=start,
                                                   slot_minutes=self.slot_minutes,
                                                   response=self.response))
        self.start = self._sim.start
        self._minute0 = self.start.hour * 60 + self.start.minute    # minute of day of hour 0
        self.n_styles = len(self.params.styles)
        self.style_names: tuple[str, ...] = tuple(self.params.styles)
        low, high = observation_bounds()
        self.observation_space = spaces.Box(low, high, shape=(OBS_DIM,), dtype=np.float32)
        self._slot = 0                 # slots since hour 0 (the coming slot's index)
        self._steps = 0                # steps taken in the episode
        self._n_actions = 0            # action_space.n as an int (set at reset)
        self._started = False
        self._done = False
        self._last_info: dict[str, Any] | None = None
        self._last_reward = 0.0

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: a new user drawn from ``self.np_random``, at hour 0.

        ``options`` is not used (must be None or empty).
        """
        super().reset(seed=seed)
        if options:
            raise ValueError(f"`options` is not used by {self.env_id}; got {options!r}.")
        if self._switch_step is not None:
            self._sim, self.bank = self._sims[0], self._banks[0]
        self._sim.reset(int(self.np_random.integers(0, 2**63 - 1)))
        if self.history_days:
            self._sim.add_history(self._sim.draw_history(self.history_days, self.np_random)[0],
                                  float(round(24.0 * self.history_days)))
        self._slot = 0
        self._steps = 0
        self._n_actions = int(self.action_space.n)
        self._started = True
        self._done = False
        self._last_info = None
        self._last_reward = 0.0
        obs = self._after_reset()
        return (self._sim.observe_now() if obs is None else obs), {}

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
        if self._steps == self._switch_step:
            self._switch_bank()
        return a

    def _switch_bank(self) -> None:
        """Carry the user over to the simulator of the other bank (``bank_switch``)."""
        from covercast.simulators.user import S_PEND, S_PEND_C

        old, new = self._sims
        new._S[:] = old._S          # the user's state and random stream (its last 4 words)
        new._N[:] = old._N
        new._obs[:] = old._obs
        new._started = True
        if old._S[S_PEND] >= 0.0:   # an unseen push: shown with a new cover of its style
            style = int(self._banks[0].style[int(old._S[S_PEND_C])])
            idx = self._banks[1].indices(style=style)
            new._S[S_PEND_C] = float(idx[int(self.np_random.integers(len(idx)))])
        self._sim, self.bank = new, self._banks[1]

    def _action_meaning(self) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------------ simulation
    def _hour_of_day(self, slot: int | None = None) -> int:
        """Hour of day (UTC) at the start of slot ``slot`` (default: the coming one)."""
        if slot is None:
            slot = self._slot
        return (self._minute0 + slot * self.slot_minutes) // 60 % 24

    def _advance(self, style: int, n_slots: int = 1) -> dict[str, Any]:
        """Push with ``style`` (``-1``: no push) at the start of the coming slot and run
        ``n_slots`` slots, fewer if the user opts out (:meth:`UserSimulator.step`); returns
        the responses (keys :data:`~covercast.envs.rewards.RESPONSE_KEYS`)."""
        info = self._sim.step(style, n_slots)
        info["style"] = style
        self._slot += self._sim.slots_run
        return info

    def _finish(self, info: dict[str, Any], style: int
                ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """The step's return from its responses ``info``: the reward from them, the next
        observation."""
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
        self._steps += 1
        # like gymnasium's TimeLimit, which this replaces: truncated from the horizon's last
        # step on, even on a terminal step
        truncated = self._steps >= self.horizon_steps
        return self._sim.observation.copy(), reward, terminated, truncated, info

    # ------------------------------------------------------------------ extras
    spec = horizon_spec()

    @property
    def population(self) -> UserSimulator:
        """The simulated user of the current episode (read it, do not step it); it reads like
        a one-user :class:`~covercast.simulators.population.Population`."""
        return self._sim

    @property
    def steps_per_day(self) -> float:
        """Decisions per simulated day."""
        return 1440 / self.slot_minutes

    def hidden_state(self) -> dict[str, np.ndarray]:
        """The user's hidden state for oracles and diagnostics only (an agent that reads it is
        not a deployable policy): :meth:`UserSimulator.hidden_state`, i.e. arrays with a
        leading axis of length 1 (``fatigue[0]``, ``taste[0]``, ...)."""
        return self._sim.hidden_state()

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        ts = self._sim.timestamp
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
