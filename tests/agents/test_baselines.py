"""Random agent, static scheduler and activity heuristic: their specific behaviour."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import covercast  # noqa: F401
from covercast.agents import ActivityHeuristic, HeuristicState, RandomAgent, StaticScheduler
from covercast.agents.base import hour_of_day, weekday_of
from covercast.envs import make


def _rollout(env, agent, seed, steps=None):
    """(hours since start at each decision, actions, infos) of one episode."""
    obs, _ = env.reset(seed=seed)
    agent.reset(seed)
    pop = env.unwrapped.population
    state, start = None, np.ones(1, bool)
    times, actions, infos, observations = [], [], [], []
    while True:
        a, state = agent.predict(obs, state, start)
        start = np.zeros(1, bool)
        times.append(pop.now)
        observations.append(obs)
        obs2, r, term, trunc, info = env.step(a)
        agent.update(obs, a, r, obs2, term, info)
        actions.append(a)
        infos.append(info)
        obs = obs2
        if term or trunc or (steps is not None and len(actions) >= steps):
            return np.array(times), np.array(actions), infos, np.array(observations)


# ============================================================================ random
def test_random_push_rate_and_style_distribution(random_obs_factory):
    agent = RandomAgent(push_prob=0.3, style_probs=[0.5, 0.5, 0, 0, 0], seed=1)
    x = random_obs_factory(1, seed=3).repeat(20_000, axis=0)
    a, _ = agent.predict(x)
    push = a > 0
    assert abs(push.mean() - 0.3) < 0.015
    styles = a[push] - 1
    assert set(np.unique(styles)) == {0, 1}
    assert abs((styles == 0).mean() - 0.5) < 0.02


def test_random_deterministic_is_the_mode(random_obs_factory):
    x = random_obs_factory(4)
    a, _ = RandomAgent(push_prob=0.2, seed=0).predict(x, deterministic=True)
    assert np.all(a == 0)
    a, _ = RandomAgent(push_prob=0.8, style_probs=[0, 0, 0.7, 0.3, 0]).predict(
        x, deterministic=True)
    assert np.all(a == 3)


def test_random_argument_errors():
    with pytest.raises(ValueError, match="1.5"):
        RandomAgent(push_prob=1.5)
    with pytest.raises(ValueError, match="style_probs"):
        RandomAgent(style_probs=[0.5, 0.5])
    with pytest.raises(ValueError, match="style_probs"):
        RandomAgent(style_probs=[0.5, 0.6, 0, 0, -0.1])


# ============================================================================ static
def test_static_pushes_exactly_at_its_hours():
    env = gym.make("covercast/PushSchedule-v0")
    agent = StaticScheduler(hours=(9, 21), style=2)
    times, actions, infos, obs = _rollout(env, agent, seed=5, steps=24 * 4)
    hours = np.mod(times, 24)
    pushed = actions > 0
    np.testing.assert_array_equal(pushed, np.isin(hours, [9, 21]))
    assert np.all(actions[pushed] == 3)                     # style 2 -> action 3
    assert all(i["style"] == 2 for i, p in zip(infos, pushed, strict=True) if p)
    env.close()


def test_static_with_five_minute_slots_pushes_once_per_hour():
    env = make("covercast/PushSchedule-v0", horizon_days=2, slot_minutes=5)
    agent = StaticScheduler(hours=(8,))
    times, actions, _, _ = _rollout(env, agent, seed=0)
    assert len(actions) == 2 * 288
    np.testing.assert_allclose(times[actions > 0], [8.0, 32.0])
    env.close()


def test_static_in_style_and_timing_layouts(obs_factory):
    x = np.stack([obs_factory(8.0), obs_factory(9.0)])
    a, _ = StaticScheduler(mode="timing").predict(x)
    np.testing.assert_array_equal(a, [1, 0])
    a, _ = StaticScheduler(mode="style", style=3).predict(x)
    np.testing.assert_array_equal(a, [3, 3])                # the env decides when


def test_static_argument_errors():
    with pytest.raises(ValueError, match="24"):
        StaticScheduler(hours=(8, 24))
    with pytest.raises(ValueError, match="distinct"):
        StaticScheduler(hours=(8, 8))
    with pytest.raises(ValueError, match="style"):
        StaticScheduler(style=5)


# ============================================================================ heuristic
def _profile(peaks):
    p = np.full(24, 0.01)
    for h, w in peaks.items():
        p[h] += w
    return p / p.sum()


def test_heuristic_picks_the_most_active_hours_with_the_gap(obs_factory):
    prof = _profile({7: 0.5, 8: 0.4, 20: 0.3, 13: 0.1})
    agent = ActivityHeuristic(pushes_per_day=2, min_gap_h=4, smoothing=0.0, prior_sessions=0)
    x = obs_factory(0.0, profile=prof, sessions_per_day=5.0)[None].astype(np.float64)
    sched = agent.push_hours(x, elapsed_h=48.0)[0]
    assert np.flatnonzero(sched).tolist() == [7, 20]        # 8 is too close to 7
    agent3 = ActivityHeuristic(pushes_per_day=3, min_gap_h=4, smoothing=0.0,
                               prior_sessions=0)
    assert np.flatnonzero(agent3.push_hours(x, 48.0)[0]).tolist() == [7, 13, 20]


def test_heuristic_falls_back_before_any_session(obs_factory):
    agent = ActivityHeuristic(fallback_hours=(10, 19))
    x = obs_factory(0.0)[None].astype(np.float64)         # sessions_per_day = 0
    assert np.flatnonzero(agent.push_hours(x, 0.0)[0]).tolist() == [10, 19]


@pytest.mark.parametrize("cap,gap", [(1, 4.0), (2, 6.0), (3, 3.0)])
def test_heuristic_respects_cap_and_gap_in_real_episodes(cap, gap):
    env = gym.make("covercast/PushSchedule-v0")
    agent = ActivityHeuristic(pushes_per_day=cap, min_gap_h=gap)
    total = 0
    for seed in range(4):
        times, actions, infos, obs = _rollout(env, agent, seed=seed)
        push_t = times[actions > 0]
        total += push_t.size
        days = np.floor(push_t / 24).astype(int)            # episodes start at midnight
        assert np.bincount(days).max(initial=0) <= cap
        assert np.all(np.diff(push_t) >= gap - 1e-9)
    assert total > 0
    env.close()


def test_heuristic_cap_holds_against_a_moving_profile(random_obs_factory):
    """Every slot a different random profile: the chosen hours move, the cap and gap hold."""
    agent = ActivityHeuristic(pushes_per_day=2, min_gap_h=3.0, smoothing=0.0,
                              prior_sessions=0.0)
    rng = np.random.default_rng(0)
    from covercast.envs.observation import OBS_INDEX, PROFILE_SLICE

    state = None
    last_push = -np.inf
    pushes = []
    for t in range(24 * 10):
        x = random_obs_factory(1, seed=t)[0].astype(np.float64)
        h, wd = t % 24, (t // 24) % 7
        from covercast.envs.observation import clock_features

        x[:5] = clock_features(float(h), float(wd))
        x[OBS_INDEX["log_h_since_push"]] = min(np.log1p(t - last_push), np.log1p(720.0))
        prof = rng.dirichlet(np.full(24, 0.3))
        x[PROFILE_SLICE] = prof
        a, state = agent.predict(x, state, episode_start=t == 0)
        if a:
            last_push = t
            pushes.append(t)
    pushes = np.array(pushes)
    assert pushes.size >= 10
    assert np.bincount(pushes // 24).max() <= 2
    assert np.all(np.diff(pushes) >= 3)


def test_heuristic_state_is_per_row_and_reset_by_episode_start(obs_factory):
    prof = _profile({8: 1.0})
    x = np.stack([obs_factory(8.0, profile=prof, sessions_per_day=4.0)] * 2)
    agent = ActivityHeuristic(pushes_per_day=1)
    a, st = agent.predict(x, None, episode_start=[True, True])
    assert isinstance(st, HeuristicState) and a.tolist() == [1, 1]
    # same day, next decision: capped; row 1 starts a new episode: not capped
    x2 = np.stack([obs_factory(8.0, profile=prof, sessions_per_day=4.0)] * 2)
    a2, st2 = agent.predict(x2, st, episode_start=[False, True])
    assert a2.tolist() == [0, 1]
    np.testing.assert_array_equal(st.pushes_today, [1, 1])   # the old state was not mutated
    with pytest.raises(ValueError, match="HeuristicState"):
        agent.predict(x, state=(1, 2), episode_start=False)


def test_heuristic_argument_errors():
    with pytest.raises(ValueError, match="pushes_per_day"):
        ActivityHeuristic(pushes_per_day=0)
    with pytest.raises(ValueError, match="min_gap_h"):
        ActivityHeuristic(min_gap_h=30)
    with pytest.raises(ValueError, match="smoothing"):
        ActivityHeuristic(smoothing=0.5)
    with pytest.raises(ValueError, match="fallback_hours"):
        ActivityHeuristic(fallback_hours=())


def test_clock_of_real_observations_matches_the_population():
    env = gym.make("covercast/PushSchedule-v0")
    times, _, _, obs = _rollout(env, RandomAgent(seed=0), seed=0, steps=200)
    x = obs.astype(np.float64)
    np.testing.assert_allclose(hour_of_day(x), np.mod(times, 24), atol=1e-3)
    np.testing.assert_array_equal(weekday_of(x), (times // 24).astype(int) % 7)  # Monday start
    env.close()
