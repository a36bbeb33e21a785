"""Logging policies: schedules, sampling frequencies and exact propensities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from covercast.simulators.params import default_params
from covercast.simulators.policies import (
    EpsilonGreedyWrapper,
    LoggingPolicy,
    StaticSchedulePolicy,
    UniformRandomPolicy,
)
from covercast.simulators.population import Population, simulate_log


def obs_at(n: int, hour: int, minute: int = 0, opted_out=None) -> dict[str, np.ndarray]:
    return {"hour": np.full(n, hour), "minute": np.full(n, minute), "weekday": np.zeros(n, int),
            "opted_out": np.zeros(n, bool) if opted_out is None else np.asarray(opted_out)}


def test_static_schedule_pushes_everyone_at_its_hours_with_propensity_one():
    pol = StaticSchedulePolicy(hours=(20, 8), style=3)
    rng = np.random.default_rng(0)
    for hour in range(24):
        push, style, prop = pol(obs_at(5, hour), rng)
        assert push.dtype == bool and push.shape == (5,)
        assert push.all() == (hour in (8, 20)) and push.any() == (hour in (8, 20))
        np.testing.assert_array_equal(prop, 1.0)
        np.testing.assert_array_equal(style, 3)
    # only the slot starting on the hour, and never an opted-out user
    assert not pol(obs_at(5, 8, minute=15), rng)[0].any()
    push, _, _ = pol(obs_at(3, 8, opted_out=[False, True, False]), rng)
    assert push.tolist() == [True, False, True]
    assert pol.hours == (8, 20)


def test_static_schedule_in_a_population_with_short_slots():
    log = simulate_log(default_params(), StaticSchedulePolicy(hours=(8, 20)), 1, 30, 0,
                       slot_minutes=15)
    pushes = log[log.event == "push"]
    # two pushes each, except after opting out at the first one
    morning_outs = ((log.event == "opt_out") & (log.timestamp.dt.hour == 8)).sum()
    assert len(pushes) == 60 - morning_outs
    assert sorted(pushes.timestamp.dt.hour.unique()) == [8, 20]
    assert (pushes.timestamp.dt.minute == 0).all()
    assert (pushes["style"] == "minimal").all() and (pushes.propensity == 1.0).all()


def test_uniform_random_frequencies_and_propensities():
    pol = UniformRandomPolicy(push_prob=0.3, n_styles=4)
    n = 200_000
    push, style, prop = pol(obs_at(n, 12), np.random.default_rng(1))
    assert push.mean() == pytest.approx(0.3, abs=0.005)
    counts = np.bincount(style[push], minlength=4)
    assert stats.chisquare(counts).pvalue > 1e-4
    np.testing.assert_allclose(prop[push], 0.3 / 4)
    np.testing.assert_allclose(prop[~push], 0.7)
    np.testing.assert_allclose(pol.action_probability(obs_at(n, 12), push, style), prop)


def test_opted_out_users_are_never_pushed_with_propensity_one():
    pol = UniformRandomPolicy(push_prob=1.0, n_styles=2)
    push, _, prop = pol(obs_at(4, 3, opted_out=[True, False, True, False]),
                        np.random.default_rng(0))
    assert push.tolist() == [False, True, False, True]
    np.testing.assert_allclose(prop, [1.0, 0.5, 1.0, 0.5])


def test_epsilon_greedy_mixture_is_exact():
    base = StaticSchedulePolicy(hours=(9,), style=1, n_styles=3)
    pol = EpsilonGreedyWrapper(base, epsilon=0.2, n_styles=3, push_prob=0.5)
    n = 300_000
    rng = np.random.default_rng(2)
    for hour, p_push_expected in ((9, 0.8 + 0.2 * 0.5), (10, 0.2 * 0.5)):
        obs = obs_at(n, hour)
        push, style, prop = pol(obs, rng)
        assert push.mean() == pytest.approx(p_push_expected, abs=0.005)
        # every action's empirical frequency matches its reported propensity
        action = np.where(push, 1 + style, 0)
        freq = np.bincount(action, minlength=4) / n
        for a in range(4):
            if freq[a] > 0:
                reported = prop[action == a]
                assert np.ptp(reported) < 1e-12
                assert reported[0] == pytest.approx(freq[a], abs=0.005)
        np.testing.assert_allclose(pol.action_probability(obs, push, style), prop)
    # epsilon = 0 is the base policy, epsilon = 1 the uniform one
    obs = obs_at(10, 9)
    p0 = EpsilonGreedyWrapper(base, 0.0, 3, 0.5)
    assert p0(obs, rng)[0].all() and np.allclose(p0(obs, rng)[2], 1.0)
    p1 = EpsilonGreedyWrapper(base, 1.0, 3, 0.5)
    np.testing.assert_allclose(p1.distribution(obs)[0], 0.5)
    np.testing.assert_allclose(p1.distribution(obs)[1], 1 / 3)


def test_policies_drive_a_population_and_log_their_propensities():
    params = default_params()
    pol = EpsilonGreedyWrapper(StaticSchedulePolicy((8, 20)), 0.1, push_prob=0.05)
    pop = Population(params, 100, seed=0, record_events=True)
    pop.run(pol, 1)
    log = pop.event_log()
    pushes = log[log.event == "push"]
    assert len(pushes) > 0
    allowed = {0.9 + 0.1 * 0.05 / 5, 0.1 * 0.05 / 5, 0.1 * 0.05 / 5 + 0.9}
    for p in pushes.propensity.unique():
        assert any(abs(p - a) < 1e-12 for a in allowed), p


def test_bad_policy_arguments():
    with pytest.raises(ValueError, match="hours"):
        StaticSchedulePolicy(hours=(8, 24))
    with pytest.raises(ValueError, match="distinct"):
        StaticSchedulePolicy(hours=(8, 8))
    with pytest.raises(ValueError, match="at least one"):
        StaticSchedulePolicy(hours=())
    with pytest.raises(ValueError, match="style"):
        StaticSchedulePolicy(style=5, n_styles=5)
    with pytest.raises(ValueError, match=r"push_prob.*\(0, 1\]"):
        UniformRandomPolicy(0.0)
    with pytest.raises(ValueError, match="push_prob"):
        UniformRandomPolicy(1.5)
    with pytest.raises(ValueError, match="n_styles"):
        UniformRandomPolicy(0.1, n_styles=0)
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedyWrapper(StaticSchedulePolicy(), 1.2)
    with pytest.raises(ValueError, match="LoggingPolicy"):
        EpsilonGreedyWrapper(lambda obs, rng: None, 0.1)
    with pytest.raises(ValueError, match="n_styles"):
        EpsilonGreedyWrapper(StaticSchedulePolicy(n_styles=5), 0.1, n_styles=3)
    with pytest.raises(ValueError, match="opted_out"):
        UniformRandomPolicy(0.1)({"hour": np.zeros(3)}, np.random.default_rng(0))
    pol = UniformRandomPolicy(0.1, n_styles=2)
    with pytest.raises(ValueError, match="style"):
        pol.action_probability(obs_at(2, 0), np.array([True, True]), np.array([0, 2]))


def test_logging_policy_is_abstract():
    with pytest.raises(TypeError):
        LoggingPolicy()  # type: ignore[abstract]
