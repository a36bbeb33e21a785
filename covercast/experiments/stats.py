"""Statistics of evaluation results: confidence intervals, Welch and paired t-tests, A/B tables.

All functions take the per-episode DataFrames of :mod:`covercast.agents.evaluate` (or any
DataFrame of numeric columns) and treat episodes as independent replications.

* :func:`summarize` -- mean of each metric per group with a confidence interval that respects
  the metric's range: Wilson's score interval for a proportion (a 0/1 metric such as
  ``opted_out``), a Student-t interval on the log scale for a non-negative count or rate (so
  its bounds stay positive), a Student-t interval otherwise (``return``);
* :func:`welch_test` -- two independent samples (Welch's unequal-variance t-test, scipy's
  ``ttest_ind(equal_var=False)``), with the confidence interval of the difference;
* :func:`paired_test` -- two paired samples (``ttest_rel``): agents evaluated with the same seed
  meet the same users, so pairing episode by episode removes the between-user variance;
* :func:`compare` -- every agent against a baseline, per metric, with p-values and
  Holm-adjusted p-values (the family is one metric's comparisons with the baseline).

Missing values (a CTR without pushes, a satisfaction never surveyed) are left out of each
metric's sample and the sample size is reported; booleans (``opted_out``) count as 0/1, so
their mean is a rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from covercast._io import check_number

__all__ = ["DEFAULT_METRICS", "PROPORTION_METRICS", "NON_NEGATIVE_METRICS", "INTERVALS",
           "summarize", "welch_test", "paired_test", "compare", "holm_adjust"]

#: The metrics :func:`summarize` and :func:`compare` report by default (those present).
DEFAULT_METRICS: tuple[str, ...] = (
    "return", "pushes", "opens", "ctr", "pushes_per_day", "dwell_min", "likes", "shares",
    "comments", "opted_out", "hours_to_opt_out", "satisfaction")

#: Metrics that are 0/1 per episode: their mean is a proportion (Wilson interval).
PROPORTION_METRICS: tuple[str, ...] = ("opted_out",)

#: Metrics that are never negative (counts, rates, durations): log-scale t interval.
NON_NEGATIVE_METRICS: tuple[str, ...] = (
    "pushes", "opens", "ctr", "pushes_per_day", "opens_per_day", "sessions_per_day",
    "dwell_min", "dwell_per_day", "likes", "shares", "comments", "hours_to_opt_out",
    "seen", "sessions")

#: Interval methods of :func:`summarize` (its ``intervals`` argument).
INTERVALS: tuple[str, ...] = ("t", "wilson", "log-t")

_ID_COLUMNS = ("episode", "seed")


def _check_confidence(confidence: Any) -> float:
    return check_number(confidence, "confidence", lo=0, hi=1, lo_open=True, hi_open=True)


def _sample(x: Any, name: str) -> np.ndarray:
    """A 1-d float sample without NaN."""
    a = np.asarray(x)
    if a.dtype == bool:
        a = a.astype(np.float64)
    if a.ndim != 1:
        raise ValueError(f"`{name}` must be one-dimensional, got shape {a.shape}.")
    try:
        a = a.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`{name}` must hold numbers, got dtype {a.dtype}.") from e
    if np.isinf(a).any():
        raise ValueError(f"`{name}` contains inf; the t-test needs finite values.")
    return a[~np.isnan(a)]


def _interval(a: np.ndarray, confidence: float, method: str) -> dict[str, float]:
    """``_mean_ci`` with the bounds of ``method`` (see :data:`INTERVALS`)."""
    out = _mean_ci(a, confidence)
    n, mean = out["n"], out["mean"]
    if method == "t" or n < 2:
        return out
    if method == "wilson":
        z = float(stats.norm.ppf(0.5 + confidence / 2))
        denom = 1.0 + z * z / n
        centre = (mean + z * z / (2 * n)) / denom
        half = z / denom * math.sqrt(max(mean * (1 - mean), 0.0) / n + z * z / (4 * n * n))
        return out | {"ci_low": max(0.0, centre - half), "ci_high": min(1.0, centre + half)}
    # log-t: the t interval of log(mean) by the delta method, sem(log mean) = sem / mean
    if mean == 0.0:
        return out | {"ci_low": 0.0, "ci_high": 0.0}
    factor = math.exp(float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * out["sem"] / mean)
    return out | {"ci_low": mean / factor, "ci_high": mean * factor}


def _interval_method(m: str, raw: np.ndarray, a: np.ndarray, chosen: Mapping[str, str]
                     ) -> str:
    """The interval of metric ``m`` (``raw``: its column, ``a``: its sample)."""
    binary = bool(np.isin(a, (0.0, 1.0)).all())
    if m not in chosen:
        # defaults never raise: a proportion metric given as per-seed rates (not 0/1) gets the
        # log-scale interval, a "non-negative" one with negative values the t interval
        if binary and (raw.dtype == bool or m in PROPORTION_METRICS):
            return "wilson"
        if (m in NON_NEGATIVE_METRICS or m in PROPORTION_METRICS) and not (a < 0).any():
            return "log-t"
        return "t"
    method = chosen[m]
    if method == "wilson" and not binary:
        raise ValueError(f"Metric {m!r} takes values other than 0 and 1: a Wilson interval "
                         "is for proportions; choose intervals={...: 't'}.")
    if method == "log-t" and (a < 0).any():
        raise ValueError(f"Metric {m!r} has negative values: a log-scale interval is for "
                         "non-negative metrics; choose intervals={...: 't'}.")
    return method


def _mean_ci(a: np.ndarray, confidence: float) -> dict[str, float]:
    n = a.size
    mean = float(a.mean()) if n else math.nan
    sd = float(a.std(ddof=1)) if n >= 2 else math.nan
    sem = sd / math.sqrt(n) if n >= 2 else math.nan
    if n >= 2:
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
        lo, hi = mean - half, mean + half
    else:
        lo = hi = math.nan
    return {"n": n, "mean": mean, "sd": sd, "sem": sem, "ci_low": lo, "ci_high": hi}


def _metrics(df: pd.DataFrame, metrics: Sequence[str] | None, exclude: Sequence[str]
             ) -> list[str]:
    if metrics is None:
        chosen = [m for m in DEFAULT_METRICS if m in df.columns]
        if not chosen:
            chosen = [c for c in df.columns if c not in exclude and c not in _ID_COLUMNS
                      and (pd.api.types.is_numeric_dtype(df[c])
                           or pd.api.types.is_bool_dtype(df[c]))]
        return chosen
    if isinstance(metrics, str):
        metrics = [metrics]
    missing = [m for m in metrics if m not in df.columns]
    if missing:
        raise ValueError(f"Unknown metric column(s) {missing}; the DataFrame has "
                         f"{list(df.columns)}.")
    return list(metrics)


def summarize(df: pd.DataFrame, by: str | Sequence[str] | None = "agent",
              metrics: Sequence[str] | None = None, confidence: float = 0.95,
              intervals: str | Mapping[str, str] | None = None) -> pd.DataFrame:
    """Mean of each metric per group, with a confidence interval that respects its range.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per episode (e.g. from :func:`covercast.agents.evaluate.evaluate`).
    by : str, list of str or None
        Grouping column(s) (default ``"agent"``); ``None``: the whole frame is one group.
    metrics : list of str, optional
        Columns to summarise (default: those of :data:`DEFAULT_METRICS` present).
    confidence : float
        Level of the intervals (default 0.95).
    intervals : str or dict, optional
        Interval method per metric (a dict) or for every metric (a str), one of
        :data:`INTERVALS`, overriding the defaults:
        ``"wilson"`` (Wilson's score interval, inside [0, 1]) for boolean columns and
        :data:`PROPORTION_METRICS` whose values are 0/1; ``"log-t"`` (``mean * exp(-/+ t *
        sem / mean)``, the Student-t interval of the log of the mean by the delta method:
        positive bounds, [0, 0] when every value is 0) for :data:`NON_NEGATIVE_METRICS` and for
        proportions given as rates (e.g. per-seed means); ``"t"`` (``mean -/+ t * sem``) for
        the rest, e.g. ``return``, which may be negative. Asked for explicitly, a Wilson
        interval of a metric with values other than 0/1, or a log-scale one of a metric with
        negative values, is refused.

    Returns
    -------
    pandas.DataFrame
        Long format, one row per (group, metric): the ``by`` columns, ``metric``, ``n``
        (non-missing values), ``mean``, ``sd``, ``sem`` (``sd / sqrt(n)``), ``ci_low``,
        ``ci_high`` (NaN when ``n < 2``) and ``interval`` (the method). Groups keep their
        order of appearance.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"`df` must be a pandas DataFrame, got {type(df).__name__}.")
    if df.empty:
        raise ValueError("`df` is empty: nothing to summarise.")
    confidence = _check_confidence(confidence)
    keys = [] if by is None else ([by] if isinstance(by, str) else list(by))
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise ValueError(f"Grouping column(s) {missing} not in the DataFrame (columns "
                         f"{list(df.columns)}); pass `by=` one of them, or None.")
    cols = _metrics(df, metrics, keys)
    chosen = ({m: intervals for m in cols} if isinstance(intervals, str)
              else dict(intervals or {}))
    bad = {m: v for m, v in chosen.items() if v not in INTERVALS}
    if bad:
        raise ValueError(f"`intervals` values must be one of {list(INTERVALS)}, got {bad}.")
    methods = {m: _interval_method(m, df[m].to_numpy(), _sample(df[m].to_numpy(), m), chosen)
               for m in cols}
    groups = [((), df)] if not keys else df.groupby(keys, sort=False, dropna=False)
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        for m in cols:
            rows.append(dict(zip(keys, key, strict=True)) | {"metric": m}
                        | _interval(_sample(g[m].to_numpy(), m), confidence, methods[m])
                        | {"interval": methods[m]})
    return pd.DataFrame(rows, columns=keys + ["metric", "n", "mean", "sd", "sem", "ci_low",
                                              "ci_high", "interval"])


def welch_test(a: Any, b: Any, confidence: float = 0.95) -> dict[str, float]:
    """Welch's t-test of ``mean(a) - mean(b)`` for two independent samples.

    ``t`` and ``p`` (two-sided) are scipy's ``ttest_ind(a, b, equal_var=False)``; the interval
    is ``diff -/+ t_{(1+confidence)/2, df} * se`` with ``se = sqrt(var_a / n_a + var_b / n_b)``
    and the Welch-Satterthwaite ``df``. NaNs are left out. When both samples are constant,
    ``se = 0``: the interval is the difference itself, and ``p`` is 1 for equal means, 0
    otherwise.

    Returns
    -------
    dict
        ``mean_a``, ``mean_b``, ``diff``, ``ci_low``, ``ci_high``, ``se``, ``t``, ``df``,
        ``p``, ``n_a``, ``n_b``.
    """
    confidence = _check_confidence(confidence)
    x, y = _sample(a, "a"), _sample(b, "b")
    for name, s in (("a", x), ("b", y)):
        if s.size < 2:
            raise ValueError(f"`{name}` needs at least 2 non-missing values for a t-test, got "
                             f"{s.size}.")
    na, nb = x.size, y.size
    va, vb = x.var(ddof=1) / na, y.var(ddof=1) / nb
    diff = float(x.mean() - y.mean())
    se = math.sqrt(va + vb)
    if se == 0.0:
        same = diff == 0.0
        return {"mean_a": float(x.mean()), "mean_b": float(y.mean()), "diff": diff,
                "ci_low": diff, "ci_high": diff, "se": 0.0,
                "t": math.nan if same else math.copysign(math.inf, diff),
                "df": float(na + nb - 2), "p": 1.0 if same else 0.0, "n_a": na, "n_b": nb}
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    res = stats.ttest_ind(x, y, equal_var=False)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return {"mean_a": float(x.mean()), "mean_b": float(y.mean()), "diff": diff,
            "ci_low": diff - half, "ci_high": diff + half, "se": se,
            "t": float(res.statistic), "df": float(df), "p": float(res.pvalue),
            "n_a": na, "n_b": nb}


def paired_test(a: Any, b: Any, confidence: float = 0.95) -> dict[str, float]:
    """Paired t-test of ``mean(a - b)`` (scipy's ``ttest_rel``), for aligned samples.

    ``a[i]`` and ``b[i]`` must be the same unit (e.g. the same episode seed under two agents).
    Pairs with a NaN on either side are left out.

    Returns
    -------
    dict
        ``mean_a``, ``mean_b`` (over the kept pairs), ``diff``, ``ci_low``, ``ci_high``, ``se``,
        ``t``, ``df``, ``p``, ``n``.
    """
    confidence = _check_confidence(confidence)
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"`a` and `b` must be 1-d samples of the same length (pairs), got "
                         f"shapes {x.shape} and {y.shape}.")
    x, y = x.astype(np.float64), y.astype(np.float64)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if x.size < 2:
        raise ValueError(f"A paired t-test needs at least 2 complete pairs, got {x.size}.")
    if np.isinf(x).any() or np.isinf(y).any():
        raise ValueError("The samples contain inf; the t-test needs finite values.")
    d = x - y
    n = d.size
    diff = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n)
    out = {"mean_a": float(x.mean()), "mean_b": float(y.mean()), "diff": diff, "se": se,
           "df": float(n - 1), "n": n}
    if se == 0.0:
        same = diff == 0.0
        return out | {"ci_low": diff, "ci_high": diff,
                      "t": math.nan if same else math.copysign(math.inf, diff),
                      "p": 1.0 if same else 0.0}
    res = stats.ttest_rel(x, y)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return out | {"ci_low": diff - half, "ci_high": diff + half, "t": float(res.statistic),
                  "p": float(res.pvalue)}


def holm_adjust(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of p-values (NaNs are kept and left out of the family)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def compare(df: pd.DataFrame, baseline: str = "static", by: str = "agent",
            metrics: Sequence[str] | None = None, confidence: float = 0.95,
            paired: bool = False, pair_on: str = "episode") -> pd.DataFrame:
    """Every group against ``baseline``, metric by metric: difference, CI, t, p.

    Parameters
    ----------
    df : pandas.DataFrame
        Per-episode results of several agents (e.g.
        :func:`covercast.agents.evaluate.evaluate_agents`).
    baseline : str
        The value of ``by`` to compare with (default ``"static"``, the source paper's control).
    by : str
        The column naming the agents.
    metrics : list of str, optional
        Default: :data:`DEFAULT_METRICS` present in ``df``.
    confidence : float
        Level of the intervals of the difference.
    paired : bool
        Pair episodes on ``pair_on`` and use :func:`paired_test` (valid when the agents were
        evaluated with the same seed, so row ``pair_on = i`` is the same user); default
        :func:`welch_test`.
    pair_on : str
        The column that identifies a pair (default ``"episode"``).

    Returns
    -------
    pandas.DataFrame
        One row per (agent, metric): ``agent``, ``metric``, ``mean``, ``baseline_mean``,
        ``diff``, ``ci_low``, ``ci_high``, ``lift`` (``diff / |baseline_mean|``), ``t``, ``df``,
        ``p``, ``p_holm`` (Holm-adjusted within the metric), ``n``, ``n_baseline``, ``test``.
        A metric with too few values for a test gets NaN statistics.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"`df` must be a pandas DataFrame, got {type(df).__name__}.")
    if by not in df.columns:
        raise ValueError(f"Column `by` = {by!r} is not in the DataFrame (columns "
                         f"{list(df.columns)}).")
    groups = list(pd.unique(df[by]))
    if baseline not in groups:
        raise ValueError(f"The baseline {baseline!r} is not among the {by!r} values {groups}; "
                         "pass `baseline=` one of them.")
    if paired and pair_on not in df.columns:
        raise ValueError(f"`pair_on` = {pair_on!r} is not a column; pairing needs a column that "
                         "identifies the unit (e.g. 'episode').")
    confidence = _check_confidence(confidence)
    cols = _metrics(df, metrics, [by])
    base = df[df[by] == baseline]
    rows = []
    for g in groups:
        if g == baseline:
            continue
        other = df[df[by] == g]
        for m in cols:
            row: dict[str, Any] = {"agent": g, "metric": m}
            if paired:
                left = other[[pair_on, m]].drop_duplicates(pair_on)
                right = base[[pair_on, m]].drop_duplicates(pair_on)
                merged = left.merge(right, on=pair_on, suffixes=("_a", "_b"))
                xa = merged[f"{m}_a"].to_numpy(dtype=np.float64)
                xb = merged[f"{m}_b"].to_numpy(dtype=np.float64)
                complete = ~(np.isnan(xa) | np.isnan(xb))
                enough = int(complete.sum()) >= 2
            else:
                xa, xb = _sample(other[m].to_numpy(), m), _sample(base[m].to_numpy(), m)
                enough = xa.size >= 2 and xb.size >= 2
            if enough:
                r = (paired_test(xa, xb, confidence) if paired
                     else welch_test(xa, xb, confidence))
                row |= {"mean": r["mean_a"], "baseline_mean": r["mean_b"], "diff": r["diff"],
                        "ci_low": r["ci_low"], "ci_high": r["ci_high"], "t": r["t"],
                        "df": r["df"], "p": r["p"],
                        "n": r["n"] if paired else r["n_a"],
                        "n_baseline": r["n"] if paired else r["n_b"]}
            else:
                a, b = _sample(xa, m), _sample(xb, m)
                row |= {"mean": float(a.mean()) if a.size else math.nan,
                        "baseline_mean": float(b.mean()) if b.size else math.nan,
                        "diff": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                        "t": math.nan, "df": math.nan, "p": math.nan, "n": a.size,
                        "n_baseline": b.size}
            bm = row["baseline_mean"]
            row["lift"] = row["diff"] / abs(bm) if bm and math.isfinite(bm) else math.nan
            row["test"] = "paired" if paired else "welch"
            rows.append(row)
    cols_out = ["agent", "metric", "mean", "baseline_mean", "diff", "ci_low", "ci_high", "lift",
                "t", "df", "p", "p_holm", "n", "n_baseline", "test"]
    out = pd.DataFrame(rows, columns=[c for c in cols_out if c != "p_holm"])
    out["p_holm"] = np.nan
    for m in cols:
        sel = (out["metric"] == m).to_numpy()
        if sel.any():
            out.loc[sel, "p_holm"] = holm_adjust(out.loc[sel, "p"].to_numpy(dtype=float))
    return out[cols_out]
