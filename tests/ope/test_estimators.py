"""Per-decision and sequential estimators: hand-computed values, unbiasedness, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from covercast.ope.estimators import (
    ExtremeWeightWarning,
    default_fqe_features,
    dm,
    dr,
    estimate_per_decision,
    estimate_sequential,
    fit_fqe,
    ips,
    pdis,
    sequential_dr,
    sndr,
    snips,
    switch_dr,
    wpdis,
)

# ----------------------------------------------------------------- a hand-sized example
# 4 decisions, 2 actions
R = np.array([1.0, 0.0, 1.0, 0.0])
A = np.array([0, 1, 1, 0])
P = np.array([0.5, 0.25, 0.5, 0.8])
PI = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8], [0.5, 0.5]])
Q = np.array([[0.5, 0.5], [0.0, 1.0], [0.3, 0.6], [0.1, 0.2]])
W = np.array([2.0, 2.0, 1.6, 0.625])          # pi(a|x) / p


def test_hand_computed_per_decision() -> None:
    q_pi = np.array([0.5, 0.5, 0.54, 0.15])
    resid = np.array([0.5, -1.0, 0.4, -0.1])
    kw = dict(ci=None)
    assert ips(R, A, P, PI, **kw).estimate == pytest.approx((2.0 + 1.6) / 4)
    assert snips(R, A, P, PI, **kw).estimate == pytest.approx(3.6 / W.sum())
    assert dm(R, A, P, PI, Q, **kw).estimate == pytest.approx(q_pi.mean())
    assert dr(R, A, P, PI, Q, **kw).estimate == pytest.approx(q_pi.mean() + (W * resid).mean())
    assert sndr(R, A, P, PI, Q, **kw).estimate == pytest.approx(
        q_pi.mean() + (W * resid).sum() / W.sum())
    # tau = 1.8: decisions 0 and 1 (w = 2) fall back to the model
    sw = switch_dr(R, A, P, PI, Q, tau=1.8, **kw)
    assert sw.estimate == pytest.approx(q_pi.mean() + (W * resid * (W <= 1.8)).mean())
    assert sw.extra["switched_share"] == pytest.approx(0.5)
    assert switch_dr(R, A, P, PI, Q, tau=np.inf, **kw).estimate == pytest.approx(
        dr(R, A, P, PI, Q, **kw).estimate)
    res = ips(R, A, P, PI, **kw)
    assert res.ess == pytest.approx(W.sum() ** 2 / (W ** 2).sum())
    assert res.max_weight == pytest.approx(2.0) and not res.extreme_weights
    assert dm(R, A, P, PI, Q, **kw).ess == 4


def test_hand_computed_sequential() -> None:
    # two episodes: lengths 2 and 1; weights (2, 0.5) and (4)
    r = np.array([1.0, 2.0, 3.0])
    a = np.array([0, 0, 1])
    p = np.array([0.5, 0.5, 0.25])
    pi = np.array([[1.0, 0.0], [0.25, 0.75], [0.0, 1.0]])
    ep = np.array([7, 7, 9])
    g = 0.5
    # rho: ep7: 2, 1 ; ep9: 4 (then padded: stays 4, reward 0)
    assert pdis(r, a, p, pi, ep, gamma=g, ci=None).estimate == pytest.approx(
        ((2 * 1 + g * 1 * 2) + 4 * 3) / 2)
    assert wpdis(r, a, p, pi, ep, gamma=g, ci=None).estimate == pytest.approx(
        (2 * 1 + 4 * 3) / (2 + 4) + g * (1 * 2 + 4 * 0) / (1 + 4))
    q = np.array([[0.5, 1.0], [1.0, 2.0], [2.0, 1.0]])
    v = (pi * q).sum(axis=1)                                  # 0.5, 1.75, 1.0
    ep7 = (2 * (1 - 0.5) + 1 * v[0]) + g * (1 * (2 - 1.0) + 2 * v[1])
    ep9 = 4 * (3 - 1.0) + 1 * v[2]
    assert sequential_dr(r, a, p, pi, ep, q, gamma=g, ci=None).estimate == pytest.approx(
        (ep7 + ep9) / 2)


# ----------------------------------------------------------------- a tiny exact bandit
PX = np.array([0.3, 0.7])                                      # context distribution
MEAN = np.array([[0.2, 0.5, 0.9], [0.6, 0.1, 0.4]])             # E[r | x, a]
MU = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])               # logging policy
PI_T = np.array([[0.1, 0.1, 0.8], [0.7, 0.2, 0.1]])             # evaluation policy
TRUE_V = float(PX @ (PI_T * MEAN).sum(axis=1))


def _bandit(rng: np.random.Generator, n: int, q_noise: float = 0.3):
    x = rng.choice(2, size=n, p=PX)
    u = rng.random(n)[:, None]
    a = (u >= np.cumsum(MU[x], axis=1)).sum(axis=1)
    r = (rng.random(n) < MEAN[x, a]).astype(float)
    q_bad = MEAN[x] + q_noise                                   # a biased reward model
    return r, a, MU[x, a], PI_T[x], q_bad, MEAN[x]


@pytest.mark.parametrize("name", ["IPS", "SNIPS", "DR", "SNDR", "SwitchDR", "DM"])
def test_unbiased_on_exact_bandit(name: str) -> None:
    """Mean over 1,500 seeded datasets within 4 standard errors of the exact value.

    IPS and DR (with a biased model) are exactly unbiased; SNIPS and SNDR have O(1/n) bias,
    far below the tolerance at n = 200; Switch-DR with tau = 2 (some weights switched) and DM
    are unbiased when the model is exact, so they get the exact model.
    """
    seeds, n = 1500, 200
    rng = np.random.default_rng(12345)
    est = np.empty(seeds)
    for s in range(seeds):
        r, a, p, pi, q_bad, q_true = _bandit(rng, n)
        q = q_true if name in ("SwitchDR", "DM") else q_bad
        est[s] = estimate_per_decision(r, a, p, pi, q, estimators=(name,), tau=2.0,
                                       ci=None)[name].estimate
    se = est.std(ddof=1) / np.sqrt(seeds)
    assert abs(est.mean() - TRUE_V) < 4 * se + 1e-12, (est.mean(), TRUE_V, se)


def test_dm_is_biased_with_a_wrong_model() -> None:
    """The test above can fail: DM with a biased model misses by the bias (0.3)."""
    r, a, p, pi, q_bad, _ = _bandit(np.random.default_rng(0), 20_000)
    est = dm(r, a, p, pi, q_bad, ci=None).estimate
    assert est == pytest.approx(TRUE_V + 0.3, abs=0.02)     # context sampling noise only
    assert abs(est - TRUE_V) > 0.25


def test_dr_equals_dm_when_model_is_exact_in_expectation_and_per_sample() -> None:
    rng = np.random.default_rng(3)
    # deterministic rewards equal to the model: every residual is 0, so DR == DM exactly
    x = rng.choice(2, size=500, p=PX)
    a = rng.integers(0, 3, size=500)
    r = MEAN[x, a]
    res = estimate_per_decision(r, a, MU[x, a], PI_T[x], MEAN[x], ci=None)
    for name in ("DR", "SNDR", "SwitchDR"):
        assert res[name].estimate == pytest.approx(res["DM"].estimate, abs=1e-12)


def test_ci_coverage_and_methods_agree() -> None:
    rng = np.random.default_rng(7)
    hits = {"bootstrap": 0, "normal": 0}
    runs = 120
    for s in range(runs):
        r, a, p, pi, q_bad, _ = _bandit(rng, 400)
        for ci in hits:
            hits[ci] += dr(r, a, p, pi, q_bad, ci=ci, n_bootstrap=300, rng=s).covers(TRUE_V)
    for ci, h in hits.items():
        assert 0.87 <= h / runs <= 1.0, (ci, h)
    r, a, p, pi, q_bad, _ = _bandit(np.random.default_rng(1), 50_000)
    b = snips(r, a, p, pi, ci="bootstrap")
    nrm = snips(r, a, p, pi, ci="normal")
    assert b.ci_low < b.estimate < b.ci_high
    width_b, width_n = b.ci_high - b.ci_low, nrm.ci_high - nrm.ci_low
    assert width_b == pytest.approx(width_n, rel=0.15)


def test_bootstrap_is_seeded() -> None:
    r, a, p, pi, q, _ = _bandit(np.random.default_rng(2), 3000)
    one = ips(r, a, p, pi, rng=5)
    assert ips(r, a, p, pi, rng=5) == one
    assert ips(r, a, p, pi, rng=6).ci != one.ci


def test_cluster_bootstrap_counts_episodes() -> None:
    r, a, p, pi, q, _ = _bandit(np.random.default_rng(2), 1000)
    ep = np.repeat(np.arange(100), 10)
    res = ips(r, a, p, pi, episode=ep, ci="normal")
    assert res.n_units == 100 and res.n_decisions == 1000
    assert res.estimate == pytest.approx(ips(r, a, p, pi, ci=None).estimate)


def test_extreme_weights_flagged() -> None:
    r = np.array([1.0, 0.0, 0.0])
    a = np.array([0, 1, 1])
    p = np.array([0.001, 0.9, 0.9])
    pi = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    with pytest.warns(ExtremeWeightWarning, match="extreme importance weights"):
        res = ips(r, a, p, pi, ci=None)
    assert res.extreme_weights and res.max_weight == pytest.approx(1000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not ips(r, a, np.full(3, 0.5), pi, ci=None).extreme_weights


@pytest.mark.parametrize("kwargs, match", [
    (dict(reward=[]), "empty"),
    (dict(reward=[1.0, 0.0]), "lengths differ"),
    (dict(pscore=[0.5, 0.0, 0.5]), r"pscore.*\(0, 1\].*0\.0 at index 1"),
    (dict(pscore=[0.5, 1.5, 0.5]), r"pscore.*\(0, 1\]"),
    (dict(action_dist=[[0.5, 0.6], [0.5, 0.5], [1.0, 0.0]]), "row 0 sums to 1.1"),
    (dict(action_dist=[[1.5, -0.5], [0.5, 0.5], [1.0, 0.0]]), "probabilities >= 0"),
    (dict(action=[0, 2, 1]), r"action.*\[0, 1\]"),
    (dict(reward=[1.0, np.nan, 0.0]), "finite"),
])
def test_bad_input(kwargs, match) -> None:
    base = dict(reward=[1.0, 0.0, 1.0], action=[0, 1, 1], pscore=[0.5, 0.5, 0.5],
                action_dist=[[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]])
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ips(**base, ci=None)


def test_bad_options() -> None:
    args = ([1.0], [0], [0.5], [[1.0]])
    with pytest.raises(ValueError, match="estimated_rewards"):
        estimate_per_decision(*args, estimators=("DR",))
    with pytest.raises(ValueError, match="`ci`"):
        ips(*args, ci="jackknife")
    with pytest.raises(ValueError, match="tau"):
        switch_dr(*args, [[0.0]], tau=0)
    with pytest.raises(ValueError, match="contiguous"):
        ips([1.0, 1.0, 1.0], [0, 0, 0], [1, 1, 1], [[1.0]] * 3, episode=[0, 1, 0])
    with pytest.raises(ValueError, match="episode"):
        estimate_sequential(*args, episode=None)
    with pytest.raises(ValueError, match="gamma"):
        pdis(*args, [0], gamma=1.5)


# ----------------------------------------------------------------- a tiny exact MDP
def _chain(rng: np.random.Generator, n_ep: int, horizon: int = 3):
    """State s in {0, 1}, observed as one-hot; action 1 moves to state 1; r = s' + 0.5 a."""
    mu = np.array([0.6, 0.4])
    rows = []
    for e in range(n_ep):
        s = 0
        for _t in range(horizon):
            a = int(rng.random() < mu[1])
            s2 = 1 if a == 1 else int(rng.random() < 0.3)
            r = s2 + 0.5 * a + rng.normal(0, 0.1)
            rows.append((e, s, a, mu[a], r))
            s = s2
    e, s, a, p, r = map(np.array, zip(*rows, strict=False))
    pi = np.tile([0.2, 0.8], (len(a), 1))
    return r, a.astype(int), p, pi, e, np.eye(2)[s]


def _chain_truth(horizon: int = 3) -> float:
    # under pi, every step: E[r] = P(a=1) (1 + 0.5) + P(a=0) 0.3 (state does not matter)
    return horizon * (0.8 * 1.5 + 0.2 * 0.3)


def test_sequential_unbiased_and_fqe_recovers_value() -> None:
    rng = np.random.default_rng(11)
    truth = _chain_truth()
    est = {"PDIS": [], "SeqDR": []}
    for _ in range(300):
        r, a, p, pi, e, obs = _chain(rng, 40)
        q = np.zeros_like(pi) + 0.7                 # an arbitrary (wrong) Q model
        res = estimate_sequential(r, a, p, pi, e, q, estimators=("PDIS", "SeqDR"), ci=None)
        for k in est:
            est[k].append(res[k].estimate)
    for k, v in est.items():
        v = np.asarray(v)
        se = v.std(ddof=1) / np.sqrt(v.size)
        assert abs(v.mean() - truth) < 4 * se, (k, v.mean(), truth, se)
    r, a, p, pi, e, obs = _chain(np.random.default_rng(0), 3000)
    model = fit_fqe(obs, r, a, pi, e, ridge=1e-3)
    assert model.converged
    res = estimate_sequential(r, a, p, pi, e, model.predict_q(), fqe_model=model)
    assert res["FQE"].estimate == pytest.approx(truth, abs=0.05)
    assert res["SeqDR"].estimate == pytest.approx(truth, abs=0.08)
    assert res["WPDIS"].covers(truth) or abs(res["WPDIS"].estimate - truth) < 0.1


def _terminating_chain(rng: np.random.Generator, episodes: int, horizon: int = 8):
    """Uniform logging over 2 actions; reward 1 + 0.5 a; after action a the episode ends with
    probability 0.05 + 0.1 a, and the ending step costs 5 more (an opt-out)."""
    rows = []
    for e in range(episodes):
        for t in range(horizon):
            a = int(rng.random() < 0.5)
            s = int(rng.integers(0, 2))
            end = rng.random() < 0.05 + 0.1 * a
            rows.append((e, t, a, 1 + 0.5 * a - 5.0 * end, s))
            if end:
                break
    e, t, a, r, s = map(np.array, zip(*rows, strict=False))
    return e, t, a.astype(int), r, np.eye(2)[s]


def _terminating_truth(p1: float = 0.8, horizon: int = 8) -> float:
    q = 0.05 + 0.1 * p1
    step_reward = (1 - p1) * (1 - 5 * 0.05) + p1 * (1.5 - 5 * 0.15)
    return float(sum((1 - q) ** t * step_reward for t in range(horizon)))


def test_fqe_time_feature_is_the_step_not_the_logged_end() -> None:
    """Early terminations with a large penalty: FQE's time feature is ``horizon - t`` for every
    episode (the old "steps the logged episode had left" leaked the termination and biased
    the value), and the estimate matches the exact value."""
    e, t, a, r, obs = _terminating_chain(np.random.default_rng(3), 20000)
    pi = np.tile([0.2, 0.8], (len(a), 1))
    seen = {}

    def features(x, steps_left):
        seen["steps_left"] = np.asarray(steps_left)
        return default_fqe_features(x, steps_left)

    model = fit_fqe(obs, r, a, pi, e, features=features, horizon=8)
    np.testing.assert_array_equal(seen["steps_left"], 8 - t)
    assert model.converged
    first = np.flatnonzero(t == 0)
    truth = _terminating_truth()
    assert model.initial_values(first).mean() == pytest.approx(truth, abs=0.03 * truth)
    separate = fit_fqe(obs, r, a, pi, e, horizon=8, action_ridge=None)
    assert separate.initial_values(first).mean() == pytest.approx(truth, abs=0.03 * truth)
    with pytest.raises(ValueError, match="horizon"):
        fit_fqe(obs, r, a, pi, e, horizon=5)
    with pytest.raises(ValueError, match="action_ridge"):
        fit_fqe(obs, r, a, pi, e, action_ridge=0.0)


def test_fqe_shared_part_keeps_rare_actions_in_check() -> None:
    """A rarely logged action that the evaluation policy always takes: with few episodes the
    separate per-action models extrapolate from a handful of rows; the shrunk model stays
    within the range of possible returns."""
    rng = np.random.default_rng(6)
    rows = []
    for ep in range(12):
        for t in range(8):
            a = int(rng.random() < 0.1)                     # action 1 is rare in the log
            x = rng.normal(size=6)
            rows.append((ep, t, a, 0.5 + 0.5 * a + 0.1 * x[0], x))
    e, t, a, r, x = zip(*rows, strict=False)
    e, a, r, x = np.array(e), np.array(a), np.array(r), np.vstack(x)
    pi = np.tile([0.0, 1.0], (len(a), 1))
    model = fit_fqe(x, r, a, pi, e, horizon=8, iterations=500)
    v0 = model.initial_values(np.flatnonzero(np.r_[True, e[1:] != e[:-1]]))
    assert model.converged and np.all(np.abs(v0) < 8 * 1.5)    # |return| <= 8 steps x 1.5
    separate = fit_fqe(x, r, a, pi, e, horizon=8, iterations=500, action_ridge=None)
    assert not separate.converged
    assert np.abs(separate.initial_values(np.flatnonzero(np.r_[True, e[1:] != e[:-1]]))).max() \
        > 8 * 1.5
