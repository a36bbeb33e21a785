"""Rewards as pure functions of a step's responses (RecSim style).

Every covercast environment puts the raw responses of a step in ``info`` (the keys of
:data:`RESPONSE_KEYS`) and computes its reward by calling ``reward_fn(responses)``. The default,
:class:`OpenDwellReward`, is ``opens + w_dwell * dwell_minutes - w_optout * opted_out``; any
callable taking the responses mapping and returning a finite number (an array of one number per
user in the population vector environment) can replace it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["RESPONSE_KEYS", "RewardFn", "OpenDwellReward", "make_reward_fn"]

#: Keys of the responses a step reports in ``info`` (and passes to the reward function).
RESPONSE_KEYS: tuple[str, ...] = (
    "pushed", "blocked", "opened", "dwell_s", "likes", "shares", "comments", "surveys",
    "satisfaction", "opted_out", "sessions", "style", "cover")
"""``pushed``: pushes delivered (int); ``blocked``: pushes not delivered because the user had
opted out (int); ``opened``: pushes opened (int); ``dwell_s``: seconds in pushed sessions
(float); ``likes``, ``shares``, ``comments``: engagement after opens (int); ``surveys``:
satisfaction surveys answered (int); ``satisfaction``: mean survey score 1-5 (float), **present
only when** ``surveys > 0`` (in the vector environment: NaN where not surveyed, and the
Gymnasium mask ``info["_satisfaction"]`` says where it was); ``opted_out``: the user opted out
(bool); ``sessions``: organic sessions (int); ``style``: index of the pushed style (-1 when no
push); ``cover``: bank index of the pushed cover (-1 when no push).

Why not NaN in the single-user ``info``: Gymnasium's ``check_env`` compares the infos of two
same-seed steps with ``==``, and ``nan != nan``; a key that is absent when there is no value is
also Gymnasium's own convention for vector infos (the ``_key`` masks)."""

#: A reward function: responses mapping -> reward (a float, or an array in the vector env).
RewardFn = Callable[[Mapping[str, Any]], Any]

DEFAULT_W_DWELL = 0.1
"""Default reward per minute of dwell in pushed sessions (a one-minute open earns 1.1)."""
DEFAULT_W_OPTOUT = 5.0
"""Default penalty of an opt-out: about the opens a user brings in a few months of a light
schedule, so a policy cannot buy a few extra opens with a user's whole future."""


def _weight(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class OpenDwellReward:
    """``opened + w_dwell * dwell_s / 60 - w_optout * opted_out``.

    Works on scalars (single-user environments) and element-wise on arrays (the population
    vector environment). Picklable, unlike a lambda.
    """

    w_dwell: float = DEFAULT_W_DWELL
    """Reward per minute spent in pushed sessions."""
    w_optout: float = DEFAULT_W_OPTOUT
    """Penalty when the user opts out."""

    def __post_init__(self) -> None:
        _weight(self.w_dwell, "w_dwell")
        _weight(self.w_optout, "w_optout")

    def __call__(self, r: Mapping[str, Any]) -> Any:
        return r["opened"] + self.w_dwell * (r["dwell_s"] / 60.0) - self.w_optout * r["opted_out"]


def make_reward_fn(reward_fn: RewardFn | None, w_dwell: float | None,
                   w_optout: float | None) -> RewardFn:
    """The environment's reward function from its constructor arguments.

    ``reward_fn`` (any callable) or the weights of :class:`OpenDwellReward` (defaults
    :data:`DEFAULT_W_DWELL`, :data:`DEFAULT_W_OPTOUT`), not both.
    """
    if reward_fn is not None:
        if not callable(reward_fn):
            raise ValueError(f"`reward_fn` must be a callable taking the responses mapping, got "
                             f"{type(reward_fn).__name__}.")
        if w_dwell is not None or w_optout is not None:
            raise ValueError("Give either `reward_fn` or the default reward's weights "
                             f"(`w_dwell`={w_dwell!r}, `w_optout`={w_optout!r}), not both; put "
                             "the weights inside your reward function.")
        return reward_fn
    return OpenDwellReward(DEFAULT_W_DWELL if w_dwell is None else _weight(w_dwell, "w_dwell"),
                           DEFAULT_W_OPTOUT if w_optout is None
                           else _weight(w_optout, "w_optout"))
