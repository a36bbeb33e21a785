"""The hidden-state oracle: labelled as such, reads the hidden state, acts on it sensibly."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

import covercast  # noqa: F401
from covercast.agents import HiddenStateOracle
from covercast.envs import make_vec
from covercast.simulators import response as R
from covercast.simulators.params import default_params


def _episode(env, agent, seed, steps=None):
    """Per decision: (hours since start, action, fatigue before the push, activity rate)."""
    obs, _ = env.reset(seed=seed)
    pop = env.unwrapped.population
    rows = []
    while True:
        hs = pop.hidden_state()
        a, _ = agent.predict(obs)
        rows.append((pop.now, a, float(hs["fatigue"][0]), float(hs["activity_rate"][0])))
        obs, _, term, trunc, _ = env.step(a)
        if term or trunc or (steps is not None and len(rows) >= steps):
            return np.array(rows)


def test_labelled_as_an_upper_reference():
    agent = HiddenStateOracle()
    assert "oracle" in agent.name and "hidden" in agent.name
    assert agent.config()["reads_hidden_state"] is True
    assert "not deployable" in HiddenStateOracle.__doc__.lower() or \
        "not a deployable" in HiddenStateOracle.__doc__.lower()


def test_needs_an_environment(obs_factory):
    with pytest.raises(ValueError, match="attach"):
        HiddenStateOracle().predict(obs_factory())
    with pytest.raises(ValueError, match="population"):
        HiddenStateOracle(env=object())


def test_rows_must_be_the_population_users(obs_factory):
    env = gym.make("covercast/PushSchedule-v0")
    env.reset(seed=0)
    agent = HiddenStateOracle(env=env)
    with pytest.raises(ValueError, match="row"):
        agent.predict(np.stack([obs_factory()] * 2))
    env.close()


def test_reads_reward_weights_from_the_env():
    env = gym.make("covercast/PushSchedule-v0", w_dwell=0.5, w_optout=2.0)
    agent = HiddenStateOracle(env=env)
    assert (agent.w_dwell, agent.w_optout) == (0.5, 2.0)
    agent = HiddenStateOracle(env=env, w_optout=9.0)
    assert agent.w_optout == 9.0
    env.close()


def test_open_probability_now_comes_from_the_response_formulas():
    """With a one-hour tray horizon, P(open) of a push now is, per cover, the seen-now part
    plus the rest of the hour, averaged over the style's covers."""
    env = gym.make("covercast/PushSchedule-v0")
    env.reset(seed=3)
    for _ in range(30):                       # some history: fatigue > 0
        env.step(1 if _ % 7 == 0 else 0)
    pop = env.unwrapped.population
    agent = HiddenStateOracle(env=env, lookahead_h=0, seen_horizon_h=1)
    got = agent.push_values()["p_open_now"][0]
    hs = pop.hidden_state()
    p = pop.params
    seg = int(hs["segment"][0])
    rate = float(hs["activity_rate"][0])
    how = int(pop.timestamp.day_of_week) * 24 + pop.timestamp.hour
    act = p.activity_matrix()
    relact = R.relative_activity_feature(act[seg, how], act[seg].mean())
    f_push = R.add_push_fatigue(hs["fatigue"][0], 0.0, 0.0, p.fatigue)
    bank = pop.bank
    want = np.zeros(len(p.styles))
    for s in range(len(p.styles)):
        covers = np.flatnonzero(bank.style == s)
        match = R.taste_match(np.repeat(hs["taste"], covers.size, axis=0),
                              bank.features[covers].astype(float))
        aff = hs["topic_affinity"][0, bank.topic[covers]]
        w0 = R.seen_now_probability(rate, p.open.glance_hours)
        later = (1 - w0) * R.seen_now_probability(rate, 1.0)
        po = (w0 * R.open_probability(p.segments[seg].open_intercept, relact, match,
                                      bank.quality[covers], aff, f_push, 0.0, p.open)
              + later * R.open_probability(p.segments[seg].open_intercept, relact, match,
                                           bank.quality[covers], aff,
                                           R.fatigue_at(f_push, 0.0, 0.5, p.fatigue.half_life_h),
                                           0.5, p.open))
        want[s] = (1 - R.opt_out_probability(f_push, p.opt_out)) * po.mean()
    np.testing.assert_allclose(got, want, rtol=1e-10)
    env.close()


def test_picks_the_style_the_user_loves():
    params = copy.deepcopy(default_params())
    noir = params.styles.index("noir")
    n_attr = params.n_features - len(params.styles)
    for seg in params.segments:         # indifferent to the image attributes, loves noir
        seg.taste_mean[:] = [0.0] * len(seg.taste_mean)
        seg.taste_mean[n_attr + noir] = 3.0
        seg.taste_sd = 0.1
    env = gym.make("covercast/PushSchedule-v0", params=params)
    agent = HiddenStateOracle(env=env)
    rows = _episode(env, agent, seed=0, steps=24 * 3)
    pushes = rows[rows[:, 1] > 0, 1]
    assert pushes.size > 0 and np.all(pushes == noir + 1)
    env.close()


def test_pushes_when_the_user_is_active():
    env = gym.make("covercast/PushSchedule-v0")
    agent = HiddenStateOracle(env=env)
    ratios = []
    for seed in range(3):
        rows = _episode(env, agent, seed=seed)
        pushed = rows[:, 1] > 0
        assert pushed.any()
        ratios.append(rows[pushed, 3].mean() / rows[:, 3].mean())
    assert min(ratios) > 2.0          # pushes go to hours at least twice as active as average
    env.close()


def test_fatigue_and_open_probability_thresholds():
    env = gym.make("covercast/PushSchedule-v0")
    rows = _episode(env, HiddenStateOracle(env=env, max_fatigue=0.5), seed=1)
    assert np.all(rows[rows[:, 1] > 0, 2] <= 0.5)
    assert (rows[:, 1] > 0).any()
    rows = _episode(env, HiddenStateOracle(env=env, min_open_prob=1.0), seed=1, steps=48)
    assert np.all(rows[:, 1] == 0)
    env.close()


def test_style_layout_always_pushes_the_best_style():
    env = gym.make("covercast/CoverStyle-v0")
    obs, _ = env.reset(seed=0)
    agent = HiddenStateOracle.for_env(env)
    a, _ = agent.predict(obs)
    best = int(np.argmax(agent.push_values()["value_now"][0]))
    assert a == best
    assert agent.push_values()["value_later"].shape == (1, 0)
    env.close()


def test_timing_layout_uses_the_env_style():
    env = gym.make("covercast/PushTiming-v0", style=2)
    obs, _ = env.reset(seed=0)
    agent = HiddenStateOracle.for_env(env)
    v = agent.push_values()
    assert v["style"][0] == 2
    np.testing.assert_allclose(v["value"][0], v["value_now"][0, 2])
    assert agent.predict(obs)[0] in (0, 1)
    env.close()


def test_vector_env_rows_are_users():
    env = make_vec(40, horizon_days=2)
    obs, _ = env.reset(seed=0)
    agent = HiddenStateOracle(env=env)
    pushed = 0
    for _ in range(48):
        a, _ = agent.predict(obs)
        assert a.shape == (40,)
        pushed += int((a > 0).sum())
        obs, *_ = env.step(a)
    assert 0 < pushed < 40 * 48
    probs = agent.action_probabilities(obs)
    assert probs.shape == (40, 6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    env.close()


def test_argument_errors():
    with pytest.raises(ValueError, match="lookahead_h"):
        HiddenStateOracle(lookahead_h=24)
    with pytest.raises(ValueError, match="seen_horizon_h"):
        HiddenStateOracle(seen_horizon_h=0)
    with pytest.raises(ValueError, match="min_open_prob"):
        HiddenStateOracle(min_open_prob=2.0)
    with pytest.raises(ValueError, match="timing_style"):
        HiddenStateOracle(mode="timing", timing_style=7)


def test_without_taste_it_uses_the_segment_mean_taste():
    params = copy.deepcopy(default_params())
    noir = params.styles.index("noir")
    n_attr = params.n_features - len(params.styles)
    for seg in params.segments:   # on average noir, but users differ a lot from one another
        seg.taste_mean[:] = [0.0] * len(seg.taste_mean)
        seg.taste_mean[n_attr + noir] = 1.0
        seg.taste_sd = 3.0
    env = make_vec(60, horizon_days=1, params=params)
    env.reset(seed=0)
    full = HiddenStateOracle(env=env)
    blind = HiddenStateOracle(env=env, knows_taste=False)
    assert blind.name == "oracle (no taste)" and blind.config()["knows_taste"] is False
    assert full.config()["knows_taste"] is True
    seg = env.unwrapped.population.hidden_state()["segment"]
    s_full, s_blind = full.push_values(60)["style"], blind.push_values(60)["style"]
    assert len(set(s_full.tolist())) >= 3          # each user's own best style
    assert np.all(s_blind == noir)                  # the segments' best, for everyone
    assert len(set(seg.tolist())) >= 2
    # knowing the user's taste is worth something: its chosen style is at least as good
    v = full.push_values(60)["value_now"]
    assert np.all(v[np.arange(60), s_full] >= v[np.arange(60), s_blind] - 1e-12)
    with pytest.raises(ValueError, match="knows_taste"):
        HiddenStateOracle(knows_taste="no")
    env.close()
