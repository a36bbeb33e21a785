"""Scheduling and cover-style policies sharing stable-baselines3's ``predict`` signature.

Every agent here answers ``predict(obs, state=None, episode_start=None, deterministic=False) ->
(action, state)`` for one observation or a batch (:mod:`covercast.agents.base`), and is built
for an action layout (``mode="schedule" | "timing" | "style"``) or from an environment with
``Agent.for_env(env)``.

========================  ================================================================
agent                     what it does
========================  ================================================================
:class:`RandomAgent`      push with a fixed probability, random style (the floor)
:class:`StaticScheduler`  fixed hours, fixed style: the source paper's control group
:class:`TunedStaticScheduler`  fixed hours and style tuned on training users: the strong control
:class:`ActivityHeuristic`  the user's most active observed hours, capped per day, min gap
:class:`ThompsonStyleAgent`  Beta-Bernoulli Thompson sampling of the style on opens
:class:`LinUCBStyleAgent`   LinUCB of the style on a small observed context
:class:`LookaheadOracle`   reads the hidden state; a one-step-lookahead heuristic, not
                          deployable (``HiddenStateOracle``: its old name, the same class)
:class:`PlanningOracle`    reads the hidden state; plans each user's episode by dynamic
                          programming: the benchmark's upper reference, not deployable
========================  ================================================================

**Your own policy** (:mod:`covercast.agents.base`): any object with the same ``predict`` is
accepted wherever an agent is (:func:`as_agent` wraps it), or subclass :class:`Agent` and
override its public hooks ``decide`` (and ``distribution`` for off-policy evaluation); the
observation readers :func:`hour_of_day`, :func:`weekday_of`, :func:`hours_since_push` and
:func:`observed_profile` are here for it.

None of them imports torch. The learners (GRU-PPO, the stable-baselines3 adapters) need torch
and are imported on first use: ``from covercast.agents import GRUPPOTrainer``.
"""


from covercast._lazy import lazy_exports
from covercast.agents.bandits import (
    LINUCB_CONTEXT_NAMES,
    LinUCBStyleAgent,
    StyleBandit,
    ThompsonStyleAgent,
    linucb_context,
)
from covercast.agents.base import (
    MODES,
    ActionLayout,
    Agent,
    PredictAdapter,
    as_agent,
    hour_of_day,
    hours_since_push,
    observed_profile,
    weekday_of,
)
from covercast.agents.baselines import (
    DEFAULT_PUSH_HOURS,
    ActivityHeuristic,
    HeuristicState,
    RandomAgent,
    StaticScheduler,
)
from covercast.agents.oracle import HiddenStateOracle, LookaheadOracle
from covercast.agents.planning import PlanningOracle
from covercast.agents.tuned import TunedStaticScheduler, TuneResult, tune_static_schedule

__all__ = [
    "MODES",
    "ActionLayout",
    "Agent",
    "PredictAdapter",
    "as_agent",
    "hour_of_day",
    "weekday_of",
    "hours_since_push",
    "observed_profile",
    "RandomAgent",
    "StaticScheduler",
    "TunedStaticScheduler",
    "TuneResult",
    "tune_static_schedule",
    "ActivityHeuristic",
    "HeuristicState",
    "DEFAULT_PUSH_HOURS",
    "StyleBandit",
    "ThompsonStyleAgent",
    "LinUCBStyleAgent",
    "LINUCB_CONTEXT_NAMES",
    "linucb_context",
    "LookaheadOracle",
    "HiddenStateOracle",
    "PlanningOracle",
]

_LAZY = {
    "GRUPPOConfig": "covercast.agents.gru_ppo",
    "GRUPPOTrainer": "covercast.agents.gru_ppo",
    "GRUPPOAgent": "covercast.agents.gru_ppo",
    "SB3Agent": "covercast.agents.sb3",
    "train_sb3": "covercast.agents.sb3",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
