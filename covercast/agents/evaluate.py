"""Run an agent for many episodes and tabulate what happened, one row per episode.

:func:`evaluate` drives a single-user environment (any covercast id, or any Gymnasium env whose
``info`` carries the covercast responses); :func:`evaluate_vector` drives the population vector
environment, one row per user; :func:`evaluate_agents` evaluates several agents on the same
episodes. An agent is a covercast :class:`~covercast.agents.base.Agent` or any object with
stable-baselines3's ``predict`` (wrapped by :func:`~covercast.agents.base.as_agent`). Summaries
with confidence intervals and A/B tests are in :mod:`covercast.experiments.stats`.

**Learning agents are evaluated as deployed.** An agent that learns from what it sees
(``agent.learns``: the style bandits :class:`~covercast.agents.ThompsonStyleAgent` and
:class:`~covercast.agents.LinUCBStyleAgent`) is by default reset once and keeps learning across
episodes, i.e. across users, as a deployed bandit does (``learning="continual"``); every other
agent is reset before every episode (``learning="episode"``). This is the default
``learning="auto"``; either mode can be asked for by name (:data:`LEARNING_MODES`), e.g.
``learning="episode"`` to see a bandit that starts from its prior with every user. The mode
used is recorded in the DataFrame's ``attrs`` (see **Learning mode** below).

**Seeds.** ``np.random.SeedSequence(seed)`` is split into an environment branch and an agent
branch: episode ``i`` resets the environment with the ``i``-th 32-bit word of the environment
branch and (with ``learning="episode"``) the agent with the ``i``-th child of the agent branch
(with ``learning="continual"``: the agent once, with the agent branch itself). So the same
``seed`` gives the same DataFrame, and two agents evaluated with the same ``seed`` meet the same
users with the same organic sessions (common random numbers): their episodes are paired, row by
row (see :func:`covercast.experiments.stats.paired_test`). With ``learning="continual"`` the
episodes of one agent are not independent (what it learned from one user acts on the next), so
confidence intervals over them that assume independent episodes are approximate.

**Columns** (:data:`EPISODE_COLUMNS`): ``agent``, ``episode``, ``seed`` (the environment seed of
the episode), ``return`` (sum of rewards), ``length`` (steps), ``days`` (simulated days
elapsed), ``pushes`` (delivered), ``opens``, ``ctr`` (opens / pushes, NaN without pushes),
``pushes_per_day``, ``dwell_min`` (minutes in pushed sessions), ``likes``, ``shares``,
``comments``, ``surveys``, ``satisfaction`` (mean 1-5 survey score, NaN when never surveyed),
``sessions`` (organic), ``opted_out`` (bool), ``hours_to_opt_out`` (hours from the episode's
start to the opting-out push, NaN if the user stayed).

**Learning mode** (``df.attrs``, not a column): ``df.attrs["learning"]`` is the mode the agent
was evaluated with, ``"episode"`` or ``"continual"`` (what ``"auto"`` resolved to), and
``df.attrs["learning_by_agent"]`` maps each ``agent`` label to its mode. With
:func:`evaluate_agents` the agents may differ (``"auto"`` with a bandit and a heuristic):
``df.attrs["learning"]`` is then ``"mixed"``. pandas keeps ``attrs`` through selections and
renames, and through :func:`pandas.concat` only when all the frames' ``attrs`` are equal;
:func:`evaluate_vector` resets the agent once (continual: the users share one clock) and records
``"continual"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import check_int
from covercast.agents.base import Agent, as_agent, as_seed_sequence, policy_label
from covercast.envs.vector import last_observations

__all__ = ["EPISODE_COLUMNS", "evaluate", "evaluate_agents", "evaluate_vector", "LEARNING_MODES",
           "LEARNING_CHOICES", "resolve_learning"]

#: Columns of the per-episode DataFrame, in order.
#: ``on_step(label, episode, obs, action, reward, info)``, called after every step.
StepCallback = Callable[[str, int, Any, Any, float, Mapping[str, Any]], None]

EPISODE_COLUMNS: tuple[str, ...] = (
    "agent", "episode", "seed", "return", "length", "days", "pushes", "opens", "ctr",
    "pushes_per_day", "dwell_min", "likes", "shares", "comments", "surveys", "satisfaction",
    "sessions", "opted_out", "hours_to_opt_out")

#: How a learning agent is reset: ``"episode"`` -- before every episode (episodes are
#: independent replications, and confidence intervals over them are valid); ``"continual"`` --
#: once, then it keeps learning across episodes (users), as a deployed bandit would (episodes
#: are then not independent).
LEARNING_MODES: tuple[str, ...] = ("episode", "continual")

#: Values of the ``learning`` argument: ``"auto"`` (the default) resolves to ``"continual"`` for
#: an agent whose ``learns`` is True (the style bandits) and to ``"episode"`` for any other
#: agent (see :func:`resolve_learning`); or one of :data:`LEARNING_MODES`.
LEARNING_CHOICES: tuple[str, ...] = ("auto", *LEARNING_MODES)


def resolve_learning(agent: Any, learning: str = "auto") -> str:
    """The mode of :data:`LEARNING_MODES` that ``learning`` means for ``agent``.

    ``"auto"``: ``"continual"`` if ``agent.learns`` (a learning agent keeps learning across
    users, as deployed), else ``"episode"``; ``"episode"`` and ``"continual"`` are returned as
    they are. Raises ValueError for any other value.
    """
    if not isinstance(learning, str) or learning not in LEARNING_CHOICES:
        raise ValueError(f"`learning` must be one of {list(LEARNING_CHOICES)} ('auto': "
                         f"'continual' for a learning agent, 'episode' otherwise), got "
                         f"{learning!r}.")
    if learning == "auto":
        return "continual" if bool(getattr(agent, "learns", False)) else "episode"
    return learning


_REQUIRED_INFO = ("pushed", "opened")


def _check_agent(agent: Any) -> Any:
    """``agent`` if it is an Agent or has ``predict`` (:func:`~covercast.agents.base.as_agent`
    wraps it once the environment is known)."""
    if not isinstance(agent, Agent) and not callable(getattr(agent, "predict", None)):
        raise ValueError(f"`agent` must be a covercast Agent (covercast.agents) or an object "
                         f"with stable-baselines3's predict(obs, state=None, episode_start=None, "
                         f"deterministic=False) -> (actions, state), got {type(agent).__name__}.")
    return agent


def _seeds(seed: Any, episodes: int) -> tuple[list[int], list[np.random.SeedSequence],
                                              np.random.SeedSequence]:
    if seed is None:
        raise ValueError("`seed` must be a non-negative integer or a SeedSequence (an "
                         "evaluation is reproducible by design), got None.")
    root = as_seed_sequence(seed)
    env_branch, agent_branch = root.spawn(2)
    env_seeds = [int(s) for s in env_branch.generate_state(episodes, dtype=np.uint32)]
    return env_seeds, agent_branch.spawn(episodes), agent_branch


def _make_env(env_or_id: Any, env_kwargs: Mapping[str, Any] | None) -> tuple[Any, bool]:
    """``(env, owned)``: an env made from an id (owned: closed at the end) or the one given."""
    if isinstance(env_or_id, str):
        kwargs = dict(env_kwargs or {})
        from covercast.envs.registration import ENV_IDS, make

        if env_or_id in ENV_IDS:
            return make(env_or_id, **kwargs), True
        import gymnasium as gym

        return gym.make(env_or_id, **kwargs), True
    if env_kwargs:
        raise ValueError("`env_kwargs` can only be used with an environment id; the environment "
                         "given is already built (pass its id instead, or drop `env_kwargs`).")
    if not (hasattr(env_or_id, "reset") and hasattr(env_or_id, "step")):
        raise ValueError(f"`env_or_id` must be a Gymnasium environment or a registered id such "
                         f"as 'covercast/PushSchedule-v0', got {type(env_or_id).__name__}.")
    return env_or_id, False


def _clock(env: Any) -> float | None:
    """Hours since the start of the population's clock, or None for non-covercast envs."""
    pop = getattr(getattr(env, "unwrapped", env), "population", None)
    return None if pop is None else float(pop.now)


class _Episode:
    """Running totals of one episode (scalar infos of a single-user env)."""

    def __init__(self) -> None:
        self.ret = 0.0
        self.length = 0
        self.pushes = self.opens = self.likes = self.shares = self.comments = 0
        self.surveys = self.sessions = 0
        self.dwell_s = self.sat_sum = 0.0
        self.opted_out = False
        self.opt_out_h = math.nan

    def add(self, reward: float, info: Mapping[str, Any], terminated: bool, t_push: float,
            step_no: int) -> None:
        missing = [k for k in _REQUIRED_INFO if k not in info]
        if missing:
            raise ValueError(f"The environment's info has no {missing} at step {step_no}; "
                             "evaluate needs the covercast responses in info (pushed, opened, "
                             "dwell_s, likes, ...).")
        self.ret += float(reward)
        self.length += 1
        self.pushes += int(info["pushed"])
        self.opens += int(info["opened"])
        self.dwell_s += float(info.get("dwell_s", 0.0))
        self.likes += int(info.get("likes", 0))
        self.shares += int(info.get("shares", 0))
        self.comments += int(info.get("comments", 0))
        self.sessions += int(info.get("sessions", 0))
        sat = info.get("satisfaction")
        if sat is not None and math.isfinite(float(sat)):
            n = int(info.get("surveys", 1)) or 1
            self.surveys += n
            self.sat_sum += float(sat) * n
        if bool(info.get("opted_out", terminated)) and not self.opted_out:
            self.opted_out = True
            self.opt_out_h = t_push


def _row(agent_name: str, episode: int, seed: int, e: _Episode, hours: float) -> dict[str, Any]:
    days = hours / 24.0
    return {
        "agent": agent_name, "episode": episode, "seed": seed, "return": e.ret,
        "length": e.length, "days": days, "pushes": e.pushes, "opens": e.opens,
        "ctr": e.opens / e.pushes if e.pushes else math.nan,
        "pushes_per_day": e.pushes / days if days > 0 else math.nan,
        "dwell_min": e.dwell_s / 60.0, "likes": e.likes, "shares": e.shares,
        "comments": e.comments, "surveys": e.surveys,
        "satisfaction": e.sat_sum / e.surveys if e.surveys else math.nan,
        "sessions": e.sessions, "opted_out": e.opted_out, "hours_to_opt_out": e.opt_out_h,
    }


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(EPISODE_COLUMNS))
    ints = ["episode", "seed", "length", "pushes", "opens", "likes", "shares", "comments",
            "surveys", "sessions"]
    df[ints] = df[ints].astype(np.int64)
    df["opted_out"] = df["opted_out"].astype(bool)
    floats = [c for c in EPISODE_COLUMNS if c not in ints + ["agent", "opted_out"]]
    df[floats] = df[floats].astype(np.float64)
    return df


def _with_learning(df: pd.DataFrame, modes: Mapping[str, str]) -> pd.DataFrame:
    """Record the learning mode of each agent label in ``df.attrs`` (module docstring)."""
    distinct = set(modes.values())
    df.attrs["learning"] = distinct.pop() if len(distinct) == 1 else "mixed"
    df.attrs["learning_by_agent"] = dict(modes)
    return df


def evaluate(agent: Agent, env_or_id: Any, episodes: int, seed: int | np.random.SeedSequence,
             *, env_kwargs: Mapping[str, Any] | None = None, progress: bool = False,
             deterministic: bool = False, learning: str = "auto",
             name: str | None = None, on_step: StepCallback | None = None) -> pd.DataFrame:
    """Run ``agent`` for ``episodes`` episodes of a single-user environment.

    Parameters
    ----------
    agent : Agent or object with ``predict``
        A covercast agent for the environment's action layout
        (``Agent.for_env(env)`` builds one); :meth:`~covercast.agents.base.Agent.attach` is
        called with the environment, and :meth:`~covercast.agents.base.Agent.update` after
        every step. Any other object with stable-baselines3's ``predict(obs, state=None,
        episode_start=None, deterministic=False) -> (actions, state)`` is wrapped by
        :func:`~covercast.agents.base.as_agent` for the environment's layout.
    env_or_id : str or gymnasium.Env
        A registered id (built with :func:`covercast.envs.make` for covercast ids, so
        ``env_kwargs`` may hold ``horizon_days`` and ``slot_minutes``; closed at the end) or an
        environment (not closed).
    episodes : int
        Number of episodes, >= 1.
    seed : int or SeedSequence
        Seed of the whole evaluation (see the module docstring): same seed, same DataFrame.
    env_kwargs : mapping, optional
        Arguments of the environment when ``env_or_id`` is an id.
    progress : bool
        Show a tqdm progress bar over episodes.
    deterministic : bool
        Passed to ``agent.predict`` (default False: stochastic agents sample).
    learning : {"auto", "episode", "continual"}
        When the agent is reset (:data:`LEARNING_MODES`): ``"episode"`` -- before every
        episode (each user meets a fresh agent); ``"continual"`` -- once at the start, then a
        learning agent keeps learning across episodes (users), as deployed. ``"auto"``
        (default): ``"continual"`` if ``agent.learns`` (the style bandits), else ``"episode"``
        (:func:`resolve_learning`). The mode used is ``df.attrs["learning"]``.
    name : str, optional
        The ``agent`` column (default ``agent.name``, or the class name of an object without
        one).
    on_step : callable, optional
        Called after every step as ``on_step(label, episode, obs, action, reward, info)``
        (``obs`` is the observation the action was chosen on), e.g. to record when pushes were
        sent; it must not change its arguments.

    Returns
    -------
    pandas.DataFrame
        One row per episode, columns :data:`EPISODE_COLUMNS`; ``attrs["learning"]`` is the
        learning mode used and ``attrs["learning_by_agent"]`` ``{label: mode}``.
    """
    agent = _check_agent(agent)
    episodes = check_int(episodes, "episodes")
    learning = resolve_learning(agent, learning)
    env_seeds, agent_seeds, agent_root = _seeds(seed, episodes)
    env, owned = _make_env(env_or_id, env_kwargs)
    label = policy_label(agent) if name is None else str(name)
    from tqdm.auto import tqdm

    rows = []
    try:
        agent = as_agent(agent, env)
        agent.attach(env)
        if learning == "continual":
            agent.reset(agent_root)
        for i in tqdm(range(episodes), disable=not progress, desc=f"evaluating {label}",
                      unit="episode"):
            if learning == "episode":
                agent.reset(agent_seeds[i])
            obs, _ = env.reset(seed=env_seeds[i])
            t0 = _clock(env)
            state = None
            start = np.ones(1, dtype=bool)
            ep = _Episode()
            while True:
                action, state = agent.predict(obs, state=state, episode_start=start,
                                              deterministic=deterministic)
                start = np.zeros(1, dtype=bool)
                t_push = _clock(env)
                next_obs, reward, terminated, truncated, info = env.step(action)
                agent.update(obs, action, reward, next_obs, terminated, info)
                if on_step is not None:
                    on_step(label, i, obs, action, reward, info)
                ep.add(reward, info, bool(terminated),
                       math.nan if t_push is None else t_push - t0, ep.length)
                obs = next_obs
                if terminated or truncated:
                    break
            t1 = _clock(env)
            hours = (t1 - t0) if t1 is not None else ep.length * float(
                getattr(env.unwrapped, "slot_hours", math.nan))
            rows.append(_row(label, i, env_seeds[i], ep, hours))
    finally:
        if owned:
            env.close()
    return _with_learning(_frame(rows), {label: learning})


def evaluate_agents(agents: Mapping[str, Agent] | Sequence[Agent], env_or_id: Any,
                    episodes: int, seed: int | np.random.SeedSequence, *,
                    env_kwargs: Mapping[str, Any] | None = None, progress: bool = False,
                    deterministic: bool = False, learning: str = "auto",
                    on_step: StepCallback | None = None) -> pd.DataFrame:
    """:func:`evaluate` each agent with the same ``seed`` (paired episodes); one DataFrame.

    ``agents`` is a mapping ``{label: agent}`` or a sequence of agents (labelled by their
    ``name``, or their class name; labels must be distinct); an agent may be any object with
    ``predict`` (see :func:`evaluate`). Other arguments as in :func:`evaluate`; with
    ``learning="auto"`` (default) each agent gets its own mode (the bandits continual, the
    others per episode): ``attrs["learning_by_agent"]`` names them, and ``attrs["learning"]``
    is their common mode, or ``"mixed"``.
    """
    if isinstance(agents, Mapping):
        items = list(agents.items())
    else:
        items = [(policy_label(a), a) for a in agents]
    if not items:
        raise ValueError("`agents` is empty; give at least one agent.")
    labels = [k for k, _ in items]
    if len(set(labels)) != len(labels):
        raise ValueError(f"Agent labels must be distinct, got {labels}; pass a mapping "
                         "{label: agent} or set each agent's `name`.")
    modes = {label: resolve_learning(a, learning) for label, a in items}
    frames = [evaluate(a, env_or_id, episodes, seed, env_kwargs=env_kwargs, progress=progress,
                       deterministic=deterministic, learning=modes[label], name=label,
                       on_step=on_step)
              for label, a in items]
    return _with_learning(pd.concat(frames, ignore_index=True), modes)


def evaluate_vector(agent: Agent, n_users: int, seed: int | np.random.SeedSequence, *,
                    env_kwargs: Mapping[str, Any] | None = None, progress: bool = False,
                    deterministic: bool = False, name: str | None = None) -> pd.DataFrame:
    """Run ``agent`` on the population vector environment: one row per user.

    The :class:`~covercast.envs.vector.PopulationVectorEnv` (built with
    :func:`covercast.envs.make_vec`; ``env_kwargs`` may hold ``horizon_days``,
    ``slot_minutes``, ``daily_budget``, ...) runs ``n_users`` users on one clock; the agent
    sees the ``(n_users, OBS_DIM)`` batch and answers ``(n_users,)`` actions. The run lasts
    one episode length: the ``n_users`` episodes that start at reset are the rows (users who
    opt out are replaced by fresh users, whose unfinished episodes are not counted; the agent
    still acts for them, told by ``episode_start``). The agent is reset once with the agent
    branch of ``seed``; the environment is reset with the first word of its branch.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`EPISODE_COLUMNS`; ``episode`` is the user's index, ``seed`` the
        environment seed (the same for all rows); ``attrs["learning"]`` is ``"continual"``
        (one reset: a learning agent learns from all the users as they go).
    """
    agent = _check_agent(agent)
    n = check_int(n_users, "n_users")
    if getattr(agent, "mode", "schedule") != "schedule":
        raise ValueError(f"The population vector environment takes PushSchedule actions; build "
                         f"the agent with mode='schedule', not {agent.mode!r}.")
    env_seeds, _, agent_root = _seeds(seed, 1)
    from covercast.envs.registration import make_vec

    env = make_vec(n, **dict(env_kwargs or {}))
    label = policy_label(agent) if name is None else str(name)
    base = env.unwrapped
    steps = int(base.max_episode_steps)
    from tqdm.auto import tqdm

    try:
        agent = as_agent(agent, env)
        agent.attach(env)
        agent.reset(agent_root)
        obs, _ = env.reset(seed=env_seeds[0])
        t0 = float(base.population.now)
        first = np.ones(n, dtype=bool)         # the row still runs its first episode
        start = np.ones(n, dtype=bool)
        tot = {k: np.zeros(n) for k in ("ret", "length", "pushes", "opens", "dwell_s", "likes",
                                        "shares", "comments", "surveys", "sat_sum",
                                        "sessions")}
        opted = np.zeros(n, dtype=bool)
        opt_h = np.full(n, np.nan)
        end_h = np.full(n, np.nan)
        state = None
        for _ in tqdm(range(steps), disable=not progress, desc=f"evaluating {label}",
                      unit="slot"):
            if not first.any():
                break
            actions, state = agent.predict(obs, state=state, episode_start=start,
                                           deterministic=deterministic)
            t_push = float(base.population.now)
            next_obs, reward, terminated, truncated, info = env.step(actions)
            done = np.asarray(terminated) | np.asarray(truncated)
            last_obs = last_observations(next_obs, done, info)
            agent.update(obs, actions, reward, last_obs, terminated, info)
            m = first
            tot["ret"][m] += np.asarray(reward, dtype=np.float64)[m]
            tot["length"][m] += 1
            for key, col in (("pushes", "pushed"), ("opens", "opened"), ("dwell_s", "dwell_s"),
                             ("likes", "likes"), ("shares", "shares"),
                             ("comments", "comments"), ("sessions", "sessions")):
                tot[key][m] += np.asarray(info[col], dtype=np.float64)[m]
            surv = np.asarray(info.get("surveys", np.zeros(n)), dtype=np.float64)
            sat = np.asarray(info.get("satisfaction", np.full(n, np.nan)), dtype=np.float64)
            ok = m & (surv > 0) & np.isfinite(sat)
            tot["surveys"][ok] += surv[ok]
            tot["sat_sum"][ok] += sat[ok] * surv[ok]
            out = m & np.asarray(info["opted_out"], dtype=bool)
            opted[out] = True
            opt_h[out] = t_push - t0
            ended = m & done
            end_h[ended] = float(base.population.now) - t0
            first &= ~done
            start = done
            obs = next_obs
        # rows that never ended (cannot happen with a TimeLimit) end now
        end_h = np.where(np.isnan(end_h), float(base.population.now) - t0, end_h)
    finally:
        env.close()
    rows = []
    for i in range(n):
        e = _Episode()
        e.ret, e.length = float(tot["ret"][i]), int(tot["length"][i])
        e.pushes, e.opens = int(tot["pushes"][i]), int(tot["opens"][i])
        e.dwell_s = float(tot["dwell_s"][i])
        e.likes, e.shares = int(tot["likes"][i]), int(tot["shares"][i])
        e.comments, e.sessions = int(tot["comments"][i]), int(tot["sessions"][i])
        e.surveys, e.sat_sum = int(tot["surveys"][i]), float(tot["sat_sum"][i])
        e.opted_out, e.opt_out_h = bool(opted[i]), float(opt_h[i])
        rows.append(_row(label, i, env_seeds[0], e, float(end_h[i])))
    return _with_learning(_frame(rows), {label: "continual"})
