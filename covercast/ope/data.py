"""Logged datasets for off-policy evaluation: collect, save, load, export, and the real OBD.

A :class:`LoggedDataset` is one row per logged decision, grouped in episodes (a user's
horizon), in time order:

==================  ==========================================================================
column              meaning
==================  ==========================================================================
``episode``         episode index (0, 1, ...), contiguous
``step``            step within the episode (0, 1, ...)
``action``          the logged action (int)
``pscore``          the logging policy's probability of that action, in (0, 1]
``reward``          the reward of the step
``terminated``      the episode ended here by termination (opt-out)
``truncated``       the episode ended here by the time limit
``obs_00..obs_NN``  the observation the action was taken on
``<response>``      the raw responses from ``info`` (``pushed``, ``opened``, ``dwell_s``, ...)
==================  ==========================================================================

Stochastic logging policies with exact propensities wrap any covercast agent:
:class:`EpsilonGreedyAgent` (the base's distribution mixed with the uniform one) and
:class:`SoftmaxAgent` (the base's probabilities tempered by a softmax). Both are
:class:`~covercast.agents.base.Agent` objects, so they can also be *evaluated* on-policy.

:func:`collect` runs a single-user environment (about 10k decisions/s);
:func:`collect_vector` logs the same per-decision form from the population vector environment
(:class:`~covercast.envs.vector.PopulationVectorEnv`), all users of a round side by side, for
datasets of a million decisions.

:func:`evaluation_probabilities` runs an evaluation policy over the logged histories (a policy
with memory sees each episode from its start) and gives the ``(n, K)`` ``action_dist`` the
estimators need.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import atomic_write, atomic_write_text, check_int, check_number
from covercast.agents.base import Agent, SeedLike, as_agent, as_obs_batch, as_seed_sequence
from covercast.envs.vector import last_observations

__all__ = ["LoggedDataset", "EpsilonGreedyAgent", "SoftmaxAgent", "collect", "collect_vector",
           "evaluation_probabilities", "load_dataset", "obd_dataset", "RESPONSE_COLUMNS",
           "FORMAT_VERSION"]

#: Version of the on-disk format (metadata JSON ``format_version``).
FORMAT_VERSION = 1
#: Responses copied from ``info`` when present (numeric ones).
RESPONSE_COLUMNS: tuple[str, ...] = ("pushed", "blocked", "opened", "dwell_s", "likes", "shares",
                                     "comments", "surveys", "opted_out", "sessions", "style",
                                     "cover")
_BASE_COLUMNS = ("episode", "step", "action", "pscore", "reward", "terminated", "truncated")


def _obs_columns(d: int) -> list[str]:
    return [f"obs_{i:02d}" for i in range(d)]


# =============================================================================== wrappers
class _WrappedAgent(Agent):
    """An agent whose distribution is a transform of ``base``'s (state and memory from it)."""

    learns = False

    def __init__(self, base: Agent, *, seed: SeedLike = None, name: str | None = None) -> None:
        if not isinstance(base, Agent):
            raise ValueError(f"`base` must be a covercast Agent (covercast.agents), got "
                             f"{type(base).__name__}.")
        super().__init__(base.mode, base.n_styles, seed=seed, name=name)
        self.base = base

    def attach(self, env: Any) -> None:
        self.base.attach(env)

    def _transform(self, probs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def action_probabilities(self, obs: Any, state: Any = None) -> np.ndarray:
        return self._transform(self.base.action_probabilities(obs, state))

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[int | np.ndarray, Any]:
        x, single = as_obs_batch(obs)
        start = np.zeros(x.shape[0], dtype=bool) if episode_start is None else \
            np.broadcast_to(np.asarray(episode_start, dtype=bool), (x.shape[0],))
        # the distribution at this decision: the base's state as predict() would use it
        st = None if (state is None or start.all()) else state
        probs = self.action_probabilities(x, st)
        # advance the base's memory (its own choice is ignored)
        _, new_state = self.base.predict(x, state, start, deterministic=True)
        if deterministic:
            action = np.argmax(probs, axis=1)
        else:
            u = self._rng.random(x.shape[0])[:, None]
            cdf = np.cumsum(probs, axis=1)
            action = np.minimum((u * cdf[:, -1:] >= cdf).sum(axis=1), probs.shape[1] - 1)
        action = action.astype(np.int64)
        return (int(action[0]) if single else action), new_state

    def _decide(self, x, state, episode_start, deterministic):    # pragma: no cover - unused
        action, state = self.predict(x, state, episode_start, deterministic)
        push, style = self.layout.decode(action)
        return push, np.maximum(style, 0), state

    def _distribution(self, x, state):                             # pragma: no cover - unused
        probs = self.action_probabilities(x, state)
        if self.mode == "schedule":
            p_push = 1.0 - probs[:, 0]
            with np.errstate(invalid="ignore", divide="ignore"):
                style = np.where(p_push[:, None] > 0, probs[:, 1:] / p_push[:, None],
                                 1.0 / self.n_styles)
            return p_push, style
        if self.mode == "timing":
            return probs[:, 1], np.full((x.shape[0], self.n_styles), 1.0 / self.n_styles)
        return np.ones(x.shape[0]), probs

    def reset(self, seed: SeedLike = None) -> None:
        ss = as_seed_sequence(seed)
        mine, base = ss.spawn(2)
        super().reset(mine)
        self.base.reset(base)

    def update(self, obs, action, reward, next_obs, terminated, info) -> None:
        self.base.update(obs, action, reward, next_obs, terminated, info)


class EpsilonGreedyAgent(_WrappedAgent):
    """``(1 - epsilon) * base + epsilon * uniform`` over the actions, with exact probabilities.

    Every action gets probability at least ``epsilon / n_actions``, so every evaluation policy
    is covered (importance weights at most ``n_actions / epsilon``).

    Parameters
    ----------
    base : Agent
        The policy followed with probability ``1 - epsilon`` (its memory is advanced with its
        own most likely action).
    epsilon : float
        Exploration share in (0, 1].
    seed, name :
        The wrapper's random stream and label.
    """

    default_name = "eps-greedy"

    def __init__(self, base: Agent, epsilon: float = 0.1, *, seed: SeedLike = None,
                 name: str | None = None) -> None:
        super().__init__(base, seed=seed, name=name or f"eps{epsilon:g}-{base.name}")
        self.epsilon = check_number(epsilon, "epsilon", lo=0, hi=1, lo_open=True)

    def config(self) -> dict[str, Any]:
        return super().config() | {"epsilon": self.epsilon, "base": self.base.config()}

    def _transform(self, probs: np.ndarray) -> np.ndarray:
        return (1.0 - self.epsilon) * probs + self.epsilon / probs.shape[1]


class SoftmaxAgent(_WrappedAgent):
    """``softmax(log(max(p_base, floor)) / temperature)``: the base's choices, tempered.

    ``temperature = 1`` keeps the base's distribution (with every probability floored at
    ``floor`` before renormalising); larger temperatures flatten it towards uniform, smaller
    ones sharpen it. Every action keeps a positive probability.

    Parameters
    ----------
    base : Agent
        The policy to temper.
    temperature : float
        > 0.
    floor : float
        Smallest base probability used in the logits, in (0, 1) (default 0.01).
    """

    default_name = "softmax"

    def __init__(self, base: Agent, temperature: float = 2.0, floor: float = 0.01, *,
                 seed: SeedLike = None, name: str | None = None) -> None:
        super().__init__(base, seed=seed, name=name or f"softmax{temperature:g}-{base.name}")
        self.temperature = check_number(temperature, "temperature", lo=0, lo_open=True)
        self.floor = check_number(floor, "floor", lo=0, hi=1, lo_open=True, hi_open=True)

    def config(self) -> dict[str, Any]:
        return super().config() | {"temperature": self.temperature, "floor": self.floor,
                                   "base": self.base.config()}

    def _transform(self, probs: np.ndarray) -> np.ndarray:
        z = np.log(np.maximum(probs, self.floor)) / self.temperature
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


# =============================================================================== the dataset
@dataclass
class LoggedDataset:
    """Logged decisions (one row each, see the module docstring) and their metadata.

    Attributes
    ----------
    frame : pandas.DataFrame
        The decisions.
    n_actions : int
        Size of the action space.
    metadata : dict
        JSON-serialisable description (env id, logging policy config, seed, ...).
    """

    frame: pd.DataFrame
    n_actions: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in _BASE_COLUMNS if c not in self.frame.columns]
        if missing:
            raise ValueError(f"A LoggedDataset frame needs the columns {list(_BASE_COLUMNS)}; "
                             f"missing {missing}.")
        if len(self.frame) == 0:
            raise ValueError("The logged dataset is empty (0 decisions).")
        self.n_actions = check_int(self.n_actions, "n_actions")
        a = self.frame["action"].to_numpy()
        if a.min() < 0 or a.max() >= self.n_actions:
            raise ValueError(f"Logged actions must lie in [0, {self.n_actions - 1}], got "
                             f"[{a.min()}, {a.max()}].")
        p = self.frame["pscore"].to_numpy()
        if not np.all((p > 0) & (p <= 1)):
            raise ValueError(f"`pscore` must lie in (0, 1], got values in [{p.min()}, "
                             f"{p.max()}].")

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def n_episodes(self) -> int:
        return int(self.frame["episode"].nunique())

    @property
    def obs_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c.startswith("obs_")]

    def arrays(self) -> dict[str, np.ndarray]:
        """``reward``, ``action``, ``pscore``, ``episode`` (and ``obs`` when logged) arrays."""
        f = self.frame
        out = {"reward": f["reward"].to_numpy(np.float64),
               "action": f["action"].to_numpy(np.int64),
               "pscore": f["pscore"].to_numpy(np.float64),
               "episode": f["episode"].to_numpy(np.int64)}
        if self.obs_columns:
            out["obs"] = f[self.obs_columns].to_numpy(np.float64)
        return out

    def head(self, n_decisions: int) -> LoggedDataset:
        """The first whole episodes holding at least ``n_decisions`` decisions (all if fewer)."""
        ep = self.frame["episode"].to_numpy()
        if n_decisions >= len(ep):
            return self
        last = ep[n_decisions - 1]
        keep = ep <= last
        return LoggedDataset(self.frame.loc[keep].reset_index(drop=True), self.n_actions,
                             dict(self.metadata))

    # ------------------------------------------------------------------ disk
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (Parquet) and ``path`` with suffix ``.json`` (metadata), atomically."""
        path = Path(path)
        if path.suffix != ".parquet":
            raise ValueError(f"Save a LoggedDataset as .parquet, got {path.name!r}.")
        meta = {"format_version": FORMAT_VERSION, "n_actions": self.n_actions,
                "n_decisions": len(self), "n_episodes": self.n_episodes,
                **self.metadata}
        atomic_write(path, lambda p: self.frame.to_parquet(p, index=False))
        atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, default=str))
        return path

    def to_minari(self, dataset_id: str, *, env_id: str | None = None,
                  author: str = "covercast", author_email: str = "covercast@localhost",
                  code_permalink: str = "https://github.com/covercast/covercast",
                  data_path: str | os.PathLike | None = None) -> Any:
        """Export as a Minari dataset (needs the ``minari`` extra).

        Each episode becomes a Minari episode: observations (the logged ones plus the episode's
        last observation repeated as the final one, since the step after the last is not
        logged), actions, rewards, terminations, truncations and, in ``infos``, the logging
        ``pscore`` and the raw responses (arrays ``(T + 1, 1)``, the first row -- the reset --
        NaN for ``pscore`` and 0 for the responses). Stored in Minari's ``arrow`` format (pyarrow, which
        the Parquet files already need; no h5py). ``data_path`` sets ``MINARI_DATASETS_PATH`` for the
        call (default: Minari's own; a relative path is taken from the working directory).

        The dataset's environment spec is the logged env's with the log's episode length
        (``max_episode_steps``) and the env arguments the log recorded, so
        ``dataset.recover_environment()`` gives back the env the log came from, not the
        registered default horizon. A dataset id that already exists is refused before
        anything is written, and a failed export removes what it wrote, so a retry is not
        blocked.
        """
        try:
            import gymnasium as gym
            import minari
        except ImportError as e:  # pragma: no cover - depends on the extra
            raise ImportError('Minari export needs the extra: pip install "covercast[minari]"'
                              ) from e
        from minari.data_collector import EpisodeBuffer

        obs_cols = self.obs_columns
        if not obs_cols:
            raise ValueError("This dataset has no observations (obs_* columns); Minari needs "
                             "them.")
        resp = [c for c in RESPONSE_COLUMNS if c in self.frame.columns]
        buffers = []
        for ep, g in self.frame.groupby("episode", sort=True):
            o = g[obs_cols].to_numpy(np.float32)
            o = np.concatenate([o, o[-1:]], axis=0)
            # (T + 1, 1) columns: minari 0.5.4's arrow reader cannot decode scalar infos
            infos = {"pscore": np.r_[np.nan, g["pscore"].to_numpy()][:, None]}
            for c in resp:
                infos[c] = np.r_[0, g[c].to_numpy()].astype(np.float64)[:, None]
            buffers.append(EpisodeBuffer(
                id=int(ep), observations=o, actions=g["action"].to_numpy(np.int64),
                rewards=g["reward"].to_numpy(np.float64),
                terminations=g["terminated"].to_numpy(bool),
                truncations=g["truncated"].to_numpy(bool), infos=infos))
        obs_space = gym.spaces.Box(-np.inf, np.inf, (len(obs_cols),), np.float32)
        act_space = gym.spaces.Discrete(self.n_actions)
        spec = self._minari_env_spec(env_id or self.metadata.get("env_id"))
        old = os.environ.get("MINARI_DATASETS_PATH")
        if data_path is not None:
            # minari joins its root with paths it already joined: a relative root breaks it
            os.environ["MINARI_DATASETS_PATH"] = str(Path(data_path).resolve())
        try:
            from minari.storage import get_dataset_path

            target = get_dataset_path(dataset_id)
            if target.exists():
                raise FileExistsError(f"A Minari dataset {dataset_id!r} already exists at "
                                      f"{target}; remove it or choose another id.")
            try:
                return minari.create_dataset_from_buffers(
                    dataset_id=dataset_id, buffer=buffers, env=spec,
                    observation_space=obs_space, action_space=act_space, algorithm_name=str(
                        self.metadata.get("logging_policy", {}).get("name", "logging")),
                    author=author, author_email=author_email, code_permalink=code_permalink,
                    eval_env=spec, data_format="arrow",
                    description="covercast logged push decisions with logging propensities "
                    "(infos['pscore'])")
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)   # no half-written dataset
                raise
        finally:
            if data_path is not None:
                if old is None:
                    os.environ.pop("MINARI_DATASETS_PATH", None)
                else:
                    os.environ["MINARI_DATASETS_PATH"] = old


    def _minari_env_spec(self, env_id: str | None) -> Any:
        """The registered spec of ``env_id`` with this log's episode length and recorded env
        arguments (None when ``env_id`` is None or not registered)."""
        import dataclasses

        import gymnasium as gym

        if env_id is None or env_id not in gym.registry:
            return None
        spec = gym.spec(env_id)
        kwargs = {**spec.kwargs, **self.metadata.get("env_kwargs", {})}
        if "slot_minutes" in self.metadata:
            kwargs["slot_minutes"] = int(self.metadata["slot_minutes"])
        horizon = self.metadata.get("max_episode_steps")
        if horizon is None:  # a log that did not record it: its longest episode
            horizon = int(self.frame.groupby("episode").size().max())
        from covercast.envs.registration import ENV_IDS, episode_steps

        if "horizon_days" not in kwargs and env_id in ENV_IDS:
            # the env truncates itself at `horizon_days` (14 by default): recover the days
            # that give the logged horizon, so env and TimeLimit agree on the episode length
            per_day = episode_steps(env_id, 1.0, **{k: kwargs[k] for k in
                                                    ("slot_minutes", "push_hours") if k in kwargs})
            days = horizon / per_day
            if env_id == "covercast/CoverStyle-v0":  # whole days of pushes
                days = float(np.ceil(days - 1e-9))
            kwargs["horizon_days"] = days
            horizon = episode_steps(env_id, days, **{k: kwargs[k] for k in
                                                     ("slot_minutes", "push_hours") if k in kwargs})
        return dataclasses.replace(spec, max_episode_steps=int(horizon), kwargs=kwargs)


def _json_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The JSON-serialisable entries of an env's ``spec.kwargs`` (a population object, say,
    is left out)."""
    out = {}
    for k, v in kwargs.items():
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue
        out[k] = v
    return out


def load_dataset(path: str | os.PathLike) -> LoggedDataset:
    """Read a dataset written by :meth:`LoggedDataset.save`."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise FileNotFoundError(f"A saved LoggedDataset is {path} plus {meta_path}; at least one "
                                "is missing.")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{meta_path} has format_version {meta.get('format_version')!r}; this "
                         f"covercast reads {FORMAT_VERSION}.")
    frame = pd.read_parquet(path)
    n_actions = meta.pop("n_actions")
    for k in ("format_version", "n_decisions", "n_episodes"):
        meta.pop(k, None)
    return LoggedDataset(frame, n_actions, meta)


# =============================================================================== collect
def _check_collect_args(logging_policy: Any, episodes: Any, seed: Any) -> None:
    if not isinstance(logging_policy, Agent):
        raise ValueError(f"`logging_policy` must be a covercast Agent, got "
                         f"{type(logging_policy).__name__}.")
    check_int(episodes, "episodes")
    if seed is None:
        raise ValueError("`seed` must be a non-negative integer or a SeedSequence (a logged "
                         "dataset is reproducible by design), got None.")


def collect(env: Any, logging_policy: Agent, episodes: int, seed: int | np.random.SeedSequence,
            *, progress: bool = False) -> LoggedDataset:
    """Run ``logging_policy`` on a single-user environment and log every decision.

    Parameters
    ----------
    env : gymnasium.Env
        A covercast single-user environment (e.g. ``covercast.envs.make(
        "covercast/PushSchedule-v0", horizon_days=7)``); ``info`` carries the raw responses.
    logging_policy : Agent or object with ``predict``
        A stochastic agent whose :meth:`~covercast.agents.base.Agent.action_probabilities`
        are exact for its :meth:`predict` (e.g. :class:`EpsilonGreedyAgent`); its probability
        of each taken action is logged as ``pscore``. Any other object with
        stable-baselines3's ``predict`` is wrapped by :func:`~covercast.agents.base.as_agent`
        for ``env``: it must then have its own ``action_probabilities(obs, state=None)``
        (a ``predict``-only object has no propensities to log, and is refused with a
        ValueError; for a deterministic one, log ``EpsilonGreedyAgent(as_agent(policy,
        env, deterministic=True), epsilon=...)``).
    episodes : int
        Episodes (users) to log, >= 1.
    seed : int or SeedSequence
        Split into environment seeds (one per episode) and the agent's seed, like
        :func:`covercast.agents.evaluate.evaluate`, so that the same seed meets the same
        users there (the truth) and here.
    progress : bool
        Show a progress bar.

    Raises
    ------
    ValueError
        If the policy's probability of a taken action is 0 (its ``action_probabilities`` does
        not match its ``predict``), the policy gives no action probabilities, or the arguments
        are invalid.
    """
    from tqdm.auto import tqdm

    if not isinstance(logging_policy, Agent):
        logging_policy = as_agent(logging_policy, env)     # ValueError without predict
    _check_collect_args(logging_policy, episodes, seed)
    root = as_seed_sequence(seed)
    env_branch, agent_branch = root.spawn(2)
    env_seeds = [int(s) for s in env_branch.generate_state(int(episodes), dtype=np.uint32)]
    logging_policy.attach(env)
    logging_policy.reset(agent_branch)
    cols: dict[str, list] = {c: [] for c in _BASE_COLUMNS}
    resp: dict[str, list] = {c: [] for c in RESPONSE_COLUMNS}
    obs_rows: list[np.ndarray] = []
    for ep in tqdm(range(int(episodes)), desc="collect", disable=not progress, leave=False):
        obs, info = env.reset(seed=env_seeds[ep])
        state = None
        start = True
        t = 0
        while True:
            x = np.asarray(obs, dtype=np.float64)
            try:
                probs = logging_policy.action_probabilities(x, None if start else state)[0]
            except NotImplementedError as e:
                raise ValueError(f"collect logs the logging policy's probability of each "
                                 f"action (pscore), and it has none: {e}") from e
            action, state = logging_policy.predict(x, state, start, deterministic=False)
            p = float(probs[int(action)])
            if not p > 0:
                raise ValueError(f"{logging_policy.name}: action {action} was taken with logged "
                                 f"probability {p} (episode {ep}, step {t}); its "
                                 "action_probabilities must match predict().")
            obs2, reward, terminated, truncated, info = env.step(action)
            logging_policy.update(x, action, reward, obs2, terminated, info)
            obs_rows.append(x.astype(np.float32))
            for c, v in zip(_BASE_COLUMNS, (ep, t, int(action), p, float(reward),
                                            bool(terminated), bool(truncated)), strict=False):
                cols[c].append(v)
            for c in RESPONSE_COLUMNS:
                resp[c].append(float(info.get(c, 0)) if not isinstance(info.get(c), bool)
                               else float(info[c]))
            t += 1
            start = False
            obs = obs2
            if terminated or truncated:
                break
    frame = pd.DataFrame(cols)
    frame = frame.astype({"episode": np.int64, "step": np.int64, "action": np.int64,
                          "terminated": bool, "truncated": bool})
    obs_arr = np.stack(obs_rows)
    frame = pd.concat([frame, pd.DataFrame(obs_arr, columns=_obs_columns(obs_arr.shape[1])),
                       pd.DataFrame(resp)], axis=1)
    spec = getattr(env, "spec", None)
    n_actions = int(env.action_space.n)
    meta = {"env_id": getattr(spec, "id", None),
            "max_episode_steps": getattr(spec, "max_episode_steps", None),
            "env_kwargs": _json_kwargs(getattr(spec, "kwargs", None) or {}),
            "logging_policy": logging_policy.config() | {"name": logging_policy.name},
            "episodes": int(episodes),
            "seed": seed if isinstance(seed, int) else str(root.entropy)}
    return LoggedDataset(frame, n_actions, meta)


def collect_vector(env: Any, logging_policy: Agent, episodes: int,
                   seed: int | np.random.SeedSequence, *, progress: bool = False
                   ) -> LoggedDataset:
    """Log ``episodes`` episodes of ``logging_policy`` on the population vector environment.

    The same per-decision form as :func:`collect` (same columns, episodes contiguous and in
    time order), with the same distribution: every logged episode is a fresh user starting at
    the environment's ``start`` and runs until the user opts out or ``max_episode_steps``
    steps, exactly like an episode of the single-user ``covercast/PushSchedule-v0`` reset
    there. The users are simulated in *rounds* of ``env.num_envs`` users: each round resets
    the environment (with its own seed) and runs one episode length; only the episodes that
    start at the reset are logged (a user who opts out is replaced by the environment's
    autoreset; the policy still acts for the newcomer, told by ``episode_start``, but those
    rows -- which would start later in the week -- are dropped). The last round logs only the
    users still needed.

    Parameters
    ----------
    env : PopulationVectorEnv
        E.g. ``covercast.envs.make_vec(4096, horizon_days=2)`` (``daily_budget`` must be
        ``None``: a shared budget couples the users, which a single-user episode cannot show).
        Its ``num_envs`` is the round size: about ``episodes``, or fewer to bound memory (a
        round holds about 0.3 kB per user and step before it is copied into the frame).
    logging_policy : Agent
        A stochastic ``schedule``-mode agent whose
        :meth:`~covercast.agents.base.Agent.action_probabilities` are exact for its
        :meth:`predict` on a batch (e.g. :class:`EpsilonGreedyAgent`).
    episodes : int
        Episodes (users) to log, >= 1.
    seed : int or SeedSequence
        Split into an environment branch (one reset seed per round) and the agent's seed.
    progress : bool
        Show a progress bar over the steps of all rounds.

    Returns
    -------
    LoggedDataset
        ``metadata["collector"] == "vector"``.

    Raises
    ------
    ValueError
        For a non-vector environment, a daily budget, a non-``schedule`` policy, a taken action
        with probability 0, or invalid arguments.
    """
    from tqdm.auto import tqdm

    base = getattr(env, "unwrapped", env)
    if not (hasattr(base, "num_envs") and hasattr(base, "max_episode_steps")
            and hasattr(base, "population")):
        raise ValueError(f"`env` must be a covercast PopulationVectorEnv (covercast.envs."
                         f"make_vec), got {type(base).__name__}.")
    if getattr(base, "daily_budget", None) is not None:
        raise ValueError(f"collect_vector needs an environment without a daily budget (the "
                         f"budget couples users), got daily_budget={base.daily_budget!r}.")
    _check_collect_args(logging_policy, episodes, seed)
    if logging_policy.mode != "schedule":
        raise ValueError(f"The population vector environment takes PushSchedule actions; the "
                         f"logging policy's mode must be 'schedule', not "
                         f"{logging_policy.mode!r}.")
    episodes = int(episodes)
    n, horizon = int(base.num_envs), int(base.max_episode_steps)
    n_rounds = -(-episodes // n)
    root = as_seed_sequence(seed)
    env_branch, agent_branch = root.spawn(2)
    round_seeds = [int(s) for s in env_branch.generate_state(n_rounds, dtype=np.uint32)]
    logging_policy.attach(env)
    logging_policy.reset(agent_branch)
    n_resp = len(RESPONSE_COLUMNS)
    parts: list[dict[str, np.ndarray]] = []
    bar = tqdm(total=n_rounds * horizon, desc="collect (vector)", disable=not progress,
               leave=False, unit="slot")
    for r in range(n_rounds):
        keep = min(n, episodes - r * n)           # users of this round that are logged
        obs, _ = env.reset(seed=round_seeds[r])
        d = obs.shape[1]
        x_buf = np.empty((horizon, keep, d), dtype=np.float32)
        act = np.zeros((horizon, keep), dtype=np.int64)
        psc = np.ones((horizon, keep))
        rew = np.zeros((horizon, keep))
        term = np.zeros((horizon, keep), dtype=bool)
        trunc = np.zeros((horizon, keep), dtype=bool)
        resp = np.zeros((horizon, keep, n_resp))
        alive = np.zeros((horizon, keep), dtype=bool)
        first = np.ones(n, dtype=bool)             # still in the episode that began at reset
        start = np.ones(n, dtype=bool)
        state = None
        for t in range(horizon):
            if not first[:keep].any():
                bar.update(horizon - t)
                break
            x = np.asarray(obs, dtype=np.float64)
            probs = logging_policy.action_probabilities(x, None if t == 0 else state)
            action, state = logging_policy.predict(x, state, start, deterministic=False)
            action = np.asarray(action, dtype=np.int64)
            p = probs[np.arange(n), action]
            live = first[:keep]
            bad = live & ~(p[:keep] > 0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{logging_policy.name}: action {int(action[i])} was taken with "
                                 f"logged probability {float(p[i])} (round {r}, user {i}, step "
                                 f"{t}); its action_probabilities must match predict().")
            obs2, reward, terminated, truncated, info = env.step(action)
            done = np.asarray(terminated) | np.asarray(truncated)
            nxt = last_observations(obs2, done, info)
            logging_policy.update(x, action, reward, nxt, terminated, info)
            alive[t] = live
            x_buf[t] = x[:keep].astype(np.float32)
            act[t] = action[:keep]
            psc[t] = np.where(live, p[:keep], 1.0)
            rew[t] = np.asarray(reward, dtype=np.float64)[:keep]
            term[t] = np.asarray(terminated, dtype=bool)[:keep]
            trunc[t] = np.asarray(truncated, dtype=bool)[:keep]
            for j, c in enumerate(RESPONSE_COLUMNS):
                if c in info:
                    resp[t, :, j] = np.asarray(info[c], dtype=np.float64)[:keep]
            first &= ~done
            start = done
            obs = obs2
            bar.update(1)
        # user-major order: each user's steps contiguous, in time order
        m = alive.T
        steps_idx = np.broadcast_to(np.arange(horizon), (keep, horizon))
        users = np.broadcast_to(np.arange(keep)[:, None], (keep, horizon))
        parts.append({"episode": users[m] + r * n, "step": steps_idx[m],
                      "action": act.T[m], "pscore": psc.T[m], "reward": rew.T[m],
                      "terminated": term.T[m], "truncated": trunc.T[m],
                      "obs": x_buf.transpose(1, 0, 2)[m], "resp": resp.transpose(1, 0, 2)[m]})
    bar.close()
    cat = {k: np.concatenate([p_[k] for p_ in parts]) for k in parts[0]}
    frame = pd.DataFrame({c: cat[c] for c in _BASE_COLUMNS})
    frame = frame.astype({"episode": np.int64, "step": np.int64, "action": np.int64,
                          "terminated": bool, "truncated": bool})
    frame = pd.concat([frame, pd.DataFrame(cat["obs"], columns=_obs_columns(cat["obs"].shape[1])),
                       pd.DataFrame(cat["resp"], columns=list(RESPONSE_COLUMNS))], axis=1)
    meta = {"env_id": "covercast/PushSchedule-v0", "collector": "vector",
            "max_episode_steps": horizon, "num_envs": n,
            "slot_minutes": int(getattr(base, "slot_minutes", 60)),
            "logging_policy": logging_policy.config() | {"name": logging_policy.name},
            "episodes": episodes,
            "seed": seed if isinstance(seed, int) else str(root.entropy)}
    return LoggedDataset(frame, int(base.single_action_space.n), meta)


# =============================================================================== evaluation
def evaluation_probabilities(policy: Agent, data: LoggedDataset | Mapping[str, Any]
                             ) -> np.ndarray:
    """``(n, K)`` action probabilities of ``policy`` at every logged decision.

    All episodes are run side by side (one observation row per episode, step by step), so a
    policy with memory sees each episode's logged observations from its start. Its memory is
    advanced with its own most likely action (``predict(..., deterministic=True)``): for a
    policy whose memory depends on its own past actions (e.g. the daily push count of
    :class:`~covercast.agents.baselines.ActivityHeuristic`), the probabilities are exact along
    histories where the logged actions agree with that policy -- the only histories that keep
    weight in the sequential estimators. Learning policies are evaluated frozen (``update``
    is never called).

    Parameters
    ----------
    policy : Agent
        The evaluation policy.
    data : LoggedDataset or mapping
        The dataset, or a mapping with ``obs`` ``(n, d)`` and ``episode`` ``(n,)`` arrays
        (contiguous episodes, time order).
    """
    if not isinstance(policy, Agent):
        raise ValueError(f"`policy` must be a covercast Agent, got {type(policy).__name__}.")
    arr = data.arrays() if isinstance(data, LoggedDataset) else dict(data)
    if "obs" not in arr or "episode" not in arr:
        raise ValueError("evaluation_probabilities needs logged observations (`obs`) and "
                         "`episode` ids.")
    x = np.asarray(arr["obs"], dtype=np.float64)
    ep = np.asarray(arr["episode"])
    n = x.shape[0]
    if ep.shape != (n,) or n == 0:
        raise ValueError(f"`obs` ({x.shape}) and `episode` ({ep.shape}) must have one row per "
                         "decision, and at least one.")
    start = np.r_[True, ep[1:] != ep[:-1]]
    unit = np.cumsum(start) - 1
    n_ep = int(unit[-1]) + 1
    if np.unique(ep).size != n_ep:
        raise ValueError("The decisions of each episode must be contiguous.")
    first = np.flatnonzero(start)
    step = np.arange(n) - first[unit]
    length = np.bincount(unit, minlength=n_ep)
    horizon = int(length.max())
    idx = np.full((n_ep, horizon), -1, dtype=np.int64)
    idx[unit, step] = np.arange(n)
    last = first + length - 1
    out = np.empty((n, policy.n_actions))
    state = None
    for t in range(horizon):
        rows = np.where(idx[:, t] >= 0, idx[:, t], last)   # finished episodes repeat their end
        xt = x[rows]
        probs = policy.action_probabilities(xt, state)
        if probs.shape != (n_ep, policy.n_actions):
            raise ValueError(f"{policy.name}.action_probabilities returned shape {probs.shape}, "
                             f"expected {(n_ep, policy.n_actions)}.")
        live = idx[:, t] >= 0
        out[idx[live, t]] = probs[live]
        _, state = policy.predict(xt, state, np.full(n_ep, t == 0), deterministic=True)
    return out


# =============================================================================== OBD
def obd_dataset(policy: str = "random", campaign: str = "all") -> LoggedDataset:
    """The Open Bandit Dataset sample in per-decision form (no observations, one-step episodes).

    Each impression is a decision: ``action = item_id * 3 + (position - 1)`` (80 items x 3
    positions = 240 actions for ``campaign="all"``), ``pscore`` the logged
    ``propensity_score`` (the logging policy's probability of showing *that item* in *that
    position*), ``reward`` the click, ``episode = step index`` (impressions are treated as
    independent), plus ``item_id``, ``position`` and the four user features as extra columns.
    """
    from covercast.simulators.obd import load_obd

    df = load_obd(policy, campaign)
    n_items = int(df["item_id"].max()) + 1
    n = len(df)
    frame = pd.DataFrame({
        "episode": np.arange(n, dtype=np.int64), "step": np.zeros(n, dtype=np.int64),
        "action": (df["item_id"].to_numpy(np.int64) * 3
                   + df["position"].to_numpy(np.int64) - 1),
        "pscore": df["propensity_score"].to_numpy(np.float64),
        "reward": df["click"].to_numpy(np.float64),
        "terminated": np.zeros(n, dtype=bool), "truncated": np.ones(n, dtype=bool),
        "item_id": df["item_id"].to_numpy(np.int64),
        "position": df["position"].to_numpy(np.int64)})
    for c in ("user_feature_0", "user_feature_1", "user_feature_2", "user_feature_3"):
        frame[c] = df[c].to_numpy()
    meta = {"source": "obd", "obd_policy": policy, "obd_campaign": campaign,
            "n_items": n_items, "action_encoding": "item_id * 3 + (position - 1)"}
    return LoggedDataset(frame, n_items * 3, meta)
