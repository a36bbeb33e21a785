"""A swapped-in response model reaches every environment: the three single-user envs (the
compiled one-user stepper) and the population vector env (the SimPy engine)."""

from __future__ import annotations

import numpy as np
import pytest

from covercast.envs import make, make_vec
from covercast.simulators.response import ResponseModel


# A user who opens every push seen, dwells exactly a minute, likes it, answers every survey
# with a 5 and never opts out.
def always_open(intercept, rel_activity, match, quality, topic_affinity, fatigue, delay_h,
                open_model):
    return 1.0 + 0.0 * intercept


def minute(dwell_mu, dwell_sigma, rel, z, dwell_model):
    return 60.0 + 0.0 * z


def only_likes(rel, engagement_model):
    return 1.0 + 0.0 * rel, 0.0 * rel, 0.0 * rel


def always_asked(rel, dwell_s, fatigue, model):
    return 1.0 + 0.0 * rel


def top_score(rel, dwell_s, fatigue, noise, model):
    return 5 + 0 * (noise > 0.0)


def never_out(fatigue, opt_out_model):
    return 0.0 * fatigue


CUSTOM = ResponseModel(open_probability=always_open, dwell_seconds=minute,
                       engagement_probabilities=only_likes, survey_probability=always_asked,
                       satisfaction_score=top_score, opt_out_probability=never_out)

ENVS = {"covercast/PushTiming-v0": 1, "covercast/CoverStyle-v0": 0,
        "covercast/PushSchedule-v0": 2}


def check(info: dict) -> None:
    opened = np.asarray(info["opened"])
    assert np.all(np.asarray(info["dwell_s"]) == 60.0 * opened)
    assert np.array_equal(np.asarray(info["likes"]), opened)
    assert np.all(np.asarray(info["shares"]) == 0) and np.all(np.asarray(info["comments"]) == 0)
    assert np.array_equal(np.asarray(info["surveys"]), opened)
    assert not np.any(info["opted_out"])


def rollout(env, action, steps: int, custom: bool) -> tuple[int, int]:
    """Opens and pushes over ``steps`` steps of one action (checking each step's info when
    ``custom``)."""
    env.reset(seed=0)
    opens = pushes = 0
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(action)
        if custom:
            check(info)
            assert not np.any(terminated)
        opens += int(np.sum(info["opened"]))
        pushes += int(np.sum(info["pushed"]))
        if np.all(terminated | truncated):
            env.reset()
    return opens, pushes


@pytest.mark.parametrize("env_id", list(ENVS))
def test_a_custom_response_model_reaches_the_single_user_envs(env_id):
    env = make(env_id, response=CUSTOM, params="high-fatigue-v1")
    assert env.unwrapped.response is CUSTOM
    opens, pushes = rollout(env, ENVS[env_id], 200, custom=True)
    assert env.unwrapped._last_info.get("satisfaction", 5.0) == 5.0
    # every push seen is opened: many times the default model's opens for the same actions
    d_opens, d_pushes = rollout(make(env_id, params="high-fatigue-v1"), ENVS[env_id], 200,
                                custom=False)
    assert pushes >= 40 and opens > 4 * max(d_opens, 1)


def test_a_custom_response_model_reaches_the_vector_env():
    env = make_vec(200, response=CUSTOM, params="high-fatigue-v1", horizon_days=2)
    assert env.unwrapped.response is CUSTOM
    env.reset(seed=0)
    for _ in range(6):
        *_, info = env.step(np.full(200, 2))
        check(info)
        assert np.all(info["satisfaction"][info["_satisfaction"]] == 5.0)
    opens, pushes = rollout(env, np.full(200, 2), 24, custom=True)
    d_opens, _ = rollout(make_vec(200, params="high-fatigue-v1", horizon_days=2),
                         np.full(200, 2), 24, custom=False)
    assert pushes > 0 and opens > 4 * max(d_opens, 1)


def test_a_response_model_must_be_one():
    with pytest.raises(ValueError, match="ResponseModel"):
        make("covercast/PushSchedule-v0", response=always_open)
    with pytest.raises(ValueError, match="must be a function"):
        ResponseModel(open_probability=0.5)
