"""FQE's refit bootstrap: the weighted refit is the fit on resampled episodes, and the interval
covers a known value at its nominal rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from covercast.ope.estimators import FQEModel, estimate_sequential, fit_fqe, fqe


def _chain(rng: np.random.Generator, episodes: int, horizon: int = 3):
    """Two states, two actions, logging ``mu = (0.5, 0.5)``; reward ``s' + 0.5 a`` plus noise
    with ``s' = 1`` after action 1, else ``s' = 1`` with probability 0.3. Evaluation policy
    ``pi = (0.2, 0.8)`` everywhere: its value is ``horizon * (0.8 * 1.5 + 0.2 * 0.3)``."""
    n = episodes * horizon
    a = (rng.random(n) < 0.5).astype(int)
    s_next = np.where(a == 1, 1, (rng.random(n) < 0.3).astype(int))
    r = s_next + 0.5 * a + rng.normal(0.0, 0.1, n)
    e = np.repeat(np.arange(episodes), horizon)
    s = s_next.reshape(episodes, horizon)
    s = np.column_stack([np.zeros(episodes, dtype=int), s[:, :-1]]).reshape(n)
    pi = np.tile([0.2, 0.8], (n, 1))
    return r, a, np.full(n, 0.5), pi, e, np.eye(2)[s]


CHAIN_TRUTH = 3 * (0.8 * 1.5 + 0.2 * 0.3)


def _terminating(rng: np.random.Generator, episodes: int, horizon: int = 8):
    """Episodes that end early with a penalty, 3 observation features."""
    rows = []
    for ep in range(episodes):
        for _ in range(horizon):
            a = int(rng.integers(0, 3))
            x = rng.normal(size=3)
            end = rng.random() < 0.05 + 0.05 * a
            rows.append((ep, a, 1 + 0.3 * a + 0.2 * x[0] - 3.0 * end, x))
            if end:
                break
    e, a, r, x = zip(*rows, strict=False)
    e, a, r, x = np.array(e), np.array(a), np.array(r), np.vstack(x)
    pi = np.tile([0.1, 0.3, 0.6], (len(a), 1))
    return x, r, a, pi, e


@pytest.mark.parametrize("action_ridge", [10.0, None])
def test_refit_with_unit_weights_is_the_plain_fit(action_ridge: float | None) -> None:
    x, r, a, pi, e = _terminating(np.random.default_rng(0), 300)
    model = fit_fqe(x, r, a, pi, e, horizon=8, action_ridge=action_ridge)
    assert model.iterations > 2 and model.converged
    refit = model.refit(np.ones((3, model.n_episodes)))
    first = np.flatnonzero(np.r_[True, e[1:] != e[:-1]])
    plain = model.initial_values(first).mean()
    np.testing.assert_array_equal(refit.iterations, model.iterations)
    assert refit.converged.all()
    np.testing.assert_allclose(refit.estimates, plain, rtol=0, atol=1e-10)
    np.testing.assert_allclose(refit.theta, np.broadcast_to(model.theta, refit.theta.shape),
                               rtol=0, atol=1e-10 * max(1.0, np.abs(model.theta).max()))


def test_refit_with_counts_is_the_fit_on_duplicated_episodes() -> None:
    x, r, a, pi, e = _terminating(np.random.default_rng(1), 200)
    model = fit_fqe(x, r, a, pi, e, horizon=8)
    counts = np.random.default_rng(2).multinomial(model.n_episodes,
                                                  np.full(model.n_episodes, 1 / 200))
    # the resampled log: episode k repeated counts[k] times, each copy a new episode
    rows = np.concatenate([np.flatnonzero(e == k) for k in np.repeat(np.arange(200), counts)])
    new_ep = np.cumsum(np.r_[True, (e[rows][1:] != e[rows][:-1])
                             | (np.diff(rows) != 1)]) - 1
    resampled = fit_fqe(x[rows], r[rows], a[rows], pi[rows], new_ep, horizon=8)
    refit = model.refit(counts)
    assert refit.iterations[0] == resampled.iterations
    np.testing.assert_allclose(refit.theta[0], resampled.theta, rtol=0,
                               atol=1e-9 * max(1.0, np.abs(resampled.theta).max()))
    first = np.flatnonzero(np.r_[True, new_ep[1:] != new_ep[:-1]])
    assert refit.estimates[0] == pytest.approx(resampled.initial_values(first).mean(),
                                               abs=1e-10)


def test_refit_interval_covers_the_truth_at_its_nominal_rate() -> None:
    """Over many datasets of a small MDP that the linear model represents exactly, the 95 %
    refit-bootstrap interval covers the true value in about 95 % of them (tolerance: 3.5
    binomial standard deviations) and its width matches the spread of the estimates."""
    seeds = 200
    covered, normal_covered, estimates, half = [], [], [], []
    for s in range(seeds):
        r, a, p, pi, e, obs = _chain(np.random.default_rng(1000 + s), 100)
        model = fit_fqe(obs, r, a, pi, e, ridge=1e-3, action_ridge=None)
        res = estimate_sequential(r, a, p, pi, e, estimators=("FQE",), fqe_model=model,
                                  n_bootstrap=100, rng=s)["FQE"]
        nrm = estimate_sequential(r, a, p, pi, e, estimators=("FQE",), fqe_model=model,
                                  n_bootstrap=100, rng=s, ci="normal")["FQE"]
        assert res.extra["refit_replicates"] == 100
        covered.append(res.covers(CHAIN_TRUTH))
        normal_covered.append(nrm.covers(CHAIN_TRUTH))
        estimates.append(res.estimate)
        half.append((res.ci_high - res.ci_low) / 2)
    tol = 3.5 * math.sqrt(0.95 * 0.05 / seeds)
    assert abs(np.mean(covered) - 0.95) <= tol, np.mean(covered)
    assert abs(np.mean(normal_covered) - 0.95) <= tol, np.mean(normal_covered)
    spread = np.std(estimates, ddof=1)
    assert 0.75 * spread < np.mean(half) / 1.96 < 1.33 * spread


def test_fqe_function_and_ci_none() -> None:
    r, a, p, pi, e, obs = _chain(np.random.default_rng(5), 300)
    res = fqe(obs, r, a, p, pi, e, n_bootstrap=50, rng=1, fqe_kwargs={"ridge": 1e-3})
    assert res.ci_low < res.estimate < res.ci_high and res.ci_method == "bootstrap"
    again = fqe(obs, r, a, p, pi, e, n_bootstrap=50, rng=1, fqe_kwargs={"ridge": 1e-3})
    assert again.ci == res.ci                                      # seeded
    none = fqe(obs, r, a, p, pi, e, ci=None, fqe_kwargs={"ridge": 1e-3})
    assert none.estimate == res.estimate and math.isnan(none.ci_low)
    assert "refit_replicates" not in none.extra


def test_bad_input_errors() -> None:
    r, a, p, pi, e, obs = _chain(np.random.default_rng(6), 40)
    model = fit_fqe(obs, r, a, pi, e)
    with pytest.raises(ValueError, match="episode_weights"):
        model.refit(np.ones((2, 39)))
    with pytest.raises(ValueError, match="episode_weights"):
        model.refit(-np.ones(40))
    with pytest.raises(ValueError, match="episode_weights"):
        model.refit(np.zeros(40))
    # a model of another log
    r2, a2, p2, pi2, e2, _ = _chain(np.random.default_rng(7), 30)
    with pytest.raises(ValueError, match="same log"):
        estimate_sequential(r2, a2, p2, pi2, e2, estimators=("FQE",), fqe_model=model)
    hand = FQEModel(model.theta, model.phi, model.action_dist, 1, True)
    with pytest.raises(ValueError, match="refit"):
        estimate_sequential(r, a, p, pi, e, estimators=("FQE",), fqe_model=hand)
    assert estimate_sequential(r, a, p, pi, e, estimators=("FQE",), fqe_model=hand,
                               ci=None)["FQE"].estimate == pytest.approx(
        estimate_sequential(r, a, p, pi, e, estimators=("FQE",), fqe_model=model,
                            ci=None)["FQE"].estimate)
    with pytest.raises(ValueError, match="n_bootstrap"):
        estimate_sequential(r, a, p, pi, e, estimators=("FQE",), fqe_model=model,
                            n_bootstrap=5)
    with pytest.raises(ValueError, match="fqe_model"):
        estimate_sequential(r, a, p, pi, e, estimators=("FQE",))
    with pytest.raises(ValueError, match="tol"):
        fit_fqe(obs, r, a, pi, e, tol=-1.0)
