"""The OBD hold-out calibration and its statistics (JSD, Wilson intervals, the logit fit)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon as scipy_js_distance

from covercast.simulators.calibrate import (
    calibrate_obd,
    ctr_design,
    fit_logit,
    jensen_shannon,
    obd_population,
    plot_calibration,
    render_report,
    wilson_interval,
)

HAS_OBP = importlib.util.find_spec("obp") is not None


# ---------------------------------------------------------------------- Jensen-Shannon
def test_jensen_shannon_known_values():
    assert jensen_shannon([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-15)
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    # p = (1, 0), q = (1/2, 1/2): 0.5 * log2(4/3) + 0.25 * log2(2/3) + 0.25 * log2(2)
    expected = 0.5 * np.log2(4 / 3) + 0.25 * np.log2(2 / 3) + 0.25
    assert jensen_shannon([1, 0], [1, 1]) == pytest.approx(expected)


def test_jensen_shannon_matches_scipy_and_is_symmetric():
    rng = np.random.default_rng(1)
    for _ in range(20):
        p, q = rng.random(24), rng.random(24)
        p[rng.integers(24)] = 0.0
        d = jensen_shannon(p, q)
        assert 0.0 <= d <= 1.0
        assert d == pytest.approx(jensen_shannon(q, p))
        assert d == pytest.approx(scipy_js_distance(p, q, base=2) ** 2)


@pytest.mark.parametrize("p, q, match", [([1, 2], [1, 2, 3], "same length"),
                                         ([1, -1], [1, 1], "finite weights"),
                                         ([0, 0], [1, 1], "sums to 0"),
                                         ([1, np.nan], [1, 1], "finite weights")])
def test_jensen_shannon_errors(p, q, match):
    with pytest.raises(ValueError, match=match):
        jensen_shannon(p, q)


# ---------------------------------------------------------------------- Wilson
def test_wilson_interval_known_values_and_coverage_of_the_estimate():
    lo, hi = wilson_interval(1, 10)
    assert float(lo) == pytest.approx(0.017875749, abs=1e-6)
    assert float(hi) == pytest.approx(0.404154, abs=1e-5)
    k = np.array([0, 1, 5, 37, 100])
    n = np.array([10, 1357, 10, 8643, 100])
    lo, hi = wilson_interval(k, n)
    assert np.all(lo <= k / n) and np.all(k / n <= hi)
    assert lo[0] == 0.0 and hi[-1] == 1.0
    lo, hi = wilson_interval(np.array([0]), np.array([0]))
    assert np.isnan(lo[0]) and np.isnan(hi[0])
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(3, 2)


# ---------------------------------------------------------------------- the click model
def test_fit_logit_recovers_known_coefficients():
    rng = np.random.default_rng(7)
    n = 40_000
    hour = rng.uniform(0, 24, n)
    pos = rng.integers(1, 4, n)
    X, names = ctr_design(hour, pos, 2)
    assert names == ["intercept", "sin1", "cos1", "sin2", "cos2", "position2", "position3"]
    beta = np.array([-3.0, 0.6, -0.4, 0.2, 0.0, -0.3, -0.6])
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ beta)))).astype(int)
    fit = fit_logit(X, y, names)
    z = (fit.coef - beta) / fit.se
    assert np.all(np.abs(z) < 4), z
    assert fit.events == y.sum() and fit.n == n
    assert np.all(np.linalg.eigvalsh(fit.cov) > 0)


def test_fit_logit_refuses_degenerate_data():
    X, names = ctr_design(np.arange(10.0), np.ones(10, int), 0)
    with pytest.raises(ValueError, match="constant"):
        fit_logit(X, np.zeros(10), names)
    with pytest.raises(ValueError, match="rank deficient"):  # position dummies all zero
        fit_logit(X, np.r_[np.zeros(9), 1], names)
    with pytest.raises(ValueError, match="only 0 and 1"):
        fit_logit(X[:, :1], np.full(10, 0.5), names[:1])


def test_obd_population_carries_the_traffic():
    rate = np.linspace(1.0, 24.0, 24)
    params = obd_population(rate, n_users=50, activity_shape=2.0)
    act = params.activity_matrix()[0]
    assert act.shape == (168,)
    np.testing.assert_allclose(act.reshape(7, 24) * 50, np.tile(rate, (7, 1)))
    with pytest.raises(ValueError, match="24 finite rates"):
        obd_population(np.ones(23), 10, 1.0)


# ---------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    if not HAS_OBP:
        pytest.skip('the OBD sample ships inside obp: pip install "covercast[obd]"')
    out = tmp_path_factory.mktemp("calib")
    return out, calibrate_obd(out, seed=3, n_replicates=40, n_users=500)


@pytest.mark.obd
def test_calibration_writes_its_three_files(calibrated):
    out, metrics = calibrated
    assert sorted(p.name for p in out.iterdir()) == ["calibration.png", "metrics.json",
                                                    "report.md"]
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert (out / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert report == render_report(metrics)
    for needle in ("Jensen-Shannon", "Wilson", "obp 0.4.1", metrics["data"]["sha256"][:16],
                   "2019-11-30", f"{metrics['jsd']['sim_vs_real']:.4f}", "Limitations"):
        assert needle in report, needle


@pytest.mark.obd
def test_calibration_numbers_are_sane(calibrated):
    _, m = calibrated
    d = m["data"]
    assert d["rows"] == 10_000 and d["clicks"] == 38
    assert d["train_rows"] + d["test_rows"] == 10_000
    assert d["test_day"] == "2019-11-30" and len(d["train_days"]) == 6
    jsd = m["jsd"]
    for key in ("sim_vs_real", "fitted_profile_vs_real", "flat_vs_real"):
        assert 0.0 <= jsd[key] <= 1.0
    for key in ("sim_day_vs_real", "sim_day_vs_fitted_profile"):
        assert 0.0 <= jsd[key]["lo"] <= jsd[key]["median"] <= jsd[key]["hi"] <= 1.0
    assert 0.0 <= jsd["train_days_pairwise"]["min"] <= jsd["train_days_pairwise"]["max"] <= 1
    # the fitted profile is far closer to the real day than a flat one
    assert jsd["fitted_profile_vs_real"] < jsd["flat_vs_real"] / 2
    tr = m["traffic"]
    assert sum(tr["real_test_counts"]) == d["test_rows"]
    assert sum(tr["train_counts"]) == d["train_rows"]
    assert sum(tr["fitted_expected_counts"]) == pytest.approx(d["train_rows"] / 6)
    assert all(lo <= hi for lo, hi in zip(tr["sim_lo"], tr["sim_hi"], strict=True))
    assert tr["sim_volume"]["lo"] <= tr["sim_volume"]["mean"] <= tr["sim_volume"]["hi"]

    def check(block):
        for side in ("real", "sim"):
            b = block[side]
            for c, lo, hi, k, n in zip(b["ctr"], b["wilson_lo"], b["wilson_hi"], b["clicks"],
                                       b["impressions"], strict=True):
                assert 0 <= k <= n
                if n == 0:
                    assert c is None and lo is None and hi is None
                else:
                    assert 0.0 <= lo <= c <= hi <= 1.0
        s = block["sim"]
        for lo, hi in zip(s["pi_lo"], s["pi_hi"], strict=True):
            assert lo <= hi and 0 <= lo and hi <= 1
        for r, lo, hi, inside in zip(block["real"]["ctr"], s["pi_lo"], s["pi_hi"],
                                     block["real_inside_sim_interval"], strict=True):
            assert inside == (lo - 1e-15 <= r <= hi + 1e-15)

    for key in ("overall", "by_hour", "by_position"):
        check(m["ctr"][key])
    assert len(m["ctr"]["by_hour"]["real"]["ctr"]) == 24
    assert len(m["ctr"]["by_position"]["real"]["ctr"]) == 3
    cm = m["ctr_model"]
    assert cm["clicks"] == d["train_clicks"] and len(cm["coef"]) == len(cm["se"]) == 7
    assert all(s > 0 for s in cm["se"])
    # the plug-in model reproduces the training CTR (a logit MLE with an intercept matches it)
    assert cm["ctr_overall"] == pytest.approx(d["train_clicks"] / d["train_rows"], rel=0.15)
    for t in cm["lr_tests"].values():
        assert t["statistic"] >= 0 and 0 <= t["p_value"] <= 1


@pytest.mark.obd
def test_calibration_is_seeded(calibrated, tmp_path):
    out, m = calibrated
    again = calibrate_obd(tmp_path / "again", seed=3, n_replicates=40, n_users=500)
    assert again == m
    other = calibrate_obd(tmp_path / "other", seed=4, n_replicates=40, n_users=500)
    assert other["traffic"]["sim_mean_counts"] != m["traffic"]["sim_mean_counts"]
    assert other["data"] == m["data"] and other["ctr_model"] == m["ctr_model"]


@pytest.mark.obd
def test_plot_reads_the_saved_metrics(calibrated, tmp_path):
    out, _ = calibrated
    path = plot_calibration(out / "metrics.json", tmp_path / "fig" / "again.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in path.parent.iterdir()] == ["again.png"]


@pytest.mark.parametrize("kwargs, match", [({"n_replicates": 5}, "n_replicates"),
                                           ({"n_users": 0}, "n_users"),
                                           ({"seed": -1}, "seed"),
                                           ({"n_harmonics": 9}, "n_harmonics"),
                                           ({"policy": "greedy"}, "'random', 'bts'")])
def test_calibration_argument_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        calibrate_obd(tmp_path, **kwargs)
