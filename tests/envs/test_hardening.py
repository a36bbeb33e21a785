"""Issue 18 hardening of the environments: the registered ids give the documented horizon for
any slot length."""

from __future__ import annotations

import gymnasium as gym
import pytest

import covercast  # noqa: F401  (registers the ids)
from covercast.envs import ENV_IDS, make
from covercast.envs.registration import DEFAULT_HORIZON_DAYS
from covercast.simulators.params import default_params

#: no opt-outs, so every episode runs to its horizon
NO_OPT_OUT = default_params().with_parts(opt_out={"base_hazard": 0.0, "fatigue_coef": 0.0})


def expected_steps(env_id: str, slot_minutes: int, days: float = DEFAULT_HORIZON_DAYS,
                   pushes_per_day: int = 2) -> int:
    """14 days of decisions, counted by hand: slots, or pushes for CoverStyle."""
    if env_id == "covercast/CoverStyle-v0":
        return int(days) * pushes_per_day
    return int(days * 24 * 60 // slot_minutes)


def episode_length(env: gym.Env, seed: int) -> tuple[int, float]:
    """Steps of one episode under random actions, and the simulated hours it spanned."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    t0 = env.unwrapped.population.now
    n = 0
    while True:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        n += 1
        assert not terminated
        if truncated:
            return n, env.unwrapped.population.now - t0
        assert n <= 10 * 4032, "the episode never ended"


@pytest.mark.parametrize("slot_minutes", [5, 15, 60])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_ids_last_the_documented_horizon_for_any_slot_length(env_id, slot_minutes):
    want = expected_steps(env_id, slot_minutes)
    for how, env in (("gym.make", gym.make(env_id, slot_minutes=slot_minutes,
                                           params=NO_OPT_OUT)),
                     ("covercast.envs.make", make(env_id, slot_minutes=slot_minutes,
                                                  params=NO_OPT_OUT))):
        assert env.spec.max_episode_steps == want, how
        n, hours = episode_length(env, seed=slot_minutes)
        assert n == want, how
        # 14 days of simulated time (CoverStyle: from the first push time to 14 days later)
        assert hours == pytest.approx(24 * DEFAULT_HORIZON_DAYS), how


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_horizon_days_through_gym_make(env_id):
    env = gym.make(env_id, slot_minutes=15, horizon_days=2, params=NO_OPT_OUT)
    want = expected_steps(env_id, 15, days=2)
    assert env.spec.max_episode_steps == want
    assert episode_length(env, seed=1)[0] == want
    # a TimeLimit asked of gym.make still ends episodes earlier, and the spec says so
    short = gym.make(env_id, slot_minutes=15, max_episode_steps=3, params=NO_OPT_OUT)
    assert short.spec.max_episode_steps == 3
    assert episode_length(short, seed=1)[0] == 3


def test_cover_style_horizon_follows_push_hours():
    env = gym.make("covercast/CoverStyle-v0", push_hours=(9,), params=NO_OPT_OUT)
    assert env.spec.max_episode_steps == 14
    assert episode_length(env, seed=0) == (14, pytest.approx(14 * 24.0))
    with pytest.raises(ValueError, match="whole number of days"):
        gym.make("covercast/CoverStyle-v0", horizon_days=1.5)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "7", True])
def test_bad_horizon_days_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="horizon_days"):
        gym.make("covercast/PushTiming-v0", horizon_days=bad)


def test_make_vec_entry_point_gives_the_documented_horizon():
    env = gym.make_vec("covercast/PushSchedule-v0", num_envs=2,
                       vectorization_mode="vector_entry_point", slot_minutes=5)
    assert env.max_episode_steps == 4032
    env.close()

