"""The user-model formulas of covercast.simulators.response: values, limits, and draws that
recover their parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from covercast.simulators import response as R
from covercast.simulators.params import (
    DriftModel,
    DwellModel,
    EngagementModel,
    OpenModel,
    OptOutModel,
    SatisfactionModel,
)


def test_sigmoid_is_stable_and_symmetric():
    x = np.array([-1000.0, -5.0, 0.0, 5.0, 1000.0])
    s = R.sigmoid(x)
    assert np.all(np.isfinite(s))
    assert s[0] == 0.0 and s[-1] == 1.0 and s[2] == 0.5
    np.testing.assert_allclose(s + R.sigmoid(-x), 1.0)
    np.testing.assert_allclose(R.sigmoid(1.3), 1 / (1 + math.exp(-1.3)))


def test_fatigue_halves_every_half_life():
    f = R.fatigue_at(np.array([2.0, 3.0]), np.array([0.0, 10.0]), np.array([24.0, 58.0]), 24.0)
    np.testing.assert_allclose(f, [1.0, 0.75])
    # never-pushed users (f = 0 stored at t = -inf) stay at exactly 0, without NaN
    assert R.fatigue_at(0.0, -np.inf, 5.0, 24.0) == 0.0
    # no decay at the update time
    assert R.fatigue_at(1.7, 3.0, 3.0, 24.0) == pytest.approx(1.7)


def test_add_push_fatigue_adds_increment_after_decay():
    from covercast.simulators.params import FatigueModel

    m = FatigueModel(increment=1.5, half_life_h=12.0)
    assert R.add_push_fatigue(2.0, 0.0, 12.0, m) == pytest.approx(1.0 + 1.5)
    assert R.add_push_fatigue(0.0, -np.inf, 12.0, m) == pytest.approx(1.5)


def test_opt_out_probability_formula_and_monotonic():
    m = OptOutModel(base_hazard=0.01, fatigue_coef=0.05)
    f = np.array([0.0, 1.0, 10.0])
    np.testing.assert_allclose(R.opt_out_probability(f, m), 1 - np.exp(-(0.01 + 0.05 * f)))
    assert np.all(np.diff(R.opt_out_probability(np.linspace(0, 50, 20), m)) > 0)
    assert R.opt_out_probability(0.0, OptOutModel(0.0, 0.0)) == 0.0


def test_seen_now_probability():
    np.testing.assert_allclose(R.seen_now_probability(np.array([0.0, 1.0, 100.0]), 0.5),
                               [0.0, 1 - math.exp(-0.5), 1.0])
    assert R.seen_now_probability(3.0, 0.0) == 0.0


def test_relative_activity_feature_floor():
    np.testing.assert_allclose(R.relative_activity_feature([0.0, 0.5, 2.0], 1.0),
                               [math.log(0.05), math.log(0.5), math.log(2.0)])


def test_taste_match_and_relevance():
    taste = np.array([[1.0, 2.0], [0.5, -1.0]])
    feats = np.array([[3.0, 1.0], [2.0, 2.0]])
    np.testing.assert_allclose(R.taste_match(taste, feats), [5.0, -1.0])
    np.testing.assert_allclose(R.relevance(taste, feats, [0.5, 1.0]), [5.5, 0.0])
    with pytest.raises(ValueError, match="same shape"):
        R.taste_match(taste, feats[:, :1])


def test_open_probability_matches_the_spec():
    m = OpenModel(beta_activity=0.5, beta_taste=1.2, beta_quality=0.8, beta_topic=0.7,
                  beta_fatigue=0.3, glance_hours=1.0, stale_tau_h=6.0)
    args = dict(intercept=-2.0, rel_activity=math.log(1.5), match=0.4, quality=0.9,
                topic_affinity=0.3, fatigue=2.0)
    logit = (-2.0 + 0.5 * math.log(1.5) + 1.2 * 0.4 + 0.8 * (0.9 - 0.5) + 0.7 * 0.3 - 0.3 * 2.0)
    assert R.open_logit(**args, open_model=m) == pytest.approx(logit)
    p0 = R.open_probability(**args, delay_h=0.0, open_model=m)
    assert p0 == pytest.approx(1 / (1 + math.exp(-logit)))
    p3 = R.open_probability(**args, delay_h=3.0, open_model=m)
    assert p3 == pytest.approx(p0 * math.exp(-0.5))
    # fatigue never raises the open probability
    more = dict(args, fatigue=5.0)
    assert R.open_probability(**more, delay_h=0.0, open_model=m) < p0


def test_dwell_draws_recover_log_normal_parameters():
    rng = np.random.default_rng(0)
    n = 200_000
    rel = np.where(np.arange(n) % 2 == 0, 0.0, 2.0)
    d = R.draw_dwell(math.log(60.0), 0.7, rel, DwellModel(relevance_coef=0.3), rng)
    logd = np.log(d)
    assert logd[rel == 0].mean() == pytest.approx(math.log(60.0), abs=0.01)
    assert logd[rel == 2].mean() == pytest.approx(math.log(60.0) + 0.6, abs=0.01)
    assert logd.std() == pytest.approx(math.sqrt(0.49 + 0.09), abs=0.01)
    s = R.draw_session_dwell(np.full(n, math.log(200.0)), 0.9, rng)
    assert np.log(s).mean() == pytest.approx(math.log(200.0), abs=0.01)
    assert np.log(s).std() == pytest.approx(0.9, abs=0.01)


def test_engagement_rates_match_probabilities():
    m = EngagementModel(like_intercept=-1.0, share_intercept=-2.0, comment_intercept=-3.0,
                        relevance_coef=0.5)
    rel = np.full(100_000, 1.0)
    like, share, comment = R.draw_engagement(rel, m, np.random.default_rng(1))
    p_like, p_share, p_comment = R.engagement_probabilities(1.0, m)
    for draws, p in ((like, p_like), (share, p_share), (comment, p_comment)):
        assert draws.dtype == bool
        assert draws.mean() == pytest.approx(float(p), abs=4 * math.sqrt(p * (1 - p) / rel.size))
    assert float(p_like) == pytest.approx(1 / (1 + math.exp(0.5)))


def test_satisfaction_probabilities_and_draws_agree():
    m = SatisfactionModel()
    rel, dwell, fat = 0.5, 90.0, 1.0
    probs = R.satisfaction_probabilities(np.array([rel]), np.array([dwell]), np.array([fat]), m)
    assert probs.shape == (1, 5)
    assert probs.sum() == pytest.approx(1.0)
    assert np.all(probs > 0)
    n = 50_000
    draws = R.draw_satisfaction(np.full(n, rel), np.full(n, dwell), np.full(n, fat), m,
                                np.random.default_rng(2))
    assert draws.dtype == np.int8 and draws.min() >= 1 and draws.max() <= 5
    observed = np.bincount(draws, minlength=6)[1:]
    chi2, pval = stats.chisquare(observed, probs[0] * n)
    assert pval > 1e-4, (observed, probs[0] * n)
    # higher relevance shifts mass to higher scores
    hi = R.satisfaction_probabilities(np.array([3.0]), np.array([dwell]), np.array([fat]), m)
    assert (hi[0] * np.arange(1, 6)).sum() > (probs[0] * np.arange(1, 6)).sum()


def test_drift_step_reverts_and_diffuses():
    rng = np.random.default_rng(3)
    x = np.full((4, 3), 2.0)
    half = R.drift_step(x, np.zeros(3), DriftModel(reversion_per_day=0.5, sd_per_day=0.0), rng)
    np.testing.assert_allclose(half, 1.0)
    two_days = R.drift_step(x, np.zeros(3), DriftModel(0.5, 0.0), rng, days=2.0)
    np.testing.assert_allclose(two_days, 0.5)
    # a random walk: variance grows by sd^2 per day
    y = R.drift_step(np.zeros(200_000), 0.0, DriftModel(0.0, 0.1), rng, days=4.0)
    assert y.std() == pytest.approx(0.2, rel=0.01)
    with pytest.raises(ValueError, match="days"):
        R.drift_step(x, 0.0, DriftModel(), rng, days=-1.0)


def test_activity_multiplier_is_gamma_mean_one():
    m = R.activity_multiplier(np.full(200_000, 2.5), np.random.default_rng(4))
    assert m.mean() == pytest.approx(1.0, abs=0.01)
    assert m.var() == pytest.approx(1 / 2.5, rel=0.03)
    with pytest.raises(ValueError, match="shape"):
        R.activity_multiplier(0.0, np.random.default_rng(0), size=3)
