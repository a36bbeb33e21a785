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

**Your own policy.** Two ways, both accepted wherever an agent is (:func:`~covercast.agents.
evaluate.evaluate`, :func:`~covercast.agents.evaluate.evaluate_agents`,
:func:`~covercast.agents.evaluate.evaluate_vector`, :func:`covercast.ope.collect`, the
benchmarks that evaluate agents):

1. *Any object* with stable-baselines3's ``predict(obs, state=None, episode_start=None,
   deterministic=False) -> (actions, state)`` -- a trained SB3 model, or a class of your own. It
   is wrapped by :func:`as_agent` (a :class:`PredictAdapter`), which forwards the optional
   ``update``, ``reset``, ``attach`` and ``action_probabilities`` when the object has them.
   Off-policy evaluation needs action probabilities: give the object an
   ``action_probabilities(obs, state=None) -> (N, n_actions)`` method, or, for a deterministic
   policy, wrap it as ``as_agent(obj, deterministic=True)`` (its probabilities are then one-hot).
2. *A subclass of* :class:`Agent` that overrides the public hooks :meth:`Agent.decide` (whether
   to push and with which style, for a batch of observations) and, for off-policy evaluation,
   :meth:`Agent.distribution` (the probabilities behind it). The base class then speaks every
   action layout (:class:`ActionLayout`), checks what the hooks return, and gives ``predict``,
   ``action_probabilities``, ``reset`` (re-seeds ``self.rng``), ``config`` and ``for_env``.

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
    "PredictAdapter",
    "as_agent",
    "policy_label",
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
class Agent:
    """Base class: a push/style policy with stable-baselines3's ``predict``.

    **Writing one.** Override :meth:`decide` -- for a batch of observation rows ``x`` (float64
    ``(N, OBS_DIM)``, the layout of :mod:`covercast.envs.observation`; :func:`hour_of_day`,
    :func:`weekday_of`, :func:`hours_since_push` and :func:`observed_profile` read it), return
    whether to push and with which style -- and, if the policy is to be used in off-policy
    evaluation, :meth:`distribution` (the probabilities behind :meth:`decide`). Draw random
    numbers from :attr:`rng` (re-seeded by :meth:`reset`, so evaluations are reproducible). A
    learning agent sets ``learns = True`` and overrides :meth:`update` and
    :meth:`reset_learning`; an agent with settings extends :meth:`config`. Example::

        class Evening(Agent):
            def decide(self, x, state, episode_start, deterministic):
                push = np.rint(hour_of_day(x)) == 19
                return push, np.full(len(x), 2), state       # style 2 at 19:00

        evaluate(Evening(), "covercast/PushSchedule-v0", episodes=100, seed=0)

    The hooks speak in pushes and styles, whatever the environment: :class:`ActionLayout`
    turns them into the actions of ``mode``. ``_decide`` and ``_distribution`` are the hooks'
    old names and still work (for subclasses that override them, and for callers).

    **What the base class gives.** :meth:`predict` (stable-baselines3's signature, one
    observation or a batch), :meth:`action_probabilities`, :meth:`update` (a no-op),
    :meth:`reset` (re-seeds :attr:`rng`, calls :meth:`reset_learning`), :meth:`attach` (a
    no-op; called with the environment before a run), :meth:`config` (the settings written
    beside results), :meth:`for_env` (an agent for an environment's action layout), and
    ``mode`` / ``n_styles`` / ``n_actions`` / ``name``. An object that is not an Agent but has
    ``predict`` is used through :func:`as_agent`.

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
        cls = type(self)
        if cls.predict is Agent.predict and cls.decide is Agent.decide \
                and cls._decide is Agent._decide:
            raise TypeError(f"{cls.__name__} must override decide(x, state, episode_start, "
                            "deterministic) -> (push, style, state), or predict (see "
                            "covercast.agents.base.Agent).")

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

    @property
    def rng(self) -> np.random.Generator:
        """The agent's random stream (``np.random.Generator``): draw from it in :meth:`decide`;
        :meth:`reset` re-seeds it."""
        return self._rng

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
        n = x.shape[0]
        start = as_episode_start(episode_start, n)
        push, style, state = self.decide(x, state, start, bool(deterministic))
        push = self._hook_rows(push, "push", n)
        style = self._hook_rows(style, "style", n)
        if not self.layout.decides_timing:
            push = np.ones(n, dtype=bool)
        action = self.layout.encode(push, style)
        return (int(action[0]) if single else action), state

    def action_probabilities(self, obs: Any, state: Any = None) -> np.ndarray:
        """``(N, n_actions)`` probabilities of each action under :meth:`predict` with
        ``deterministic=False`` (a single observation gives ``N = 1``); rows sum to 1.

        ``state`` is the state :meth:`predict` would be called with (for agents with memory).
        """
        x, _ = as_obs_batch(obs)
        n = x.shape[0]
        p_push, style_probs = self.distribution(x, state)
        p_push = np.broadcast_to(np.asarray(p_push, dtype=np.float64), (n,)) \
            if np.ndim(p_push) == 0 else np.asarray(p_push, dtype=np.float64)
        style_probs = np.asarray(style_probs, dtype=np.float64)
        if p_push.shape != (n,) or style_probs.shape != (n, self.n_styles):
            raise ValueError(f"{type(self).__name__}.distribution must return (P(push) ({n},), "
                             f"P(style | push) ({n}, {self.n_styles})), got shapes "
                             f"{p_push.shape} and {style_probs.shape}.")
        if not self.layout.decides_timing:
            p_push = np.ones(n)
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
        self.reset_learning()

    def attach(self, env: Any) -> None:
        """Called with the environment the agent is about to run on (default: nothing)."""
        return None

    # ------------------------------------------------------------------ for subclasses
    def decide(self, x: np.ndarray, state: Any, episode_start: np.ndarray,
               deterministic: bool) -> tuple[np.ndarray, np.ndarray, Any]:
        """The policy: what to do for each observation row. Override it.

        Parameters
        ----------
        x : numpy.ndarray
            float64 ``(N, OBS_DIM)`` observations, one row per user (``N = 1`` for a
            single-user environment).
        state : any
            What this method returned as ``new_state`` at the previous step (``None`` at the
            start); a policy without memory returns it unchanged.
        episode_start : numpy.ndarray
            bool ``(N,)``: True where a row starts a new episode (forget its memory).
        deterministic : bool
            Take the most likely decision instead of sampling.

        Returns
        -------
        (push, style, new_state)
            ``push`` bool ``(N,)`` (ignored in the ``style`` layout, where every step pushes),
            ``style`` int ``(N,)`` style indices in ``[0, n_styles)`` (read where ``push`` is
            True; ignored in the ``timing`` layout, where the environment picks the cover), and
            the state to pass back at the next step.
        """
        if type(self)._decide is Agent._decide:
            raise NotImplementedError(f"{type(self).__name__} must override decide(x, state, "
                                      "episode_start, deterministic).")
        return self._decide(x, state, episode_start, deterministic)

    def distribution(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, np.ndarray]:
        """The probabilities behind :meth:`decide` (with ``deterministic=False``). Override it
        for off-policy evaluation; evaluation does not need it.

        Returns ``(P(push) (N,), P(style | push) (N, n_styles))`` for the observation rows
        ``x`` and the ``state`` :meth:`decide` would be called with; each style row sums to 1.
        A deterministic policy returns 0/1 push probabilities and one-hot styles.
        """
        if type(self)._distribution is Agent._distribution:
            raise NotImplementedError(
                f"{type(self).__name__} gives no action probabilities: override "
                "distribution(x, state) -> (P(push) (N,), P(style | push) (N, n_styles)). "
                "Off-policy evaluation needs them (covercast.ope.collect logs them as pscore; "
                "evaluation_probabilities, EpsilonGreedyAgent and SoftmaxAgent read them); "
                "evaluate does not.")
        return self._distribution(x, state)

    def reset_learning(self) -> None:
        """Forget what was learned (learning agents override it; called by :meth:`reset`)."""
        return self._reset_learning()

    # the hooks' old names (subclasses that override them keep working)
    def _decide(self, x: np.ndarray, state: Any, episode_start: np.ndarray,
                deterministic: bool) -> tuple[np.ndarray, np.ndarray, Any]:
        return self.decide(x, state, episode_start, deterministic)

    def _distribution(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.distribution(x, state)

    def _reset_learning(self) -> None:
        return None

    def _hook_rows(self, value: Any, what: str, n: int) -> np.ndarray:
        """``decide``'s ``push`` or ``style`` as an ``(n,)`` array (a scalar is broadcast)."""
        a = np.asarray(value)
        if a.ndim == 0:
            a = np.full(n, a)
        if a.shape != (n,):
            raise ValueError(f"{type(self).__name__}.decide returned `{what}` of shape {a.shape}; "
                             f"expected ({n},), one entry per observation row.")
        if what == "push":
            return a.astype(bool)
        if not np.issubdtype(a.dtype, np.integer):
            if not (np.issubdtype(a.dtype, np.floating) and np.all(a == np.rint(a))):
                raise ValueError(f"{type(self).__name__}.decide returned styles of dtype "
                                 f"{a.dtype}; expected integer style indices.")
            a = a.astype(np.int64)
        return a


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


# ================================================================================= any policy
def policy_label(policy: Any) -> str:
    """The label of a policy in result tables: its ``name`` when it is a non-empty string, else
    its class name."""
    name = getattr(policy, "name", None)
    return name if isinstance(name, str) and name else type(policy).__name__


class PredictAdapter(PolicyAgent):
    """Any object with stable-baselines3's ``predict`` as a covercast :class:`Agent`.

    Build it with :func:`as_agent`. ``predict`` is the object's (its actions are checked:
    one ``int`` per observation, in ``[0, n_actions)``); ``update(obs, action, reward,
    next_obs, terminated, info)``, ``reset(seed)`` (``seed`` a numpy ``SeedSequence``),
    ``attach(env)`` and ``learns`` are forwarded when the object has them.
    ``action_probabilities(obs, state=None)`` is the object's when it has one (checked:
    ``(N, n_actions)``, non-negative rows summing to 1), one-hot on its deterministic action
    when the adapter was built with ``deterministic=True``, and otherwise raises
    ``NotImplementedError`` (off-policy evaluation cannot use the policy).
    """

    default_name = "policy"

    def __init__(self, policy: Any, mode: str = "schedule", n_styles: int = len(DEFAULT_STYLES),
                 *, deterministic: bool = False, seed: SeedLike = None,
                 name: str | None = None) -> None:
        if not callable(getattr(policy, "predict", None)):
            raise ValueError(_NOT_A_POLICY.format(type(policy).__name__))
        if not isinstance(deterministic, bool):
            raise ValueError(f"`deterministic` must be a bool, got {deterministic!r}.")
        super().__init__(mode, n_styles, seed=seed,
                         name=policy_label(policy) if name is None else name)
        self.policy = policy
        self.deterministic = deterministic
        self.learns = bool(getattr(policy, "learns", False))

    def config(self) -> dict[str, Any]:
        return super().config() | {"policy": type(self.policy).__qualname__,
                                   "deterministic": self.deterministic}

    def _optional(self, method: str) -> Any:
        f = getattr(self.policy, method, None)
        return f if callable(f) else None

    @property
    def has_probabilities(self) -> bool:
        """Whether :meth:`action_probabilities` is available (the object's own, or one-hot
        for a deterministic policy)."""
        return self.deterministic or self._optional("action_probabilities") is not None

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[int | np.ndarray, Any]:
        x = np.asarray(obs)
        single = x.ndim != 2            # one observation (a batch is (N, OBS_DIM))
        n = 1 if single else x.shape[0]
        out = self.policy.predict(obs, state=state, episode_start=episode_start,
                                  deterministic=bool(deterministic) or self.deterministic)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ValueError(f"{self.name}.predict must return (actions, state) like "
                             f"stable-baselines3, got {type(out).__name__}.")
        action, new_state = out
        a = np.asarray(action)
        if not (np.issubdtype(a.dtype, np.integer)
                or (np.issubdtype(a.dtype, np.floating) and np.all(a == np.rint(a)))):
            raise ValueError(f"{self.name}.predict returned actions of dtype {a.dtype}; "
                             f"expected integer actions in [0, {self.n_actions - 1}].")
        a = a.astype(np.int64).reshape(-1)
        if a.shape != (n,):
            raise ValueError(f"{self.name}.predict returned {a.size} actions for "
                             f"{'one observation' if single else f'{n} observations'}; "
                             "expected one per observation.")
        if a.min() < 0 or a.max() >= self.n_actions:
            raise ValueError(f"{self.name}.predict returned actions in [{a.min()}, {a.max()}]; "
                             f"the {self.mode!r} layout has actions 0-{self.n_actions - 1}.")
        return (int(a[0]) if single else a), new_state

    def action_probabilities(self, obs: Any, state: Any = None) -> np.ndarray:
        x, _ = as_obs_batch(obs)
        n = x.shape[0]
        own = self._optional("action_probabilities")
        if own is not None:
            p = np.asarray(own(obs, state), dtype=np.float64)
            p = p[None, :] if p.ndim == 1 else p
            if p.shape != (n, self.n_actions):
                raise ValueError(f"{self.name}.action_probabilities returned shape {p.shape}; "
                                 f"expected ({n}, {self.n_actions}).")
            if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
                raise ValueError(f"{self.name}.action_probabilities must return non-negative "
                                 "rows that sum to 1.")
            return p
        if not self.deterministic:
            raise NotImplementedError(
                f"{self.name} ({type(self.policy).__name__}) has predict but no "
                "action_probabilities, which off-policy evaluation needs. Give it an "
                "action_probabilities(obs, state=None) -> (N, n_actions) method, or, if its "
                "deterministic predict is the policy, wrap it with as_agent(policy, "
                "deterministic=True) (one-hot probabilities).")
        start = np.full(n, state is None)
        a, _ = self.predict(x, state, start, deterministic=True)
        return np.eye(self.n_actions)[np.atleast_1d(a)]

    def update(self, obs: Any, action: Any, reward: Any, next_obs: Any, terminated: Any,
               info: Mapping[str, Any] | None) -> None:
        f = self._optional("update")
        if f is not None:
            f(obs, action, reward, next_obs, terminated, info)

    def reset(self, seed: SeedLike = None) -> None:
        root = as_seed_sequence(seed)
        mine, theirs = root.spawn(2)
        super().reset(mine)
        f = self._optional("reset")
        if f is not None:
            f(theirs)

    def attach(self, env: Any) -> None:
        f = self._optional("attach")
        if f is not None:
            f(env)


_NOT_A_POLICY = ("Expected a covercast Agent or an object with stable-baselines3's "
                 "predict(obs, state=None, episode_start=None, deterministic=False) -> "
                 "(actions, state); got {}.")


def as_agent(policy: Any, env: Any = None, *, mode: str | None = None,
             n_styles: int | None = None, deterministic: bool = False,
             name: str | None = None) -> Agent:
    """``policy`` as a covercast :class:`Agent`: an Agent as it is, any other object with
    stable-baselines3's ``predict`` wrapped in a :class:`PredictAdapter`.

    Every function that runs agents calls it, so a plain object can be passed directly to
    :func:`covercast.agents.evaluate.evaluate` and friends; call it yourself to name the
    policy, to declare it deterministic, or to use it with the wrappers that need an Agent
    (``EpsilonGreedyAgent``, ``SwitchAgent``, ...).

    Parameters
    ----------
    policy : Agent or object with ``predict``
        ``predict(obs, state=None, episode_start=None, deterministic=False) -> (actions,
        state)``: ``obs`` is one observation ``(OBS_DIM,)`` (then one action) or a batch
        ``(N, OBS_DIM)`` (then ``(N,)`` actions), as in stable-baselines3. Optional methods
        are forwarded (:class:`PredictAdapter`).
    env : gymnasium.Env, optional
        The environment the policy acts in: its action layout (``mode``, ``n_styles``) is
        read from it (:meth:`ActionLayout.from_env`). Without it, ``mode`` (default
        ``"schedule"``) and ``n_styles`` (default 5).
    mode, n_styles :
        The action layout, when there is no ``env`` (``mode`` also overrides the env's).
    deterministic : bool
        Declare the policy deterministic: ``predict`` is always called with
        ``deterministic=True``, and the action probabilities are one-hot on its action (so it
        can be an evaluation policy in off-policy evaluation, or the base of an
        ``EpsilonGreedyAgent`` that logs with exact propensities).
    name : str, optional
        Its label in result tables (default: the object's ``name``, else its class name).

    Raises
    ------
    ValueError
        For an object without ``predict``, or layout arguments given with an Agent (an Agent
        has its own; build it with ``Agent.for_env`` or its ``mode``).
    """
    if isinstance(policy, Agent):
        given = [k for k, v in (("mode", mode), ("n_styles", n_styles), ("name", name))
                 if v is not None] + (["deterministic"] if deterministic else [])
        if given:
            raise ValueError(f"{policy.name} is already a covercast Agent; {given} apply to "
                             "objects with only predict (set the Agent's own settings "
                             "instead).")
        return policy
    if not callable(getattr(policy, "predict", None)):
        raise ValueError(_NOT_A_POLICY.format(type(policy).__name__))
    if env is not None:
        layout = ActionLayout.from_env(env, mode)
        if n_styles is not None and int(n_styles) != layout.n_styles:
            raise ValueError(f"`n_styles` = {n_styles} but the environment has "
                             f"{layout.n_styles} styles.")
        mode, n_styles = layout.mode, layout.n_styles
    return PredictAdapter(policy, mode or "schedule",
                          len(DEFAULT_STYLES) if n_styles is None else n_styles,
                          deterministic=deterministic, name=name)
