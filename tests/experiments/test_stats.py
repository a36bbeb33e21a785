"""Summaries, Welch and paired t-tests, Holm adjustment and A/B tables on hand-computed data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from covercast.experiments.stats import compare, holm_adjust, paired_test, summarize, welch_test


def test_summarize_hand_computed():
    df = pd.DataFrame({"agent": ["a"] * 4 + ["b"] * 3,
                       "return": [1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 13.0],
                       "ctr": [0.1, np.nan, 0.3, 0.2, 0.5, 0.5, 0.5],
                       "opted_out": [True, False, False, False, False, False, False]})
    s = summarize(df, metrics=["return", "ctr", "opted_out"]).set_index(["agent", "metric"])
    r = s.loc[("a", "return")]
    # mean 2.5, sd sqrt(5/3), sem sd/2, t(0.975, 3) = 3.182446305
    assert r["n"] == 4 and r["mean"] == pytest.approx(2.5)
    assert r["sd"] == pytest.approx(math.sqrt(5 / 3))
    assert r["sem"] == pytest.approx(math.sqrt(5 / 3) / 2)
    half = 3.1824463052837078 * math.sqrt(5 / 3) / 2
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((2.5 - half, 2.5 + half))
    c = s.loc[("a", "ctr")]                                    # NaN left out
    assert c["n"] == 3 and c["mean"] == pytest.approx(0.2)
    assert s.loc[("a", "opted_out"), "mean"] == pytest.approx(0.25)   # booleans are rates
    z = s.loc[("b", "ctr")]                                    # constant: zero-width interval
    assert z["sd"] == 0 and z["ci_low"] == z["ci_high"] == 0.5
    assert list(summarize(df, metrics="return")["agent"]) == ["a", "b"]   # order of appearance


def test_summarize_levels_groups_and_small_samples():
    df = pd.DataFrame({"agent": ["a", "a", "b"], "env": ["x", "y", "x"],
                       "return": [1.0, 3.0, 5.0]})
    s = summarize(df, by=None, metrics=["return"], confidence=0.9)
    assert len(s) == 1 and s["n"].iloc[0] == 3
    half = stats.t.ppf(0.95, 2) * 2 / math.sqrt(3)
    assert s["ci_high"].iloc[0] == pytest.approx(3 + half)
    s = summarize(df, by=["agent", "env"], metrics=["return"])
    assert len(s) == 3 and s["ci_low"].isna().all()            # n = 1: no interval
    with pytest.raises(ValueError, match="nope"):
        summarize(df, by="nope")
    with pytest.raises(ValueError, match="missing_metric"):
        summarize(df, metrics=["missing_metric"])
    with pytest.raises(ValueError, match="confidence"):
        summarize(df, confidence=95)
    with pytest.raises(ValueError, match="empty"):
        summarize(df.iloc[:0])


def test_summarize_default_metrics_are_the_episode_columns():
    df = pd.DataFrame({"agent": ["a", "a"], "episode": [0, 1], "seed": [5, 6],
                       "return": [1.0, 2.0], "opens": [0, 1], "other": [3.0, 4.0]})
    assert set(summarize(df)["metric"]) == {"return", "opens"}


def test_welch_hand_computed_and_matches_scipy():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    r = welch_test(a, b)
    # var_a / n_a = (5/3) / 4, var_b / n_b = 10 / 5
    se = math.sqrt(5 / 12 + 2.0)
    df = (5 / 12 + 2.0) ** 2 / ((5 / 12) ** 2 / 3 + 2.0**2 / 4)
    assert r["diff"] == pytest.approx(-3.5) and r["se"] == pytest.approx(se)
    assert r["t"] == pytest.approx(-3.5 / se) and r["df"] == pytest.approx(df)
    assert r["p"] == pytest.approx(2 * stats.t.sf(3.5 / se, df))
    half = stats.t.ppf(0.975, df) * se
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((-3.5 - half, -3.5 + half))
    ref = stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert (r["n_a"], r["n_b"], r["mean_a"], r["mean_b"]) == (4, 5, 2.5, 6.0)


def test_welch_edge_cases():
    r = welch_test([1.0, 1.0, np.nan], [2.0, 2.0])
    assert r["n_a"] == 2 and r["p"] == 0.0 and r["t"] == -math.inf
    assert r["ci_low"] == r["ci_high"] == -1.0
    r = welch_test([3.0, 3.0], [3.0, 3.0])
    assert r["p"] == 1.0 and math.isnan(r["t"])
    r = welch_test(np.array([True, False, True]), np.array([False, False, True]))
    assert r["diff"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="at least 2"):
        welch_test([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="inf"):
        welch_test([1.0, np.inf], [1.0, 2.0])
    with pytest.raises(ValueError, match="confidence"):
        welch_test([1.0, 2.0], [1.0, 2.0], confidence=1.0)


def test_paired_hand_computed():
    r = paired_test([1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 1.0, 3.0])
    # d = [1, 0, 2, 1]: mean 1, sd sqrt(2/3), se sd / 2
    se = math.sqrt(2 / 3) / 2
    assert r["diff"] == pytest.approx(1.0) and r["se"] == pytest.approx(se)
    assert r["t"] == pytest.approx(1 / se) and r["df"] == 3 and r["n"] == 4
    assert r["p"] == pytest.approx(2 * stats.t.sf(1 / se, 3))
    half = 3.1824463052837078 * se
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((1 - half, 1 + half))
    r = paired_test([1.0, np.nan, 3.0, 5.0], [0.0, 1.0, 2.0, 4.0])    # incomplete pair dropped
    assert r["n"] == 3 and r["diff"] == 1.0 and r["p"] == 0.0
    with pytest.raises(ValueError, match="same length"):
        paired_test([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="2 complete pairs"):
        paired_test([1.0, np.nan], [1.0, 2.0])


def test_holm_adjust_hand_computed():
    adj = holm_adjust([0.01, 0.04, 0.03, np.nan])
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    np.testing.assert_allclose(adj[:3], [0.03, 0.06, 0.06])
    assert math.isnan(adj[3])
    np.testing.assert_allclose(holm_adjust([0.6, 0.9]), [1.0, 1.0])      # monotone, capped
    assert holm_adjust([]).size == 0


def _ab_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "agent": ["static"] * 4 + ["bandit"] * 4 + ["oracle"] * 4,
        "episode": [0, 1, 2, 3] * 3,
        "return": [1.0, 2.0, 3.0, 4.0, 2.0, 3.0, 5.0, 6.0, 10.0, 11.0, 12.0, 15.0],
        "ctr": [0.1, 0.2, np.nan, 0.2, 0.2, 0.3, 0.2, 0.3, 0.5, np.nan, np.nan, np.nan],
    })


def test_compare_against_the_baseline():
    df = _ab_frame()
    out = compare(df, baseline="static", metrics=["return", "ctr"])
    assert list(out["agent"]) == ["bandit", "bandit", "oracle", "oracle"]
    row = out[(out["agent"] == "bandit") & (out["metric"] == "return")].iloc[0]
    ref = welch_test([2.0, 3.0, 5.0, 6.0], [1.0, 2.0, 3.0, 4.0])
    assert row["diff"] == pytest.approx(1.5) and row["p"] == pytest.approx(ref["p"])
    assert row["lift"] == pytest.approx(1.5 / 2.5) and row["test"] == "welch"
    ret = out[out["metric"] == "return"]
    np.testing.assert_allclose(ret["p_holm"], holm_adjust(ret["p"].to_numpy()))
    orc = out[(out["agent"] == "oracle") & (out["metric"] == "ctr")].iloc[0]
    assert orc["n"] == 1 and math.isnan(orc["p"]) and orc["mean"] == 0.5   # too few values


def test_compare_paired():
    df = _ab_frame()
    out = compare(df, baseline="static", metrics=["return"], paired=True)
    row = out[out["agent"] == "bandit"].iloc[0]
    ref = paired_test([2.0, 3.0, 5.0, 6.0], [1.0, 2.0, 3.0, 4.0])
    assert row["p"] == pytest.approx(ref["p"]) and row["n"] == 4 and row["test"] == "paired"
    with pytest.raises(ValueError, match="pair_on"):
        compare(df, paired=True, pair_on="user")


def test_compare_errors():
    df = _ab_frame()
    with pytest.raises(ValueError, match="'heuristic'"):
        compare(df, baseline="heuristic")
    with pytest.raises(ValueError, match="policy"):
        compare(df, by="policy")


def test_summarize_intervals_respect_the_range_of_rates_and_counts():
    """A rare opt-out (1 of 5) and a skewed count would get negative t bounds; Wilson's interval
    stays inside [0, 1] and the log-scale one stays positive (issue 18, item 7)."""
    df = pd.DataFrame({"agent": ["a"] * 5, "opted_out": [True, False, False, False, False],
                       "opens": [0, 0, 0, 0, 9], "return": [-1.0, 0.5, 0.2, 0.1, 3.0],
                       "likes": [0, 0, 0, 0, 0]})
    s = summarize(df, metrics=["opted_out", "opens", "return", "likes"]).set_index("metric")
    t_half = stats.t.ppf(0.975, 4) * df["opens"].std(ddof=1) / math.sqrt(5)
    assert 1.8 - t_half < 0                            # the t interval would go negative
    assert list(s["interval"]) == ["wilson", "log-t", "t", "log-t"]
    # Wilson by hand: p = 0.2, n = 5, z = 1.959964
    z, n, p = 1.959963984540054, 5, 0.2
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    w = s.loc["opted_out"]
    assert (w["ci_low"], w["ci_high"]) == pytest.approx((centre - half, centre + half))
    assert 0 < w["ci_low"] < 0.2 < w["ci_high"] < 1
    o = s.loc["opens"]
    factor = math.exp(t_half / 1.8)
    assert (o["ci_low"], o["ci_high"]) == pytest.approx((1.8 / factor, 1.8 * factor))
    assert o["ci_low"] > 0
    r = s.loc["return"]                                 # may be negative: plain t
    assert r["ci_high"] - r["mean"] == pytest.approx(r["mean"] - r["ci_low"])
    assert s.loc["likes", "ci_low"] == s.loc["likes", "ci_high"] == 0.0
    # a metric's interval can be chosen, and a wrong choice is refused
    t = summarize(df, metrics=["opens"], intervals={"opens": "t"})
    assert t["interval"].iloc[0] == "t" and t["ci_low"].iloc[0] < 0
    with pytest.raises(ValueError, match="negative values"):
        summarize(df, metrics=["return"], intervals={"return": "log-t"})
    with pytest.raises(ValueError, match="other than 0 and 1"):
        summarize(df, metrics=["opens"], intervals={"opens": "wilson"})
    with pytest.raises(ValueError, match="`intervals`"):
        summarize(df, metrics=["opens"], intervals={"opens": "bootstrap"})
    # one method for every metric (the reports over seed means give t half-widths)
    assert set(summarize(df, metrics=["opted_out", "opens"], intervals="t")["interval"]) \
        == {"t"}
    # a proportion given as per-seed rates is not 0/1: the log-scale interval, no error
    rates = summarize(pd.DataFrame({"opted_out": [0.01, 0.02, 0.0, 0.05]}), by=None)
    assert rates["interval"].iloc[0] == "log-t" and rates["ci_low"].iloc[0] > 0
