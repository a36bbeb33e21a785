"""Property-based tests of environment arguments and actions (Hypothesis).

For any constructor argument a user may type -- a slot length that does not divide a day, a
negative or infinite horizon, a NaN history, a weight that is not a number -- an environment
either builds and then keeps its documented contract (observations in the observation space,
finite rewards, the documented horizon) or refuses at once with a ``ValueError``/``TypeError``
naming the argument. For any action, ``step`` either accepts it (exactly the actions of the
action space) or raises a ``ValueError`` that says "Invalid action" and the env id, and a
rejected action changes nothing: the episode goes on as if it had never been tried.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="hypothesis is in the `test` extra")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import covercast.envs  # noqa: E402,F401  (registers the ids)
from covercast.envs.vector import PopulationVectorEnv  # noqa: E402

SINGLE_USER = ["covercast/PushTiming-v0", "covercast/CoverStyle-v0", "covercast/PushSchedule-v0"]
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(
    st.integers(-3, 3000),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0, 0.5, 1, 7, 14, 60, 1440, 1e9, -1, "14", None, True]),
)


@SETTINGS
@given(env_id=st.sampled_from(SINGLE_USER), name=st.sampled_from(
    ["slot_minutes", "horizon_days", "history_days", "w_dwell", "w_optout"]), value=numbers)
# found by this test: a tiny positive horizon rounded to 0 days of pushes (an endless episode)
@example(env_id="covercast/CoverStyle-v0", name="horizon_days", value=1.6e-244)
@example(env_id="covercast/CoverStyle-v0", name="horizon_days", value=0.4)
def test_constructor_arguments_build_a_valid_env_or_name_themselves(env_id, name, value):
    try:
        env = gym.make(env_id, **{name: value})
    except (ValueError, TypeError) as e:
        assert f"`{name}`" in str(e) or name in str(e), str(e)
        return
    inner = env.unwrapped
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    steps = inner.horizon_steps
    assert isinstance(steps, int) and steps >= 1
    if name == "horizon_days" or name == "slot_minutes":
        per_day = 1440 / inner.slot_minutes if inner._steps_are_slots else len(inner.push_hours)
        assert steps == round(inner.horizon_days * per_day)
    for _ in range(min(steps, 30)):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and math.isfinite(reward)
        if terminated or truncated:
            break
    env.close()


def _scalar_actions(n: int):
    return st.one_of(
        st.integers(-5, n + 5), st.integers(-5, n + 5).map(np.int64),
        st.integers(-5, n + 5).map(np.int8), st.floats(allow_nan=True, width=64),
        st.integers(0, n).map(float), st.booleans(),
        st.sampled_from([None, "1", "push", b"1", [0], [[0]], (1, 0), {}, np.array([1]),
                         np.array([[1]]), np.array([0.0]), np.array([], dtype=np.int64)]))


def _trajectory(env_id: str, bad_at: int | None, bad_action, steps: int = 12) -> list:
    env = gym.make(env_id)
    env.reset(seed=7)
    env.action_space.seed(7)
    out = []
    for t in range(steps):
        if t == bad_at:
            with pytest.raises(ValueError, match="Invalid action"):
                env.step(bad_action)
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        out.append((obs.tobytes(), r, term, trunc))
        if term or trunc:
            break
    env.close()
    return out


@SETTINGS
@given(env_id=st.sampled_from(SINGLE_USER), data=st.data())
def test_actions_outside_the_space_are_refused_and_change_nothing(env_id, data):
    env = gym.make(env_id)
    env.reset(seed=0)
    n = int(env.action_space.n)
    action = data.draw(_scalar_actions(n))
    as_array = np.asarray(action, dtype=object) if not isinstance(action, dict) else None
    valid = (as_array is not None and as_array.size == 1 and as_array.ndim <= 1
             and not isinstance(as_array.reshape(-1)[0], (bool, np.bool_, float, str, bytes))
             and isinstance(as_array.reshape(-1)[0], (int, np.integer))
             and 0 <= int(as_array.reshape(-1)[0]) < n)
    if valid:
        obs, reward, *_ = env.step(action)
        assert env.observation_space.contains(obs) and math.isfinite(reward)
        return
    with pytest.raises(ValueError) as info:
        env.step(action)
    assert "Invalid action" in str(info.value) and env_id in str(info.value)
    env.close()
    at = data.draw(st.integers(0, 5))
    assert _trajectory(env_id, at, action) == _trajectory(env_id, None, None)


@SETTINGS
@given(data=st.data())
def test_vector_env_refuses_bad_action_batches_with_the_reason(data):
    env = PopulationVectorEnv(8, horizon_days=1)
    env.reset(seed=0)
    k = int(env.single_action_space.n)
    kind = data.draw(st.sampled_from(["shape", "dtype", "range", "ok"]))
    if kind == "shape":
        n = data.draw(st.integers(0, 12).filter(lambda m: m != 8))
        actions, needle = np.zeros(n, dtype=np.int64), "shape"
    elif kind == "dtype":
        actions, needle = data.draw(st.sampled_from(
            [np.zeros(8), np.full(8, np.nan), np.array(["0"] * 8)])), "integers"
    elif kind == "range":
        actions = np.zeros(8, dtype=np.int64)
        user = data.draw(st.integers(0, 7))
        actions[user] = data.draw(st.one_of(st.integers(-100, -1), st.integers(k, k + 100)))
        needle = f"for user {user}"
    else:
        actions = np.asarray(data.draw(st.lists(st.integers(0, k - 1), min_size=8, max_size=8)))
        obs, rewards, term, trunc, info = env.step(actions)
        assert env.single_observation_space.contains(obs[0]) and np.isfinite(rewards).all()
        return
    with pytest.raises(ValueError, match=needle):
        env.step(actions)
    obs, rewards, *_ = env.step(np.zeros(8, dtype=np.int64))  # still usable
    assert np.isfinite(obs).all() and np.isfinite(rewards).all()
