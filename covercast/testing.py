"""``check_env``: Gymnasium's checker plus covercast's domain invariants, for any covercast env.

Use it on your own variants (a new reward function, fitted parameters, a wrapper)::

    from covercast.testing import check_env
    check_env(gym.make("covercast/PushSchedule-v0", params=my_params))

It raises :class:`EnvCheckError` (an ``AssertionError``) naming the first broken invariant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import VectorEnv

from covercast._io import check_int
from covercast.envs.observation import OBS_DIM, OBS_INDEX, PROFILE_SLICE
from covercast.envs.rewards import RESPONSE_KEYS

__all__ = ["EnvCheckError", "check_env"]

_COUNT_KEYS = ("pushed", "blocked", "opened", "likes", "shares", "comments", "surveys",
               "sessions")


class EnvCheckError(AssertionError):
    """A covercast environment broke one of its invariants."""


def _fail(msg: str) -> None:
    raise EnvCheckError(msg)


def check_env(env: gym.Env | VectorEnv, *, seed: int = 0, n_steps: int = 300,
              skip_gymnasium: bool = False) -> None:
    """Check a covercast environment (single-user or the population vector env).

    Runs, in order:

    1. Gymnasium's :func:`gymnasium.utils.env_checker.check_env` on ``env.unwrapped``
       (single-user envs only; ``skip_gymnasium=True`` skips it);
    2. a random-action rollout of ``n_steps`` steps (resetting when an episode ends) checking
       that every observation lies in the observation space, is finite and is self-consistent
       (the observed hour-of-day profile sums to 1, the 7-day counts are at least the 24 h
       ones); that ``info`` holds the responses (:data:`~covercast.envs.rewards.
       RESPONSE_KEYS`) with non-negative counts, opens never exceeding what was pushed before,
       a satisfaction score in [1, 5] exactly when a survey was answered; that the reward
       equals ``env.unwrapped.reward_fn(info)``; that an opted-out user terminates the episode
       and receives no further push (a single-user env refuses to step; the vector env
       replaces the user, and no push is ever blocked);
    3. same-seed determinism: two rollouts with the same seed and actions give identical
       observations, rewards, ends and infos (NaN equal to NaN).

    Parameters
    ----------
    env : gymnasium.Env or gymnasium.vector.VectorEnv
        A covercast environment, wrapped or not (e.g. from ``gym.make``).
    seed : int
        Seed of the rollouts and of the random actions.
    n_steps : int
        Steps of each rollout.
    skip_gymnasium : bool
        Skip Gymnasium's own checker.

    Raises
    ------
    EnvCheckError
        Naming the broken invariant, the step and the values.
    """
    check_int(n_steps, "n_steps")
    if isinstance(env, VectorEnv):
        first = _rollout_vector(env, seed, n_steps, check=True)
        second = _rollout_vector(env, seed, n_steps, check=False)
    else:
        if not skip_gymnasium:
            gym_check_env(env.unwrapped, skip_render_check=True)
        first = _rollout_single(env, seed, n_steps, check=True)
        second = _rollout_single(env, seed, n_steps, check=False)
    _compare(first, second)


# ------------------------------------------------------------------------------ single user
def _check_obs(obs: np.ndarray, space: gym.Space, where: str) -> None:
    if not isinstance(obs, np.ndarray) or obs.dtype != np.float32:
        _fail(f"{where}: the observation must be a float32 array, got "
              f"{type(obs).__name__} {getattr(obs, 'dtype', '')}.")
    if not np.all(np.isfinite(obs)):
        _fail(f"{where}: non-finite observation values at {np.argwhere(~np.isfinite(obs))[:3]}.")
    if not space.contains(obs):
        low, high = space.low, space.high
        bad = np.argwhere((obs < low) | (obs > high))[:3]
        _fail(f"{where}: observation outside the observation space at {bad.tolist()}.")
    rows = obs.reshape(-1, OBS_DIM)
    prof = rows[:, PROFILE_SLICE].sum(axis=1)
    if not np.allclose(prof, 1.0, atol=1e-4):
        _fail(f"{where}: the observed hour-of-day profile must sum to 1, got {prof[:3]}.")
    for short, long in (("pushes_24h", "pushes_7d"), ("opens_24h", "opens_7d"),
                        ("dwell_min_24h", "dwell_min_7d")):
        if np.any(rows[:, OBS_INDEX[short]] > rows[:, OBS_INDEX[long]] + 1e-3):
            _fail(f"{where}: `{short}` exceeds `{long}`.")


def _check_responses(info: Mapping[str, Any], where: str, vector: bool) -> None:
    missing = [k for k in RESPONSE_KEYS if k != "satisfaction" and k not in info]
    if missing:
        _fail(f"{where}: info lacks the response key(s) {missing}.")
    for k in _COUNT_KEYS:
        if np.any(np.asarray(info[k]) < 0):
            _fail(f"{where}: negative count in info[{k!r}].")
    if np.any(np.asarray(info["dwell_s"]) < 0):
        _fail(f"{where}: negative dwell.")
    if np.any((np.asarray(info["opened"]) == 0) & (np.asarray(info["dwell_s"]) > 0)):
        _fail(f"{where}: dwell without an open.")
    for k in ("likes", "shares", "comments", "surveys"):
        if np.any(np.asarray(info[k]) > np.asarray(info["opened"])):
            _fail(f"{where}: more {k} than opens.")
    surveys = np.asarray(info["surveys"])
    if vector:
        sat = np.asarray(info["satisfaction"], dtype=np.float64)
        has = np.isfinite(sat)
        if np.any(has != (surveys > 0)) or np.any(info["_satisfaction"] != (surveys > 0)):
            _fail(f"{where}: satisfaction must be given exactly where a survey was answered.")
        if np.any((sat[has] < 1) | (sat[has] > 5)):
            _fail(f"{where}: satisfaction outside [1, 5].")
    else:
        if ("satisfaction" in info) != bool(surveys > 0):
            _fail(f"{where}: info['satisfaction'] must be present exactly when surveys > 0.")
        if "satisfaction" in info and not 1 <= info["satisfaction"] <= 5:
            _fail(f"{where}: satisfaction {info['satisfaction']!r} outside [1, 5].")
    pushed_style = np.asarray(info["style"]) >= 0
    if np.any(pushed_style != (np.asarray(info["cover"]) >= 0)):
        _fail(f"{where}: `style` and `cover` disagree about whether a push was made.")


def _check_reward(reward: Any, info: Mapping[str, Any], reward_fn: Any, where: str) -> None:
    if reward_fn is None:
        return
    expected = np.asarray(reward_fn(info), dtype=np.float64)
    if not np.allclose(np.asarray(reward, dtype=np.float64), expected, rtol=1e-9, atol=1e-9):
        _fail(f"{where}: reward {reward!r} differs from reward_fn(info) = {expected!r}.")


def _rollout_single(env: gym.Env, seed: int, n_steps: int, check: bool) -> list[Any]:
    base = env.unwrapped
    reward_fn = getattr(base, "reward_fn", None)
    rng = np.random.default_rng(seed)
    n_actions = int(env.action_space.n)
    trace: list[Any] = []
    obs, info = env.reset(seed=seed)
    trace.append(("reset", obs.copy(), dict(info)))
    opened_total = pushed_total = 0
    episode = 0
    for t in range(n_steps):
        where = f"step {t} (episode {episode})"
        if check:
            _check_obs(obs, env.observation_space, where)
        action = int(rng.integers(n_actions))
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((action, obs.copy(), float(reward), bool(terminated), bool(truncated),
                      dict(info)))
        if check:
            _check_responses(info, where, vector=False)
            _check_reward(reward, info, reward_fn, where)
            pushed_total += int(info["pushed"])
            opened_total += int(info["opened"])
            if opened_total > pushed_total:
                _fail(f"{where}: {opened_total} opens but only {pushed_total} pushes so far.")
            if bool(info["opted_out"]) != bool(terminated):
                _fail(f"{where}: terminated={terminated} but info['opted_out']="
                      f"{info['opted_out']} (an opt-out, and only an opt-out, terminates).")
            if info["blocked"]:
                _fail(f"{where}: a push was sent to a user who had opted out.")
        if terminated:
            if check:
                try:
                    env.unwrapped.step(action)
                except ResetNeeded:
                    pass
                else:
                    _fail(f"{where}: the env accepted a step after the user opted out (a push "
                          "could reach an opted-out user); it must raise ResetNeeded.")
            obs, info = env.reset()
            opened_total = pushed_total = 0
            episode += 1
            trace.append(("reset", obs.copy(), dict(info)))
        elif truncated:
            obs, info = env.reset()
            opened_total = pushed_total = 0
            episode += 1
            trace.append(("reset", obs.copy(), dict(info)))
    if check:
        _check_obs(obs, env.observation_space, f"step {n_steps}")
    return trace


# ------------------------------------------------------------------------------ vector
def _rollout_vector(env: VectorEnv, seed: int, n_steps: int, check: bool) -> list[Any]:
    base = env.unwrapped if hasattr(env, "unwrapped") else env
    reward_fn = getattr(base, "reward_fn", None)
    rng = np.random.default_rng(seed)
    n_actions = int(env.single_action_space.n)
    n = env.num_envs
    obs, info = env.reset(seed=seed)
    trace: list[Any] = [("reset", obs.copy())]
    for t in range(n_steps):
        where = f"step {t}"
        if check:
            _check_obs(obs, env.observation_space, where)
        actions = rng.integers(n_actions, size=n)
        obs, reward, terminated, truncated, info = env.step(actions)
        trace.append((actions, obs.copy(), reward.copy(), terminated.copy(), truncated.copy(),
                      {k: v for k, v in info.items() if not k.startswith("final")}))
        if check:
            _check_responses(info, where, vector=True)
            _check_reward(reward, info, reward_fn, where)
            if np.any(np.asarray(info["blocked"]) > 0):
                _fail(f"{where}: pushes were sent to users who had opted out.")
            if np.any(np.asarray(info["opted_out"]) != terminated):
                _fail(f"{where}: terminations must be exactly the users who opted out.")
            done = terminated | truncated
            if np.any(done):
                if not np.array_equal(info.get("_final_obs"), done):
                    _fail(f"{where}: info['_final_obs'] must mark the ended episodes.")
            hidden = base.hidden_state() if hasattr(base, "hidden_state") else None
            if hidden is not None and np.any(hidden["opted_out"]):
                _fail(f"{where}: opted-out users were not replaced (same-step autoreset).")
            pushed = np.asarray(info["pushed"]) > 0
            asked = (actions > 0) & ~np.asarray(info["budget_dropped"])
            if np.any(pushed != asked):
                _fail(f"{where}: delivered pushes differ from the actions minus the dropped.")
    if check:
        _check_obs(obs, env.observation_space, f"step {n_steps}")
    return trace


# ------------------------------------------------------------------------------ determinism
def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k])
                                                                    for k in a)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.dtype.kind == "f":
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(np.array_equal(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _compare(first: list[Any], second: list[Any]) -> None:
    if len(first) != len(second):
        _fail(f"Same-seed rollouts differ in length ({len(first)} vs {len(second)} entries).")
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        if not _equal(a, b):
            _fail(f"Same-seed rollouts differ at entry {i}: {a!r:.300} vs {b!r:.300}.")
