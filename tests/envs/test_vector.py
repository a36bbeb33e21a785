"""The population vector environment: API, autoreset, budget, and agreement with the single env."""

from __future__ import annotations

import dataclasses
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from scipy import stats

import covercast  # noqa: F401  (registers the ids)
from covercast.envs import OBS_INDEX, PopulationVectorEnv, PushScheduleEnv, make_vec
from covercast.envs.observation import LOG_HOURS_CAP
from covercast.simulators.params import default_params
from covercast.testing import check_env


def params_with(**opt_out):
    return default_params().with_parts(opt_out=opt_out)


def test_make_vec_builds_the_population_env():
    env = gym.make_vec("covercast/PushSchedule-v0", num_envs=16,
                       vectorization_mode="vector_entry_point")
    assert isinstance(env, PopulationVectorEnv)
    assert env.num_envs == 16 and env.max_episode_steps == 336
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert env.single_action_space == gym.spaces.Discrete(6)
    assert env.action_space.shape == (16,) and env.observation_space.shape == (16, 40)
    five = gym.make_vec("covercast/PushSchedule-v0", num_envs=4,
                        vectorization_mode="vector_entry_point", slot_minutes=5)
    assert five.max_episode_steps == 4032         # 14 days whatever the slot length
    assert make_vec(4, slot_minutes=5, horizon_days=1).max_episode_steps == 288
    assert gym.make_vec("covercast/PushSchedule-v0", num_envs=4,
                        vectorization_mode="vector_entry_point",
                        horizon_days=7).max_episode_steps == 168
    with pytest.raises(ValueError, match="disagrees with `max_episode_steps`"):
        gym.make_vec("covercast/PushSchedule-v0", num_envs=4,
                     vectorization_mode="vector_entry_point", horizon_days=7,
                     max_episode_steps=100)


def test_covercast_checker_with_and_without_budget():
    check_env(make_vec(64, horizon_days=1), n_steps=60)
    check_env(make_vec(64, horizon_days=1, daily_budget=100), n_steps=60)


def test_same_seed_same_run_other_seed_other_run():
    def run(seed):
        env = make_vec(50)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs]
        for _ in range(40):
            obs, r, te, tr, info = env.step(rng.integers(0, 6, 50))
            out += [obs, r, te, info["opened"], info["sessions"]]
        return out

    a, b, c = run(1), run(1), run(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_info_is_per_user_with_gymnasium_masks():
    env = make_vec(30)
    env.reset(seed=0)
    obs, r, te, tr, info = env.step(np.array([0, 1, 2, 3, 4, 5] * 5))
    for key in ("pushed", "opened", "dwell_s", "likes", "shares", "comments", "surveys",
                "satisfaction", "opted_out", "sessions", "style", "cover", "budget_dropped"):
        assert info[key].shape == (30,), key
        assert info[f"_{key}"].shape == (30,), key
    assert np.array_equal(info["pushed"], np.array([0, 1, 1, 1, 1, 1] * 5))
    assert np.array_equal(info["style"], np.array([-1, 0, 1, 2, 3, 4] * 5))
    assert np.array_equal(info["_satisfaction"], info["surveys"] > 0)
    assert np.all(np.isnan(info["satisfaction"][info["surveys"] == 0]))
    assert r.dtype == np.float64 and r.shape == (30,)


def test_opted_out_users_are_replaced_in_the_same_step():
    env = PopulationVectorEnv(40, params=params_with(base_hazard=50.0))
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(np.zeros(40, dtype=np.int64))
    actions = np.where(np.arange(40) < 10, 2, 0)
    obs, r, te, tr, info = env.step(actions)
    assert np.array_equal(te, np.arange(40) < 10) and not tr.any()
    assert np.array_equal(info["_final_obs"], te)
    assert np.all(r[:10] <= -5.0 + 1e-9)
    # the ended episodes' last observation saw the push; the new users' first has no history
    assert np.all(info["final_obs"][:10, OBS_INDEX["pushes_24h"]] == 1)
    assert np.all(obs[:10, OBS_INDEX["pushes_24h"]] == 0)
    assert np.all(obs[:10, OBS_INDEX["log_h_since_push"]] == np.float32(LOG_HOURS_CAP))
    assert np.all(obs[:10, OBS_INDEX["sessions_per_day"]] == 0)
    assert not env.hidden_state()["opted_out"].any()
    assert np.array_equal(env.episode_steps, np.where(np.arange(40) < 10, 0, 6))
    # the new users' first rows are exactly what the observation builder gives them
    rebuilt = env._builder.build(env.population.observe()).copy()
    assert np.array_equal(obs, rebuilt)
    assert np.array_equal(info["final_info"]["_opted_out"], te)
    # a final satisfaction is claimed only where a survey was answered, never a NaN under a mask
    final = info["final_info"]
    assert np.array_equal(final["_satisfaction"], te & info["_satisfaction"])
    assert np.isfinite(final["satisfaction"][final["_satisfaction"]]).all()


def test_truncation_after_each_users_own_horizon():
    env = PopulationVectorEnv(20, max_episode_steps=5)
    env.reset(seed=0)
    for t in range(5):
        obs, r, te, tr, info = env.step(np.zeros(20, dtype=np.int64))
        assert tr.all() == (t == 4)
    assert np.all(env.episode_steps == 0)
    assert env.population.now == 5.0           # the clock goes on


def test_daily_budget_is_shared_and_resets_each_day():
    env = PopulationVectorEnv(100, daily_budget=150, params=params_with(base_hazard=0.0,
                                                                        fatigue_coef=0.0))
    env.reset(seed=0)
    delivered, dropped = [], []
    for _ in range(48):
        _, _, _, _, info = env.step(np.full(100, 1))
        delivered.append(info["pushed"].sum())
        dropped.append(info["budget_dropped"].sum())
        assert np.all(info["pushed"] + info["budget_dropped"] == 1)
    delivered, dropped = np.array(delivered), np.array(dropped)
    assert delivered[:24].sum() == 150 and delivered[24:].sum() == 150
    assert list(delivered[:3]) == [100, 50, 0] and list(delivered[24:26]) == [100, 50]
    assert env.budget_dropped_total == dropped.sum() == 48 * 100 - 300
    # the kept subset is random, not always the first users
    env.reset(seed=0)
    env.step(np.full(100, 1))
    _, _, _, _, info = env.step(np.full(100, 1))
    kept = np.flatnonzero(info["pushed"])
    assert kept.size == 50 and kept.max() > 60


def test_pickle_round_trip_continues_identically():
    env = make_vec(25)
    env.reset(seed=4)
    rng = np.random.default_rng(0)
    for _ in range(30):
        env.step(rng.integers(0, 6, 25))
    clone = pickle.loads(pickle.dumps(env))
    acts = rng.integers(0, 6, (40, 25))
    for a in acts:
        x, y = env.step(a), clone.step(a)
        for u, v in zip(x[:4], y[:4], strict=True):
            assert np.array_equal(u, v)


@pytest.mark.parametrize("actions,match", [
    (np.zeros(5, dtype=np.int64), r"shape \(8,\)"),
    (np.full(8, 6), "Invalid action 6 for user 0"),
    (np.full(8, 0.5), "integers"),
])
def test_bad_actions(actions, match):
    env = make_vec(8)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(actions)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_envs": 0}, "num_envs"), ({"num_envs": 4, "daily_budget": -1}, "daily_budget"),
    ({"num_envs": 4, "horizon_days": 0}, "horizon_days"),
    ({"num_envs": 4, "max_episode_steps": 0}, "max_episode_steps"),
    ({"num_envs": 4, "slot_minutes": 7}, "slot_minutes"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PopulationVectorEnv(**kwargs)


def test_reward_fn_shape_is_checked():
    env = PopulationVectorEnv(6, reward_fn=lambda r: np.zeros(3))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="6 rewards"):
        env.step(np.zeros(6, dtype=np.int64))


# ------------------------------------------------------------------ agreement in distribution
H = 48          # two days of hourly slots
N = 500


def first_episodes_vector(params=None, seed=0):
    """Per-user totals over each user's first episode (random actions)."""
    env = PopulationVectorEnv(N, params=params, max_episode_steps=H)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed + 1)
    live = np.ones(N, dtype=bool)
    tot = {k: np.zeros(N) for k in ("steps", "pushed", "opened", "sessions", "opted_out")}
    for _ in range(H):
        _, _, te, tr, info = env.step(rng.integers(0, 6, N))
        tot["steps"] += live
        for k in ("pushed", "opened", "sessions", "opted_out"):
            tot[k] += np.where(live, info[k], 0)
        live &= ~(te | tr)
    return tot


def first_episodes_single(seed=0):
    env = gym.make("covercast/PushSchedule-v0", max_episode_steps=H)
    rng = np.random.default_rng(seed + 1)
    tot = {k: np.zeros(N) for k in ("steps", "pushed", "opened", "sessions", "opted_out")}
    env.reset(seed=seed)
    for i in range(N):
        if i:
            env.reset()
        while True:
            _, _, te, tr, info = env.step(int(rng.integers(0, 6)))
            tot["steps"][i] += 1
            for k in ("pushed", "opened", "sessions", "opted_out"):
                tot[k][i] += info[k]
            if te or tr:
                break
    return tot


def open_rate_pvalue(a, b) -> float:
    table = [[a["opened"].sum(), a["pushed"].sum() - a["opened"].sum()],
             [b["opened"].sum(), b["pushed"].sum() - b["opened"].sum()]]
    return stats.chi2_contingency(table)[1]


def test_vector_users_match_single_env_episodes_in_distribution():
    vec, single = first_episodes_vector(seed=0), first_episodes_single(seed=10)
    assert vec["pushed"].sum() > 5000 and vec["opened"].sum() > 30
    for k in ("steps", "pushed", "sessions"):
        p = stats.ks_2samp(vec[k], single[k]).pvalue
        assert p > 1e-3, (k, p, vec[k].mean(), single[k].mean())
    assert open_rate_pvalue(vec, single) > 1e-3
    opt = [[vec["opted_out"].sum(), N - vec["opted_out"].sum()],
           [single["opted_out"].sum(), N - single["opted_out"].sum()]]
    assert stats.fisher_exact(opt)[1] > 1e-3


def test_the_distribution_test_detects_a_different_population():
    """Power check of the test above: a population with a doubled fatigue opt-out hazard
    differs in episode lengths; one with a higher open intercept in open rate."""
    base = first_episodes_vector(seed=0)
    tired = first_episodes_vector(params_with(fatigue_coef=0.0016), seed=0)
    assert stats.ks_2samp(base["steps"], tired["steps"]).pvalue < 1e-3
    p = default_params()
    keen = dataclasses.replace(p, segments=[dataclasses.replace(s, open_intercept=s.open_intercept
                                                                + 1.0) for s in p.segments])
    assert open_rate_pvalue(base, first_episodes_vector(keen, seed=0)) < 1e-3


def test_single_env_class_is_the_same_decision():
    single = PushScheduleEnv()
    vec = PopulationVectorEnv(3)
    assert single.action_space == vec.single_action_space
    assert single.observation_space == vec.single_observation_space
