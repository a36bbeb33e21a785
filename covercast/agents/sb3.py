"""Library references: stable-baselines3 PPO on a stacked observation history, and sb3-contrib
RecurrentPPO (LSTM), trained on the same vector envs as GRU-PPO and wrapped as covercast agents.

* :class:`SB3VecEnv` adapts a Gymnasium vector env in same-step autoreset mode (the population
  vector env, or the ``SyncVectorEnv`` of :func:`covercast.agents.gru_ppo.make_train_env`) to
  SB3's ``VecEnv`` (``terminal_observation``, ``TimeLimit.truncated`` and Monitor-style
  ``episode`` entries in the infos of the rows whose episode ended).
* :func:`train_sb3` trains ``"ppo"`` (MLP on the last ``n_stack`` observations, SB3's
  ``VecFrameStack``) or ``"recurrent-ppo"`` on the env of a :class:`~covercast.agents.gru_ppo.
  GRUPPOConfig` (same env, same users, same seed split) and returns an :class:`SB3Agent`.
* :class:`SB3Agent` answers the common ``predict``: its ``state`` is the LSTM state (tuple of
  arrays) for RecurrentPPO, the stacked history ``(N, n_stack * 40)`` for PPO; ``episode_start``
  resets it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from covercast._io import atomic_write, atomic_write_text, check_int
from covercast.agents.base import PolicyAgent, SeedLike, as_episode_start, as_obs_batch
from covercast.agents.gru_ppo import GRUPPOConfig, make_train_env, set_push_prior
from covercast.envs.observation import OBS_DIM
from covercast.simulators.params import PopulationParams

__all__ = ["SB3_ALGOS", "SB3VecEnv", "SB3Agent", "train_sb3", "set_initial_push_prob"]

#: The library agents: ``ppo`` (stable-baselines3) and ``recurrent-ppo`` (sb3-contrib).
SB3_ALGOS: tuple[str, ...] = ("ppo", "recurrent-ppo")


def _import_sb3(algo: str) -> Any:
    if algo not in SB3_ALGOS:
        raise ValueError(f"`algo` must be one of {list(SB3_ALGOS)}, got {algo!r}.")
    try:
        if algo == "ppo":
            from stable_baselines3 import PPO
            return PPO
        from sb3_contrib import RecurrentPPO
        return RecurrentPPO
    except ImportError as e:
        raise ImportError(f"{algo} needs stable-baselines3 and sb3-contrib: pip install "
                          f"'covercast[rl]' ({e}).") from e


def _vec_env_base() -> type:
    from stable_baselines3.common.vec_env import VecEnv
    return VecEnv


class SB3VecEnv(_vec_env_base()):  # type: ignore[misc]
    """A Gymnasium same-step-autoreset vector env seen as a stable-baselines3 ``VecEnv``.

    Parameters
    ----------
    venv : gymnasium.vector.VectorEnv
        With ``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP`` (the population vector
        env; ``SyncVectorEnv(..., autoreset_mode=SAME_STEP)``).
    seed : int
        Seed of the first reset (SB3's ``seed()`` overrides it).
    """

    def __init__(self, venv: Any, seed: int = 0) -> None:
        from gymnasium.vector import AutoresetMode

        mode = getattr(venv, "autoreset_mode", None) or venv.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"SB3VecEnv needs a vector env in same-step autoreset mode, got "
                             f"{mode!r}; build it with autoreset_mode=AutoresetMode.SAME_STEP.")
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._next_seed: int | None = int(seed)
        self._actions: np.ndarray | None = None
        self._ret = np.zeros(self.num_envs)
        self._len = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if getattr(self, "_seeds", None) and self._seeds[0] is not None \
            else self._next_seed
        obs, _ = self.venv.reset(seed=seed)
        self._next_seed = None
        self._reset_seeds()
        self._ret[:] = 0.0
        self._len[:] = 0
        return np.asarray(obs, dtype=np.float32)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).astype(np.int64).reshape(self.num_envs)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, r, term, trunc, info = self.venv.step(self._actions)
        term = np.asarray(term, dtype=bool)
        trunc = np.asarray(trunc, dtype=bool)
        r = np.asarray(r, dtype=np.float32)
        dones = term | trunc
        self._ret += r
        self._len += 1
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            fo = info["final_obs"]
            for i in np.flatnonzero(dones):
                infos[i] = {"terminal_observation": np.asarray(fo[i], dtype=np.float32),
                            "TimeLimit.truncated": bool(trunc[i] and not term[i]),
                            "episode": {"r": float(self._ret[i]), "l": int(self._len[i]),
                                        "t": 0.0}}
            self._ret[dones] = 0.0
            self._len[dones] = 0
        return np.asarray(obs, dtype=np.float32), r, dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.venv, attr_name, None)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None,
                   **kwargs: Any) -> list[Any]:
        out = getattr(self.venv, method_name)(*args, **kwargs)
        return [out] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))


class SB3Agent(PolicyAgent):
    """A trained stable-baselines3 PPO / sb3-contrib RecurrentPPO model as a covercast agent.

    Parameters
    ----------
    model : stable_baselines3.PPO or sb3_contrib.RecurrentPPO
        The trained model.
    algo : {"ppo", "recurrent-ppo"}
        Which one it is.
    n_stack : int
        Observations stacked for ``ppo`` (ignored for ``recurrent-ppo``).
    mode, n_styles, seed, name
        As for :class:`~covercast.agents.base.Agent`.
    """

    default_name = "sb3"

    def __init__(self, model: Any, algo: str, n_stack: int = 4, mode: str = "schedule",
                 n_styles: int = 5, *, seed: SeedLike = None, name: str | None = None) -> None:
        super().__init__(mode, n_styles, seed=seed, name=name or algo)
        if algo not in SB3_ALGOS:
            raise ValueError(f"`algo` must be one of {list(SB3_ALGOS)}, got {algo!r}.")
        check_int(n_stack, "n_stack")
        n = getattr(model.action_space, "n", None)
        if n is None or int(n) != self.n_actions:
            raise ValueError(f"The model has action space {model.action_space} but the {mode!r} "
                             f"layout needs Discrete({self.n_actions}).")
        self.model, self.algo, self.n_stack = model, algo, int(n_stack)
        model.policy.set_training_mode(False)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "algo": self.algo, "n_stack": self.n_stack}

    def _stack(self, x: np.ndarray, state: Any, start: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if state is None:
            hist = np.zeros((n, self.n_stack * OBS_DIM), dtype=np.float32)
        else:
            hist = np.asarray(state, dtype=np.float32)
            if hist.shape != (n, self.n_stack * OBS_DIM):
                raise ValueError(f"`state` must be the stacked history returned by predict, "
                                 f"shape ({n}, {self.n_stack * OBS_DIM}), got {hist.shape}.")
            hist = hist.copy()
            hist[start] = 0.0
        hist = np.roll(hist, -OBS_DIM, axis=1)   # VecFrameStack: oldest first, newest last
        hist[:, -OBS_DIM:] = x
        return hist

    def _probs(self, model_obs: np.ndarray, lstm_state: Any, start: np.ndarray) -> np.ndarray:
        import torch

        pol = self.model.policy
        with torch.no_grad():
            obs_t = torch.as_tensor(model_obs, dtype=torch.float32)
            if self.algo == "ppo":
                dist = pol.get_distribution(obs_t)
            else:
                h, c = lstm_state
                st = (torch.as_tensor(h, dtype=torch.float32),
                      torch.as_tensor(c, dtype=torch.float32))
                dist, _ = pol.get_distribution(obs_t, st, torch.as_tensor(start,
                                                                           dtype=torch.float32))
            p = dist.distribution.probs.double().numpy()
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[int | np.ndarray, Any]:
        x, single = as_obs_batch(obs)
        start = as_episode_start(episode_start, x.shape[0])
        if self.algo == "ppo":
            hist = self._stack(x, state, start)
            p = self._probs(hist, None, start)
            new_state: Any = hist
        else:
            a_sb3, new_state = self.model.predict(x, state=state, episode_start=start,
                                                  deterministic=True)
            p = self._probs(x, self._lstm_or_zeros(state, x.shape[0]), start)
        if deterministic:
            a = p.argmax(axis=1)
        else:
            u = self._rng.random(x.shape[0])
            a = np.minimum((p.cumsum(axis=1) < u[:, None]).sum(axis=1), self.n_actions - 1)
        a = a.astype(np.int64)
        return (int(a[0]) if single else a), new_state

    def _lstm_or_zeros(self, state: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        if state is not None:
            return state
        shape = self.model.policy.lstm_hidden_state_shape
        z = np.zeros((shape[0], n, shape[2]), dtype=np.float32)
        return z, z

    def action_probabilities(self, obs: Any, state: Any = None) -> np.ndarray:
        x, _ = as_obs_batch(obs)
        start = np.zeros(x.shape[0], dtype=bool)
        if self.algo == "ppo":
            return self._probs(self._stack(x, state, start), None, start)
        return self._probs(x, self._lstm_or_zeros(state, x.shape[0]), start)

    @classmethod
    def load(cls, path: str | os.PathLike, *, seed: SeedLike = None,
             trust_pickle: bool = False) -> SB3Agent:
        """An agent from a folder written by :func:`train_sb3` (``model.zip`` +
        ``agent.json``).

        SB3 unpickles ``model.zip`` with cloudpickle, and unpickling can run any code the file
        holds: a downloaded run folder could execute code on load. The load is therefore
        refused (``ValueError``) unless ``trust_pickle=True``, for folders you made or trust.
        GRU-PPO checkpoints are safetensors and need no such trust.
        """
        d = Path(path)
        if not (d / "agent.json").is_file():
            raise FileNotFoundError(f"No SB3 agent in {d} (agent.json missing).")
        if not trust_pickle:
            raise ValueError(f"{d / 'model.zip'} is an SB3 model, which SB3 loads with "
                             "cloudpickle: unpickling can run any code the file holds. Load "
                             "it only if you made or trust it: pass trust_pickle=True "
                             "(CLI: --trust-pickle).")
        meta = json.loads((d / "agent.json").read_text())
        model = _import_sb3(meta["algo"]).load(str(d / "model.zip"), device="cpu")
        return cls(model, meta["algo"], meta["n_stack"], meta["mode"], meta["n_styles"],
                   seed=seed)


def train_sb3(algo: str, config: GRUPPOConfig, *, params: PopulationParams | None = None,
              n_stack: int = 4, out: str | os.PathLike | None = None, progress: bool = True,
              callback: Any = None, **model_kwargs: Any) -> SB3Agent:
    """Train stable-baselines3 ``ppo`` or sb3-contrib ``recurrent-ppo`` on ``config``'s env.

    ``config`` supplies the env (``env_id``, ``num_envs``, ``horizon_days``, ``env_kwargs``),
    ``total_steps``, ``seed``, ``num_steps`` (SB3's ``n_steps``; default 128), ``gamma``,
    ``gae_lambda``, ``learning_rate``, ``ent_coef``, ``update_epochs``, ``torch_threads`` and
    ``initial_push_prob`` (as for GRU-PPO, the untrained policy pushes with this probability
    per slot: the action head's bias is set accordingly; None leaves SB3's uniform start);
    ``callback`` is SB3's ``learn`` callback (a ``BaseCallback``, a list of them, or None);
    ``model_kwargs`` go to the SB3 constructor. With ``out``, writes ``model.zip``,
    ``agent.json``, ``config.json`` and SB3's training log ``progress.csv`` there.
    """
    import torch

    klass = _import_sb3(algo)
    config.validate()
    torch.set_num_threads(config.torch_threads)
    venv = SB3VecEnv(make_train_env(config, params), seed=config.seed)
    env: Any = venv
    if algo == "ppo":
        from stable_baselines3.common.vec_env import VecFrameStack
        env = VecFrameStack(venv, n_stack=n_stack)
    n_steps = int(config.num_steps or 128)
    batch = n_steps * config.num_envs
    kw = dict(n_steps=n_steps, batch_size=max(batch // config.num_minibatches, 2),
              n_epochs=config.update_epochs, gamma=config.gamma, gae_lambda=config.gae_lambda,
              learning_rate=config.learning_rate, ent_coef=config.ent_coef,
              clip_range=config.clip_coef, vf_coef=config.vf_coef,
              max_grad_norm=config.max_grad_norm, seed=config.seed, device="cpu", verbose=0)
    kw.update(model_kwargs)
    policy = "MlpLstmPolicy" if algo == "recurrent-ppo" else "MlpPolicy"
    model = klass(policy, env, **kw)
    mode = {"covercast/PushTiming-v0": "timing",
            "covercast/CoverStyle-v0": "style"}.get(config.env_id, "schedule")
    if config.initial_push_prob is not None and mode in ("schedule", "timing"):
        set_initial_push_prob(model, config.initial_push_prob)
    model.set_logger(_logger(out))
    # SB3's progress bar needs `rich` (its `extra`); without it, train without a bar
    import importlib.util

    bar = bool(progress) and importlib.util.find_spec("rich") is not None
    model.learn(total_timesteps=config.total_steps, progress_bar=bar, callback=callback)
    n_actions = int(venv.action_space.n)
    n_styles = n_actions - 1 if mode == "schedule" else (
        n_actions if mode == "style" else len((params or _default()).styles))
    agent = SB3Agent(model, algo, n_stack, mode, n_styles, seed=config.seed)
    if out is not None:
        d = Path(out)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write(d / "model.zip", lambda tmp: model.save(str(tmp)))
        atomic_write_text(d / "agent.json", json.dumps(
            {"algo": algo, "n_stack": n_stack, "mode": mode, "n_styles": n_styles}, indent=2))
        atomic_write_text(d / "config.json", json.dumps(config.to_dict(), indent=2))
        if params is not None:
            params.save(d / "params.json")
    return agent


def _logger(out: str | os.PathLike | None) -> Any:
    """SB3's training log: ``progress.csv`` in ``out``, or nowhere (SB3's default logger
    would create an empty ``SB3-<date>`` folder in the system's temp directory per run)."""
    from stable_baselines3.common.logger import CSVOutputFormat, Logger

    if out is None:
        return Logger(folder=None, output_formats=[])
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    return Logger(folder=str(d), output_formats=[CSVOutputFormat(str(d / "progress.csv"))])


def set_initial_push_prob(model: Any, p_push: float) -> None:
    """Set an SB3 model's action-head bias so that the untrained policy chooses action 0 (no
    push) with probability ``1 - p_push`` and each push action with ``p_push / (A - 1)``.

    SB3 initialises the action head with orthogonal weights of gain 0.01, so the bias decides
    the initial distribution (the same start as :meth:`covercast.agents.gru_ppo.GRUPolicy.
    set_initial_push_prob`; a uniform start pushes in 5 of 6 hourly slots and most users opt
    out before anything is learned).
    """
    if not (isinstance(p_push, (int, float)) and 0 < p_push < 1):
        raise ValueError(f"`p_push` must be in (0, 1), got {p_push!r}.")
    set_push_prior(model.policy.action_net.bias, p_push)


def _default() -> PopulationParams:
    from covercast.simulators.params import default_params
    return default_params()
