"""The agent interface: action layouts, observation decoding, argument checks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import covercast  # noqa: F401  (registers the ids)
from covercast.agents import ActionLayout, RandomAgent, StaticScheduler
from covercast.agents.base import (
    as_episode_start,
    as_obs_batch,
    hour_of_day,
    hours_since_push,
    info_array,
    make_rng,
    weekday_of,
)
from covercast.envs.observation import OBS_DIM


@pytest.mark.parametrize("mode,n_actions", [("schedule", 6), ("timing", 2), ("style", 5)])
def test_layout_sizes(mode, n_actions):
    assert ActionLayout(mode, 5).n_actions == n_actions


def test_schedule_layout_round_trip():
    lay = ActionLayout("schedule", 5)
    push = np.array([False, True, True, False])
    style = np.array([3, 0, 4, 1])
    a = lay.encode(push, style)
    np.testing.assert_array_equal(a, [0, 1, 5, 0])
    p, s = lay.decode(a)
    np.testing.assert_array_equal(p, push)
    np.testing.assert_array_equal(s[push], style[push])
    assert np.all(s[~push] == -1)


def test_timing_and_style_layouts():
    t = ActionLayout("timing", 5)
    np.testing.assert_array_equal(t.encode([True, False], [2, 2]), [1, 0])
    push, style = t.decode([1, 0])
    np.testing.assert_array_equal(push, [True, False])
    assert np.all(style == -1)                      # the env picks the cover
    s = ActionLayout("style", 5)
    np.testing.assert_array_equal(s.encode([True, True], [4, 0]), [4, 0])
    push, style = s.decode([4, 0])
    assert push.all() and list(style) == [4, 0]


def test_layout_probabilities_sum_to_one():
    p_push = np.array([0.0, 0.3, 1.0])
    sp = np.array([[0.2, 0.2, 0.2, 0.2, 0.2], [1, 0, 0, 0, 0], [0, 0, 0.5, 0.5, 0]])
    for mode in ("schedule", "timing", "style"):
        pr = ActionLayout(mode, 5).probabilities(p_push, sp)
        np.testing.assert_allclose(pr.sum(axis=1), 1.0)
    pr = ActionLayout("schedule", 5).probabilities(p_push, sp)
    np.testing.assert_allclose(pr[1], [0.7, 0.3, 0, 0, 0, 0])


def test_layout_errors_name_the_value():
    with pytest.raises(ValueError, match="'push'"):
        ActionLayout("push", 5)
    with pytest.raises(ValueError, match="n_styles"):
        ActionLayout("schedule", 0)
    with pytest.raises(ValueError, match=r"\[0, 5\]"):
        ActionLayout("schedule", 5).decode([6])
    with pytest.raises(ValueError, match="Style indices"):
        ActionLayout("schedule", 5).encode([True], [5])


@pytest.mark.parametrize("env_id,mode,n", [("covercast/PushSchedule-v0", "schedule", 6),
                                           ("covercast/PushTiming-v0", "timing", 2),
                                           ("covercast/CoverStyle-v0", "style", 5)])
def test_layout_from_env(env_id, mode, n):
    env = gym.make(env_id)
    lay = ActionLayout.from_env(env)
    assert (lay.mode, lay.n_actions) == (mode, n)
    agent = RandomAgent.for_env(env, seed=0)
    assert agent.n_actions == env.action_space.n
    env.close()


def test_layout_from_env_refuses_a_wrong_mode():
    env = gym.make("covercast/PushSchedule-v0")
    with pytest.raises(ValueError, match="actions"):
        ActionLayout.from_env(env, mode="timing")
    env.close()


def test_clock_is_read_back_from_the_observation(obs_factory):
    x = np.stack([obs_factory(h, wd) for h in (0.0, 7.0, 13.5, 23.0) for wd in (0, 3, 6)])
    hours = np.repeat([0.0, 7.0, 13.5, 23.0], 3)
    np.testing.assert_allclose(hour_of_day(x.astype(np.float64)), hours, atol=1e-4)
    np.testing.assert_array_equal(weekday_of(x.astype(np.float64)), np.tile([0, 3, 6], 4))


def test_hours_since_push_decoding(obs_factory):
    x = np.stack([obs_factory(h_since_push=h) for h in (1.0, 4.0, 100.0, np.inf)])
    got = hours_since_push(x.astype(np.float64))
    np.testing.assert_allclose(got[:3], [1.0, 4.0, 100.0], rtol=1e-5)
    assert np.isinf(got[3])


def test_obs_batch_shapes_and_errors():
    x, single = as_obs_batch(np.zeros(OBS_DIM, dtype=np.float32))
    assert single and x.shape == (1, OBS_DIM) and x.dtype == np.float64
    x, single = as_obs_batch(np.zeros((3, OBS_DIM)))
    assert not single and x.shape == (3, OBS_DIM)
    with pytest.raises(ValueError, match=r"\(7,\)"):
        as_obs_batch(np.zeros(7))
    with pytest.raises(ValueError, match="dtype"):
        as_obs_batch(np.array(["a"] * OBS_DIM))
    with pytest.raises(ValueError, match="episode_start"):
        as_episode_start(np.zeros(2, bool), 3)
    np.testing.assert_array_equal(as_episode_start(True, 2), [True, True])


def test_info_array_scalar_and_vector():
    assert info_array({"opened": 1}, "opened", 1).tolist() == [1.0]
    assert info_array({"opened": np.array([0, 2])}, "opened", 2).tolist() == [0.0, 2.0]
    assert info_array({}, "opened", 2, default=-1).tolist() == [-1.0, -1.0]
    with pytest.raises(ValueError, match="opened"):
        info_array({"opened": np.zeros(3)}, "opened", 2)


def test_seeds_are_checked():
    with pytest.raises(ValueError, match="-1"):
        make_rng(-1)
    with pytest.raises(ValueError, match="seed"):
        RandomAgent(seed="abc")
    a = make_rng(np.random.SeedSequence(4)).random()
    assert a == make_rng(4).random()


def test_name_and_config():
    agent = StaticScheduler(name="control")
    assert agent.name == "control"
    cfg = agent.config()
    assert cfg["class"] == "StaticScheduler" and cfg["hours"] == [8, 20]
    assert "StaticScheduler(" in repr(agent)
    with pytest.raises(ValueError, match="name"):
        StaticScheduler(name="")
