"""The one interface every covercast agent has, and the action layouts it speaks.

Every agent answers stable-baselines3's question

    action, state = agent.predict(obs, state=None, episode_start=None, deterministic=False)

for one observation (shape ``(OBS_DIM,)`` -> an ``int`` action) or a batch (``(N, OBS_DIM)``
-> ``(N,)`` int64 actions, e.g. the population vector environment, one row per user). Besides:

* ``update(obs, action, reward, next_obs, terminated, info)`` after every step (learning
  agents learn from it; fixed agents ignore it);
* ``reset(seed)``: forget everything learned and re-seed the agent's random stream;
* ``action_probabilities(obs, state=None) -> (N, n_actions)``: the probability the agent gives
  each action, for off-policy evaluation;
* ``attach(env)``: called by :func:`covercast.agents.evaluate.evaluate` with the
  environment it runs on (only the oracle, which reads the hidden state, needs it).

Agents decide two things: whether to push now, and with which cover style. An
:class:`ActionLayout` turns those into the actions of the environment at hand:

============  ==============================  ====================================  ===========
mode          environment                     actions                               n_actions
============  ==============================  ====================================  ===========
``schedule``  ``covercast/PushSchedule-v0``   0 = no push, ``k`` = push style k-1   1 + n_styles
``timing``    ``covercast/PushTiming-v0``     0 = wait, 1 = push                    2
``style``     ``covercast/CoverStyle-v0``     ``k`` = push with style ``k``         n_styles
============  ==============================  ====================================  ===========

Time features are read back from the observation (:func:`hour_of_day`, :func:`weekday_of`,
:func:`hours_since_push`), so agents work the same with any slot length.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from covercast._io import check_int, check_number
from covercast.covers.attributes import DEFAULT_STYLES
from covercast.envs.observation import LOG_HOURS_CAP, OBS_DIM, OBS_INDEX, PROFILE_SLICE

__all__ = [
    "MODES",
    "ActionLayout",
    "Agent",
    "SeedLike",
    "as_obs_batch",
    "as_episode_start",
    "make_rng",
    "as_seed_sequence",
    "hour_of_day",
    "weekday_of",
    "hours_since_push",
    "observed_profile",
    "info_array",
    "on_the_hour",
    "check_style",
    "check_positive",
]

#: The action layouts an agent can be configured for.
MODES: tuple[str, ...] = ("schedule", "timing", "style")

#: What agents accept as a seed.
SeedLike = int | np.integer | np.random.SeedSequence | None

_ENV_MODES = {"PushSchedule": "schedule", "PushTiming": "timing", "CoverStyle": "style"}
_ON_THE_HOUR_TOL_H = 1e-3       # 3.6 s: far below the 5-minute resolution of the slot clock


# ================================================================================= helpers
def as_seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    """A ``SeedSequence`` from an int, a ``SeedSequence`` (returned as is) or ``None``."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
                        and seed >= 0):
        return np.random.SeedSequence(None if seed is None else int(seed))
    raise ValueError(f"`seed` must be a non-negative integer, a numpy SeedSequence or None, got "
                     f"{seed!r}.")


def make_rng(seed: SeedLike) -> np.random.Generator:
    """A fresh ``np.random.Generator`` from an int, a ``SeedSequence`` or ``None`` (entropy)."""
    return np.random.default_rng(as_seed_sequence(seed))


def as_obs_batch(obs: Any) -> tuple[np.ndarray, bool]:
    """``(x, single)``: the observations as a float64 ``(N, OBS_DIM)`` array, and whether a
    single ``(OBS_DIM,)`` observation was given."""
    x = np.asarray(obs)
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"`obs` must be a numeric array of shape ({OBS_DIM},) or (N, {OBS_DIM}) "
                         f"(covercast.envs.observation), got dtype {x.dtype}.")
    if x.ndim == 1 and x.shape[0] == OBS_DIM:
        return x.astype(np.float64)[None, :], True
    if x.ndim == 2 and x.shape[1] == OBS_DIM and x.shape[0] >= 1:
        return x.astype(np.float64), False
    raise ValueError(f"`obs` must have shape ({OBS_DIM},) or (N, {OBS_DIM}) with N >= 1 (the "
                     f"layout of covercast.envs.observation), got {x.shape}.")


def as_episode_start(episode_start: Any, n: int) -> np.ndarray:
    """``episode_start`` as a boolean ``(n,)`` array (``None`` -> all False)."""
    if episode_start is None:
        return np.zeros(n, dtype=bool)
    e = np.asarray(episode_start)
    if e.ndim == 0:
        e = np.full(n, bool(e))
    if e.shape != (n,):
        raise ValueError(f"`episode_start` must be a bool or an array of shape ({n},) (one flag "
                         f"per observation), got shape {e.shape}.")
    return e.astype(bool)


def hour_of_day(x: np.ndarray) -> np.ndarray:
    """UTC time of day in hours, ``[0, 24)``, from ``hour_sin`` / ``hour_cos`` (``(N,)``)."""
    h = np.arctan2(x[:, OBS_INDEX["hour_sin"]], x[:, OBS_INDEX["hour_cos"]]) * (24.0 / (2 * np.pi))
    h = np.mod(h, 24.0)
    # float32 round-off can put 23:59:59.99 where midnight is meant
    return np.where(h > 24.0 - _ON_THE_HOUR_TOL_H, 0.0, h)


def weekday_of(x: np.ndarray) -> np.ndarray:
    """Weekday, 0 = Monday, from ``weekday_sin`` / ``weekday_cos`` (int64 ``(N,)``)."""
    w = np.arctan2(x[:, OBS_INDEX["weekday_sin"]], x[:, OBS_INDEX["weekday_cos"]]) * (7 / (2 * np.pi))
    return np.mod(np.rint(w), 7).astype(np.int64)


def hours_since_push(x: np.ndarray) -> np.ndarray:
    """Hours since the last delivered push (``inf`` at the cap: never, or over 30 days ago)."""
    lg = x[:, OBS_INDEX["log_h_since_push"]]
    return np.where(lg >= LOG_HOURS_CAP - 1e-4, np.inf, np.expm1(lg))


def observed_profile(x: np.ndarray) -> np.ndarray:
    """The observed share of organic sessions in each hour of day, ``(N, 24)``."""
    return x[:, PROFILE_SLICE]


def on_the_hour(hour: np.ndarray) -> np.ndarray:
    """Whether each time of day is a whole hour (the slot starts at ``hh:00``)."""
    return np.abs(hour - np.rint(hour)) < _ON_THE_HOUR_TOL_H


def info_array(info: Mapping[str, Any] | None, key: str, n: int, default: float = 0.0
               ) -> np.ndarray:
    """``info[key]`` as a float ``(n,)`` array (a scalar info of a single-user env, or one
    value per user of the vector env); ``default`` where the key is absent."""
    if info is None or key not in info:
        return np.full(n, default, dtype=np.float64)
    a = np.atleast_1d(np.asarray(info[key], dtype=np.float64))
    if a.shape == (1,) and n > 1:
        a = np.full(n, a[0])
    if a.shape != (n,):
        raise ValueError(f"`info[{key!r}]` must be a scalar or have shape ({n},) (one value per "
                         f"observation), got shape {a.shape}.")
    return a


# ================================================================================= layouts
@dataclass(frozen=True)
class ActionLayout:
    """How (push, style) decisions map onto an environment's discrete actions.

    Parameters
    ----------
    mode : {"schedule", "timing", "style"}
        ``schedule``: ``0`` = no push, ``k`` = push with style ``k - 1`` (PushSchedule-v0);
        ``timing``: ``0`` = wait, ``1`` = push, the environment picks the cover
        (PushTiming-v0); ``style``: ``k`` = style ``k``, the environment picks the time
        (CoverStyle-v0).
    n_styles : int
        Number of cover styles (5 for the default population).
    """

    mode: str = "schedule"
    n_styles: int = len(DEFAULT_STYLES)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"`mode` must be one of {list(MODES)}, got {self.mode!r}.")
        object.__setattr__(self, "n_styles", check_int(self.n_styles, "n_styles"))

    @property
    def n_actions(self) -> int:
        """Size of the ``Discrete`` action space."""
        return {"schedule": 1 + self.n_styles, "timing": 2, "style": self.n_styles}[self.mode]

    @property
    def decides_timing(self) -> bool:
        """Whether the agent chooses when to push (schedule, timing)."""
        return self.mode != "style"

    @property
    def decides_style(self) -> bool:
        """Whether the agent chooses the style (schedule, style)."""
        return self.mode != "timing"

    def encode(self, push: np.ndarray, style: np.ndarray) -> np.ndarray:
        """Actions (int64 ``(N,)``) from push flags and style indices."""
        push = np.asarray(push, dtype=bool)
        style = np.asarray(style, dtype=np.int64)
        if push.any() and self.decides_style:
            s = style[push] if self.mode == "schedule" else style
            if s.size and (s.min() < 0 or s.max() >= self.n_styles):
                raise ValueError(f"Style indices must lie in [0, {self.n_styles - 1}], got "
                                 f"[{s.min()}, {s.max()}].")
        if self.mode == "schedule":
            return np.where(push, style + 1, 0).astype(np.int64)
        if self.mode == "timing":
            return push.astype(np.int64)
        return style.astype(np.int64).copy()

    def decode(self, action: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(push, style)`` from actions; ``style`` is -1 where it is not the agent's (no push,
        or the timing layout where the environment picks the cover)."""
        a = np.atleast_1d(np.asarray(action))
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"Actions must be integers, got dtype {a.dtype}.")
        a = a.astype(np.int64)
        if a.size and (a.min() < 0 or a.max() >= self.n_actions):
            raise ValueError(f"Actions must lie in [0, {self.n_actions - 1}] for the "
                             f"{self.mode!r} layout, got [{a.min()}, {a.max()}].")
        if self.mode == "schedule":
            return a > 0, a - 1
        if self.mode == "timing":
            return a == 1, np.full(a.shape, -1, dtype=np.int64)
        return np.ones(a.shape, dtype=bool), a

    def probabilities(self, p_push: np.ndarray, style_probs: np.ndarray) -> np.ndarray:
        """Action probabilities ``(N, n_actions)`` from ``P(push)`` ``(N,)`` and the style
        distribution given a push ``(N, n_styles)``."""
        p_push = np.asarray(p_push, dtype=np.float64)
        style_probs = np.asarray(style_probs, dtype=np.float64)
        if self.mode == "schedule":
            return np.concatenate([(1.0 - p_push)[:, None], p_push[:, None] * style_probs],
                                  axis=1)
        if self.mode == "timing":
            return np.stack([1.0 - p_push, p_push], axis=1)
        return style_probs.copy()

    def split(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The inverse of :meth:`probabilities`: ``(P(push) (N,), style distribution given a
        push (N, n_styles))`` from action probabilities ``(N, n_actions)``. Where the layout
        does not choose the style (timing), the style distribution is uniform."""
        p = np.asarray(probs, dtype=np.float64)
        if self.mode == "schedule":
            p_push = 1.0 - p[:, 0]
            return p_push, p[:, 1:] / np.maximum(p_push[:, None], 1e-12)
        if self.mode == "timing":
            return p[:, 1], np.full((p.shape[0], self.n_styles), 1.0 / self.n_styles)
        return np.ones(p.shape[0]), p

    @classmethod
    def from_env(cls, env: Any, mode: str | None = None) -> ActionLayout:
        """The layout of a covercast environment (or its vector env).

        ``mode`` wins when given; otherwise it is read from the registered id
        (``env.spec.id``) or the env's ``env_id``. ``n_styles`` comes from the env's
        ``n_styles`` (or its population's styles).
        """
        base = getattr(env, "unwrapped", env)
        if mode is None:
            ids = [getattr(getattr(env, "spec", None), "id", None), getattr(base, "env_id", None)]
            for env_id in ids:
                if isinstance(env_id, str):
                    for key, m in _ENV_MODES.items():
                        if key in env_id:
                            mode = m
                            break
                if mode is not None:
                    break
        if mode is None:
            raise ValueError(f"Cannot tell the action layout of {type(base).__name__}: pass "
                             f"`mode` (one of {list(MODES)}).")
        n_styles = getattr(base, "n_styles", None)
        if n_styles is None:
            pop = getattr(base, "population", None)
            if pop is None:
                raise ValueError(f"{type(base).__name__} has neither `n_styles` nor "
                                 "`population`; build the agent with `n_styles=`.")
            n_styles = len(pop.params.styles)
        layout = cls(mode, int(n_styles))
        space = getattr(env, "single_action_space", None) or getattr(env, "action_space", None)
        n = getattr(space, "n", None)
        if n is not None and int(n) != layout.n_actions:
            raise ValueError(f"The env's action space has {int(n)} actions but the {mode!r} "
                             f"layout with {n_styles} styles has {layout.n_actions}; pass the "
                             "right `mode`.")
        return layout


# ================================================================================= agents
class Agent(ABC):
    """Base class: a push/style policy with stable-baselines3's ``predict``.

    Subclasses implement :meth:`_decide` (one action per observation row) and
    :meth:`_distribution` (the probabilities behind it); learning agents override
    :meth:`update` and :meth:`_reset_learning`.

    Parameters
    ----------
    mode : {"schedule", "timing", "style"}
        The action layout (see :class:`ActionLayout`).
    n_styles : int
        Number of cover styles.
    seed : int, SeedSequence or None
        Seed of the agent's random stream (``None``: fresh entropy); :meth:`reset` re-seeds.
    name : str, optional
        Label in result tables (default: the class's ``default_name``).
    """

    #: Label of the agent in result tables.
    default_name = "agent"
    #: Whether :meth:`update` changes the agent (learning agents).
    learns = False

    def __init__(self, mode: str = "schedule", n_styles: int = len(DEFAULT_STYLES), *,
                 seed: SeedLike = None, name: str | None = None) -> None:
        self.layout = ActionLayout(mode, n_styles)
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"`name` must be a non-empty string or None, got {name!r}.")
        self.name = name if name is not None else self.default_name
        self._rng = make_rng(seed)

    # ------------------------------------------------------------------ construction
    @classmethod
    def for_env(cls, env: Any, *, mode: str | None = None, **kwargs: Any) -> Agent:
        """Build the agent for ``env``'s action layout (``mode`` and ``n_styles`` from it)."""
        layout = ActionLayout.from_env(env, mode)
        agent = cls(mode=layout.mode, n_styles=layout.n_styles, **kwargs)
        agent.attach(env)
        return agent

    @property
    def mode(self) -> str:
        return self.layout.mode

    @property
    def n_styles(self) -> int:
        return self.layout.n_styles

    @property
    def n_actions(self) -> int:
        return self.layout.n_actions

    def config(self) -> dict[str, Any]:
        """The agent's settings (JSON-serialisable), for ``config.json`` beside results."""
        return {"class": type(self).__name__, "name": self.name, "mode": self.mode,
                "n_styles": self.n_styles}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "class")
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ the interface
    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[int | np.ndarray, Any]:
        """Choose actions (stable-baselines3's signature).

        Parameters
        ----------
        obs : array_like
            One observation ``(OBS_DIM,)`` or a batch ``(N, OBS_DIM)``.
        state : optional
            The state this method returned at the previous step (``None`` at the start);
            agents without memory return it unchanged.
        episode_start : bool or array_like, optional
            ``(N,)`` flags: True where a new episode starts (memory of those rows is reset).
        deterministic : bool
            Take the most likely action instead of sampling (random and Thompson-sampling
            agents); fixed agents are deterministic anyway.

        Returns
        -------
        (action, state)
            An ``int`` for a single observation, an int64 ``(N,)`` array for a batch; and the
            new state.
        """
        x, single = as_obs_batch(obs)
        start = as_episode_start(episode_start, x.shape[0])
        push, style, state = self._decide(x, state, start, bool(deterministic))
        if not self.layout.decides_timing:
            push = np.ones(x.shape[0], dtype=bool)
        action = self.layout.encode(push, style)
        return (int(action[0]) if single else action), state

    def action_probabilities(self, obs: Any, state: Any = None) -> np.ndarray:
        """``(N, n_actions)`` probabilities of each action under :meth:`predict` with
        ``deterministic=False`` (a single observation gives ``N = 1``); rows sum to 1.

        ``state`` is the state :meth:`predict` would be called with (for agents with memory).
        """
        x, _ = as_obs_batch(obs)
        p_push, style_probs = self._distribution(x, state)
        if not self.layout.decides_timing:
            p_push = np.ones(x.shape[0])
        return self.layout.probabilities(p_push, style_probs)

    def update(self, obs: Any, action: Any, reward: Any, next_obs: Any, terminated: Any,
               info: Mapping[str, Any] | None) -> None:
        """Learn from one step (``obs`` -> ``action`` -> ``reward``, ``next_obs``).

        Fixed agents ignore it. Arguments are those of the step, batched like ``obs``;
        ``info`` is the step's info (the raw responses).
        """
        return None

    def reset(self, seed: SeedLike = None) -> None:
        """Forget everything learned and re-seed the random stream."""
        self._rng = make_rng(seed)
        self._reset_learning()

    def attach(self, env: Any) -> None:
        """Called with the environment the agent is about to run on (default: nothing)."""
        return None

    # ------------------------------------------------------------------ for subclasses
    @abstractmethod
    def _decide(self, x: np.ndarray, state: Any, episode_start: np.ndarray,
                deterministic: bool) -> tuple[np.ndarray, np.ndarray, Any]:
        """``(push (N,) bool, style (N,) int, new_state)`` for the observation rows ``x``."""

    @abstractmethod
    def _distribution(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(P(push) (N,), P(style | push) (N, n_styles))`` for the observation rows ``x``."""

    def _reset_learning(self) -> None:
        """Forget what was learned (learning agents)."""
        return None


def check_style(style: Any, n_styles: int, name: str = "style") -> int:
    """A style index in ``[0, n_styles)``."""
    if isinstance(style, bool) or not isinstance(style, (int, np.integer)) \
            or not 0 <= style < n_styles:
        raise ValueError(f"`{name}` must be a style index in [0, {n_styles - 1}], got {style!r}.")
    return int(style)


def check_positive(value: Any, name: str, *, allow_zero: bool = False,
                   allow_inf: bool = False) -> float:
    """A positive (or non-negative) real number (infinity only with ``allow_inf``)."""
    return check_number(value, name, lo=0, lo_open=not allow_zero, allow_inf=allow_inf)


class PolicyAgent(Agent):
    """An agent defined by its own :meth:`predict` and :meth:`action_probabilities` (a trained
    policy network): the decision and its distribution are derived from those two."""

    def _decide(self, x: np.ndarray, state: Any, episode_start: np.ndarray,
                deterministic: bool) -> tuple[np.ndarray, np.ndarray, Any]:
        a, new_state = self.predict(x, state, episode_start, deterministic)
        push, style = self.layout.decode(a)
        return push, style, new_state

    def _distribution(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.layout.split(self.action_probabilities(x, state))
