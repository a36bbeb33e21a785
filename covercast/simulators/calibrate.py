"""Calibrate covercast against real logged traffic: the Open Bandit Dataset hold-out check.

:func:`calibrate_obd` asks a narrow, checkable question: fitted on six days of the real OBD
sample (ZOZOTOWN, 2019-11-24 .. 11-29), does covercast's engine reproduce the seventh day's
hourly traffic, and does a small click model fitted on the same six days predict that day's
click-through rate by hour and by position? The steps:

1. **Split.** Days are UTC calendar days; the last day of the sample is held out, all earlier
   days are the training set.
2. **Traffic model.** The hourly profile ``p_h`` is the share of training impressions in hour
   ``h`` (0-23 UTC, all training days pooled, unsmoothed) and the daily volume ``m`` their mean
   per day. A one-week sample has a single Saturday -- the held-out day -- so no day-of-week
   level can be estimated; the per-day volumes are reported instead.
3. **Population.** A :class:`~covercast.simulators.params.PopulationParams` with ONE segment
   whose 168-hour activity profile is ``m * p_h / n_users`` sessions per user and hour (the same
   every weekday). Its per-user activity multiplier Gamma(k, 1/k) is set by the method of
   moments so that the simulated daily volume has the real between-day variance:
   ``Var(day) = m + m^2 / (n_users * k)`` (the real days vary far more than Poisson). The other
   user parameters are irrelevant here (no push is sent) and keep neutral values.
4. **Simulation.** :func:`covercast.simulators.population.simulate_log` runs the held-out day
   (``policy=None``, one day from its midnight UTC) ``n_replicates`` times with independent
   seeds; its organic ``session`` rows are the simulated impressions.
5. **Click model.** A logistic regression of click on ``n_harmonics`` hour-of-day harmonics
   (``sin/cos(2 pi j h / 24)``, ``h`` the fractional UTC hour) and position dummies (position 1
   is the baseline), fitted by maximum likelihood (Newton-Raphson) on the training days, with
   standard errors from the observed information and likelihood-ratio tests of the hour and
   position terms. Each simulated impression gets a position (uniform over 1-3 for the
   ``random`` logging policy, the training shares otherwise) and a click drawn from the model,
   with the coefficients of each replicate drawn from the MLE's asymptotic normal distribution,
   so the simulated intervals carry parameter uncertainty as well as binomial noise.
6. **Comparison** with the real held-out day: the Jensen-Shannon divergence (base 2, in
   [0, 1]) of the hourly traffic distributions, next to two references -- a flat profile vs
   the real day, and the divergence between real training days (pairwise, and each day vs the
   pooled other training days: the day-to-day noise floor); CTR overall, by hour and by
   position with 95 % Wilson intervals, real and simulated, and whether the real held-out CTR
   falls inside the simulated 95 % predictive interval (2.5-97.5 percentiles of the
   per-replicate CTR).

The results go to ``out_dir``: ``metrics.json`` (every number), ``report.md`` (tables,
assumptions, provenance) and ``calibration.png`` (plotted from the saved ``metrics.json``),
each written atomically.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2
from tqdm.auto import tqdm

from covercast._io import atomic_write, atomic_write_text, check_int, sha256_file
from covercast.covers.attributes import ATTRIBUTE_NAMES, DEFAULT_STYLES, DEFAULT_TOPICS
from covercast.covers.procedural import default_bank
from covercast.simulators.obd import load_obd, obd_path, obd_root
from covercast.simulators.params import (
    HOURS_PER_WEEK,
    PopulationParams,
    Segment,
)
from covercast.simulators.population import simulate_log

#: z of a two-sided 95 % interval.
Z95 = 1.959963984540054
#: Bounds on the fitted activity shape k (k -> large means Poisson day volumes).
SHAPE_BOUNDS = (1e-3, 1e6)
METRICS_FILE, REPORT_FILE, FIGURE_FILE = "metrics.json", "report.md", "calibration.png"


# ---------------------------------------------------------------------- small statistics
def jensen_shannon(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (base 2) between two histograms; in [0, 1].

    ``p`` and ``q`` are non-negative weights over the same bins (counts are fine: each is
    normalised). Empty bins are allowed (``0 log 0 = 0``).

    Raises
    ------
    ValueError
        If the shapes differ, a weight is negative or not finite, or a histogram sums to 0.
    """
    a = np.asarray(p, dtype=np.float64)
    b = np.asarray(q, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"`p` and `q` must be 1-d and of the same length, got shapes {a.shape} "
                         f"and {b.shape}.")
    for name, x in (("p", a), ("q", b)):
        if not np.all(np.isfinite(x)) or np.any(x < 0):
            raise ValueError(f"`{name}` must hold finite weights >= 0.")
        if x.sum() <= 0:
            raise ValueError(f"`{name}` sums to 0; a histogram needs some mass.")
    a, b = a / a.sum(), b / b.sum()
    m = 0.5 * (a + b)

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return float(min(1.0, max(0.0, 0.5 * kl(a) + 0.5 * kl(b))))


def wilson_interval(k: np.ndarray | int, n: np.ndarray | int, z: float = Z95
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion ``k / n`` (vectorised).

    Returns ``(lo, hi)``; NaN where ``n == 0``. The interval always contains ``k / n``.

    Raises
    ------
    ValueError
        If ``k`` or ``n`` is negative or ``k > n``.
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if np.any(k < 0) or np.any(n < 0) or np.any(k > n):
        raise ValueError("Wilson interval needs 0 <= k <= n.")
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        lo = np.clip(centre - half, 0.0, 1.0)
        hi = np.clip(centre + half, 0.0, 1.0)
    # guard rounding at the ends, where the exact interval touches p
    lo = np.where(n > 0, np.minimum(lo, p), np.nan)
    hi = np.where(n > 0, np.maximum(hi, p), np.nan)
    return lo, hi


@dataclass
class LogitFit:
    """A logistic regression fitted by maximum likelihood."""

    names: list[str]
    """Coefficient names, in column order of the design matrix."""
    coef: np.ndarray
    """Maximum likelihood estimates."""
    cov: np.ndarray
    """Inverse observed information (the asymptotic covariance of ``coef``)."""
    loglik: float
    """Log likelihood at the optimum."""
    n: int
    """Observations."""
    events: int
    """Observations with outcome 1."""
    iterations: int
    """Newton-Raphson iterations used."""

    @property
    def se(self) -> np.ndarray:
        """Standard errors of ``coef``."""
        return np.sqrt(np.diag(self.cov))


def fit_logit(X: np.ndarray, y: np.ndarray, names: Sequence[str], *, max_iter: int = 100,
              tol: float = 1e-10) -> LogitFit:
    """Fit ``P(y = 1) = sigmoid(X @ beta)`` by Newton-Raphson.

    Raises
    ------
    ValueError
        If shapes disagree, ``y`` is not 0/1, the outcome is constant, the design is rank
        deficient, or the fit does not converge (e.g. complete separation).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],) or len(names) != X.shape[1]:
        raise ValueError(f"fit_logit: X {X.shape}, y {y.shape} and {len(names)} names disagree.")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("fit_logit: `y` must hold only 0 and 1.")
    events = int(y.sum())
    if events == 0 or events == y.size:
        raise ValueError(f"fit_logit: the outcome is constant ({events} events in {y.size}); "
                         "a logistic model needs both outcomes.")
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(f"fit_logit: the design {list(names)} is rank deficient; drop a "
                         "redundant term.")
    beta = np.zeros(X.shape[1])
    p0 = events / y.size
    beta[0] = math.log(p0 / (1 - p0))  # column 0 is the intercept
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        eta = X @ beta
        p = 1.0 / (1.0 + np.exp(-eta))
        w = p * (1 - p)
        info = X.T @ (X * w[:, None])
        step = np.linalg.solve(info, X.T @ (y - p))
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    else:
        raise ValueError(f"fit_logit did not converge in {max_iter} iterations (complete "
                         "separation?); use fewer terms.")
    if np.max(np.abs(beta)) > 30:
        raise ValueError(f"fit_logit: coefficients diverge ({dict(zip(names, beta.round(1), strict=True))}); "
                         "the data separate the outcome, use fewer terms.")
    eta = X @ beta
    p = 1.0 / (1.0 + np.exp(-eta))
    info = X.T @ (X * (p * (1 - p))[:, None])
    loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    return LogitFit(list(names), beta, np.linalg.inv(info), loglik, int(y.size), events,
                    iterations)


def ctr_design(hour: np.ndarray, position: np.ndarray, n_harmonics: int
               ) -> tuple[np.ndarray, list[str]]:
    """Design matrix of the click model: intercept, hour harmonics, position 2/3 dummies."""
    h = np.asarray(hour, dtype=np.float64)
    pos = np.asarray(position)
    cols, names = [np.ones_like(h)], ["intercept"]
    for j in range(1, n_harmonics + 1):
        ang = 2 * np.pi * j * h / 24.0
        cols += [np.sin(ang), np.cos(ang)]
        names += [f"sin{j}", f"cos{j}"]
    for k in (2, 3):
        cols.append((pos == k).astype(np.float64))
        names.append(f"position{k}")
    return np.column_stack(cols), names


# ---------------------------------------------------------------------- helpers
def _hour_of_day(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    t = pd.DatetimeIndex(ts).tz_convert("UTC")
    return (t.hour + t.minute / 60.0 + t.second / 3600.0 + t.microsecond / 3.6e9).to_numpy(
        dtype=np.float64)


def _rate_table(k: np.ndarray, n: np.ndarray) -> dict[str, list]:
    lo, hi = wilson_interval(k, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
    return {"clicks": [int(x) for x in k], "impressions": [int(x) for x in n],
            "ctr": rate.tolist(), "wilson_lo": lo.tolist(), "wilson_hi": hi.tolist()}


def _finite_or_none(x: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python numbers."""
    if isinstance(x, dict):
        return {str(k): _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_or_none(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_finite_or_none(v) for v in x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    return x




def obd_population(hourly_rate: np.ndarray, n_users: int, activity_shape: float
                   ) -> PopulationParams:
    """A one-segment population whose summed session rate is ``hourly_rate`` (24 values).

    Each of the ``n_users`` users has ``hourly_rate[h] / n_users`` sessions per hour at hour
    ``h`` (UTC) of every day of the week, times its Gamma(``activity_shape``) multiplier. Taste,
    topic, open and dwell parameters are neutral: this population is only used for its organic
    sessions.
    """
    rate = np.asarray(hourly_rate, dtype=np.float64)
    if rate.shape != (24,) or not np.all(np.isfinite(rate)) or np.any(rate < 0) \
            or rate.sum() <= 0:
        raise ValueError(f"`hourly_rate` must be 24 finite rates >= 0 with a positive sum, got "
                         f"{rate!r}.")
    activity = np.tile(rate / n_users, HOURS_PER_WEEK // 24)
    seg = Segment(
        name="obd_traffic", weight=1.0, activity=[float(x) for x in activity],
        activity_shape=float(activity_shape),
        taste_mean=[0.0] * (len(ATTRIBUTE_NAMES) + len(DEFAULT_STYLES)), taste_sd=0.0,
        topic_mean=[0.0] * len(DEFAULT_TOPICS), topic_sd=0.0,
        open_intercept=0.0, dwell_mu=math.log(60.0), dwell_sigma=1.0,
        session_dwell_mu=math.log(60.0))
    return PopulationParams(segments=[seg], name="obd_traffic",
                            source="covercast.simulators.calibrate.calibrate_obd: hourly "
                                   "traffic of the Open Bandit Dataset sample (training days)")


# ---------------------------------------------------------------------- the calibration
def calibrate_obd(out_dir: str | os.PathLike, *, policy: str = "random", campaign: str = "all",
                  seed: int = 0, n_replicates: int = 200, n_users: int = 1000,
                  n_harmonics: int = 2, progress: bool = False) -> dict[str, Any]:
    """Fit traffic and CTR on all OBD days but the last, simulate the last, compare.

    See the module docstring for the method.

    Parameters
    ----------
    out_dir:
        Folder for ``metrics.json``, ``report.md`` and ``calibration.png`` (created).
    policy, campaign:
        Which OBD sample (:func:`covercast.simulators.obd.load_obd`).
    seed:
        Seed of all simulation and click draws (split with :class:`numpy.random.SeedSequence`).
    n_replicates:
        Simulated held-out days (>= 20, for the 2.5/97.5 percentiles).
    n_users:
        Simulated users carrying the traffic (>= 1); only the per-user rate depends on it.
    n_harmonics:
        Hour-of-day harmonics in the click model (0-4; 2 by default: with about 40 clicks,
        keep the model small).
    progress:
        Show a progress bar over replicates.

    Returns
    -------
    dict
        The metrics, as written to ``metrics.json`` (NaN written as null).

    Raises
    ------
    ValueError
        For bad arguments or a sample with fewer than 3 days.
    ModuleNotFoundError
        If obp (which ships the data) is not installed.
    """
    check_int(seed, "seed", 0)
    check_int(n_replicates, "n_replicates", 20)
    check_int(n_users, "n_users")
    check_int(n_harmonics, "n_harmonics", 0, 4)     # the data hold ~40 clicks
    out_dir = Path(out_dir)

    # ---- data and split
    df = load_obd(policy, campaign)
    day = df["timestamp"].dt.floor("D")
    days = sorted(day.unique())
    if len(days) < 3:
        raise ValueError(f"The OBD sample spans {len(days)} day(s); the hold-out check needs at "
                         "least 3 (2 training days for the noise floor).")
    test_day = days[-1]
    train = df[day < test_day]
    test = df[day == test_day]
    train_hour = _hour_of_day(train["timestamp"])
    test_hour = _hour_of_day(test["timestamp"])

    # ---- traffic model
    train_counts = np.bincount(train_hour.astype(int), minlength=24).astype(np.float64)
    profile = train_counts / train_counts.sum()
    per_day = train.groupby(day[day < test_day]).size().to_numpy(dtype=np.float64)
    m, v = float(per_day.mean()), float(per_day.var(ddof=1))
    if v > m:
        shape = m * m / (n_users * (v - m))
    else:
        shape = SHAPE_BOUNDS[1]
    shape = float(np.clip(shape, *SHAPE_BOUNDS))
    hourly_rate = m * profile
    params = obd_population(hourly_rate, n_users, shape)

    # ---- click model
    X, names = ctr_design(train_hour, train["position"].to_numpy(), n_harmonics)
    y = train["click"].to_numpy()
    fit = fit_logit(X, y, names)
    lr_tests = {}
    groups = {"hour": [i for i, nm in enumerate(names) if nm.startswith(("sin", "cos"))],
              "position": [i for i, nm in enumerate(names) if nm.startswith("position")]}
    for g, cols in groups.items():
        if not cols:
            continue
        keep = [i for i in range(len(names)) if i not in cols]
        reduced = fit_logit(X[:, keep], y, [names[i] for i in keep])
        stat = 2.0 * (fit.loglik - reduced.loglik)
        lr_tests[g] = {"df": len(cols), "statistic": stat, "p_value": float(chi2.sf(stat, len(cols)))}
    if policy == "random":
        pos_probs = np.full(3, 1.0 / 3.0)
        pos_source = "uniform (the random logging policy's design)"
    else:
        pos_probs = np.bincount(train["position"], minlength=4)[1:] / len(train)
        pos_source = "the training days' position shares"

    # ---- simulate the held-out day
    bank = default_bank()  # covers are never pushed here; the engine just needs a bank
    ss = np.random.SeedSequence(seed)
    sim_ss, click_ss = ss.spawn(2)
    rep_seeds = sim_ss.spawn(n_replicates)
    click_rng = np.random.default_rng(click_ss)
    chol = np.linalg.cholesky(fit.cov)
    R = n_replicates
    sim_counts = np.zeros((R, 24))
    sim_clicks_h = np.zeros((R, 24))
    sim_imp_pos = np.zeros((R, 3))
    sim_clicks_pos = np.zeros((R, 3))
    for r in tqdm(range(R), disable=not progress, desc="OBD hold-out", unit="day"):
        log = simulate_log(params, None, days=1, n_users=n_users, seed=rep_seeds[r], bank=bank,
                           start=test_day)
        sess = log[log["event"] == "session"]
        h = _hour_of_day(sess["timestamp"])
        hb = np.minimum(h.astype(int), 23)
        pos = click_rng.choice(3, size=h.size, p=pos_probs) + 1
        beta = fit.coef + chol @ click_rng.standard_normal(fit.coef.size)
        Xs, _ = ctr_design(h, pos, n_harmonics)
        p = 1.0 / (1.0 + np.exp(-(Xs @ beta)))
        c = click_rng.random(h.size) < p
        sim_counts[r] = np.bincount(hb, minlength=24)
        sim_clicks_h[r] = np.bincount(hb, weights=c, minlength=24)
        sim_imp_pos[r] = np.bincount(pos - 1, minlength=3)
        sim_clicks_pos[r] = np.bincount(pos - 1, weights=c, minlength=3)

    # ---- traffic comparison
    test_counts = np.bincount(test_hour.astype(int), minlength=24).astype(np.float64)
    per_rep_jsd = np.array([jensen_shannon(sim_counts[r], test_counts) for r in range(R)])
    per_rep_floor = np.array([jensen_shannon(sim_counts[r], profile) for r in range(R)])
    day_counts = [np.bincount(train_hour[(day[day < test_day] == d).to_numpy()].astype(int),
                              minlength=24) for d in days[:-1]]
    pair = [jensen_shannon(day_counts[i], day_counts[j])
            for i in range(len(day_counts)) for j in range(i + 1, len(day_counts))]
    loo = [jensen_shannon(day_counts[i], np.sum([day_counts[j] for j in range(len(day_counts))
                                                 if j != i], axis=0))
           for i in range(len(day_counts))]
    sim_mean_counts = sim_counts.mean(axis=0)
    cnt_lo, cnt_hi = np.percentile(sim_counts, [2.5, 97.5], axis=0)
    vol = sim_counts.sum(axis=1)
    jsd = {
        "sim_vs_real": jensen_shannon(sim_mean_counts, test_counts),
        "fitted_profile_vs_real": jensen_shannon(profile, test_counts),
        "sim_day_vs_real": {"median": float(np.median(per_rep_jsd)),
                            "lo": float(np.percentile(per_rep_jsd, 2.5)),
                            "hi": float(np.percentile(per_rep_jsd, 97.5))},
        "sim_day_vs_fitted_profile": {"median": float(np.median(per_rep_floor)),
                                      "lo": float(np.percentile(per_rep_floor, 2.5)),
                                      "hi": float(np.percentile(per_rep_floor, 97.5))},
        "flat_vs_real": jensen_shannon(np.ones(24), test_counts),
        "train_days_pairwise": {"mean": float(np.mean(pair)), "min": float(np.min(pair)),
                                "max": float(np.max(pair)), "n_pairs": len(pair)},
        "train_day_vs_other_train_days": {"mean": float(np.mean(loo)), "min": float(np.min(loo)),
                                          "max": float(np.max(loo))},
    }
    traffic = {
        "hours_utc": list(range(24)),
        "real_test_counts": test_counts, "train_counts": train_counts,
        "fitted_expected_counts": hourly_rate,
        "sim_mean_counts": sim_mean_counts, "sim_lo": cnt_lo, "sim_hi": cnt_hi,
        "real_inside_sim_interval_hours": int(np.sum((test_counts >= cnt_lo)
                                                     & (test_counts <= cnt_hi))),
        "train_daily_volume": per_day, "train_daily_volume_mean": m,
        "train_daily_volume_var": v,
        "real_test_volume": float(test_counts.sum()),
        "sim_volume": {"mean": float(vol.mean()), "lo": float(np.percentile(vol, 2.5)),
                       "hi": float(np.percentile(vol, 97.5))},
        "real_volume_inside_sim_interval": bool(np.percentile(vol, 2.5) <= test_counts.sum()
                                                <= np.percentile(vol, 97.5)),
    }

    # ---- CTR comparison
    def compare(real_k, real_n, sim_k, sim_n) -> dict[str, Any]:
        real = _rate_table(np.atleast_1d(real_k), np.atleast_1d(real_n))
        pooled = _rate_table(np.atleast_1d(sim_k.sum(axis=0)), np.atleast_1d(sim_n.sum(axis=0)))
        with np.errstate(invalid="ignore", divide="ignore"):
            per_rep = np.where(sim_n > 0, sim_k / np.where(sim_n > 0, sim_n, 1), np.nan)
        pi_lo = np.nanpercentile(per_rep, 2.5, axis=0)
        pi_hi = np.nanpercentile(per_rep, 97.5, axis=0)
        rc = np.asarray(real["ctr"], dtype=np.float64)
        inside = (rc >= pi_lo - 1e-15) & (rc <= pi_hi + 1e-15)
        return {"real": real,
                "sim": {**pooled, "pi_lo": pi_lo.tolist(), "pi_hi": pi_hi.tolist()},
                "real_inside_sim_interval": inside.tolist()}

    test_click = test["click"].to_numpy()
    test_pos = test["position"].to_numpy()
    tb = test_hour.astype(int)
    by_hour = compare(np.bincount(tb, weights=test_click, minlength=24),
                      np.bincount(tb, minlength=24), sim_clicks_h, sim_counts)
    by_pos = compare(np.bincount(test_pos - 1, weights=test_click, minlength=3),
                     np.bincount(test_pos - 1, minlength=3), sim_clicks_pos, sim_imp_pos)
    overall = compare(np.array([test_click.sum()]), np.array([test_click.size]),
                      sim_clicks_h.sum(axis=1, keepdims=True), sim_counts.sum(axis=1,
                                                                              keepdims=True))
    # the same predictive interval against each real training day: does it cover real days?
    train_day = day[day < test_day]
    daily = train.groupby(train_day)["click"].agg(["sum", "size"])
    daily_ctr = (daily["sum"] / daily["size"]).to_numpy()
    ov_lo, ov_hi = overall["sim"]["pi_lo"][0], overall["sim"]["pi_hi"][0]
    train_days_ctr = {
        "day": [d.date().isoformat() for d in daily.index],
        **_rate_table(daily["sum"].to_numpy(), daily["size"].to_numpy()),
        "inside_sim_interval": [bool(ov_lo <= c <= ov_hi) for c in daily_ctr],
    }
    trb = train_hour.astype(int)
    train_by_hour = _rate_table(np.bincount(trb, weights=y, minlength=24),
                                np.bincount(trb, minlength=24))
    grid = np.arange(24) + 0.5
    model_hour = np.zeros(24)
    for k, w in zip((1, 2, 3), pos_probs, strict=True):
        Xg, _ = ctr_design(grid, np.full(24, k), n_harmonics)
        model_hour += w / (1.0 + np.exp(-(Xg @ fit.coef)))
    model_pos = []  # the model's CTR at each position, averaged over the training profile
    for k in (1, 2, 3):
        Xg, _ = ctr_design(grid, np.full(24, k), n_harmonics)
        model_pos.append(float(np.sum(profile / (1.0 + np.exp(-(Xg @ fit.coef))))))

    path = obd_path(policy, campaign)
    try:
        obp_version = importlib.metadata.version("obp")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - obp found above
        obp_version = "unknown"
    metrics: dict[str, Any] = {
        "config": {"policy": policy, "campaign": campaign, "seed": seed,
                   "n_replicates": n_replicates, "n_users": n_users,
                   "n_harmonics": n_harmonics},
        "data": {
            "dataset": "Open Bandit Dataset sample (ZOZOTOWN), Saito et al. 2020, CC BY 4.0",
            "file": str(path.relative_to(obd_root().parent.parent.parent)),
            "obp_version": obp_version, "sha256": sha256_file(path), "rows": int(len(df)),
            "clicks": int(df["click"].sum()),
            "first": df["timestamp"].min().isoformat(), "last": df["timestamp"].max().isoformat(),
            "train_days": [d.date().isoformat() for d in days[:-1]],
            "test_day": test_day.date().isoformat(),
            "test_weekday": test_day.day_name(),
            "train_rows": int(len(train)), "train_clicks": int(train["click"].sum()),
            "test_rows": int(len(test)), "test_clicks": int(test["click"].sum()),
        },
        "population": {"n_users": n_users, "activity_shape": shape,
                       "sessions_per_user_day": m / n_users,
                       "position_probabilities": pos_probs, "position_source": pos_source},
        "ctr_model": {"terms": names, "coef": fit.coef, "se": fit.se,
                      "z": fit.coef / fit.se, "loglik": fit.loglik, "n": fit.n,
                      "clicks": fit.events, "iterations": fit.iterations,
                      "lr_tests": lr_tests, "ctr_by_hour": model_hour,
                      "ctr_overall": float(np.sum(profile * model_hour)),
                      "ctr_by_position": model_pos},
        "jsd": jsd,
        "traffic": traffic,
        "ctr": {"overall": overall, "by_hour": by_hour, "by_position": by_pos,
                "train_by_hour": train_by_hour, "train_days": train_days_ctr,
                "hours_inside": int(np.sum(by_hour["real_inside_sim_interval"])),
                "positions_inside": int(np.sum(by_pos["real_inside_sim_interval"]))},
    }
    metrics = _finite_or_none(metrics)

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(out_dir / REPORT_FILE, render_report(metrics))
    plot_calibration(out_dir / METRICS_FILE, out_dir / FIGURE_FILE)
    return metrics


# ---------------------------------------------------------------------- report and figure
def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f} %"


def _ci(lo: float | None, hi: float | None, digits: int = 2) -> str:
    if lo is None or hi is None:
        return "n/a"
    return f"[{100 * lo:.{digits}f}, {100 * hi:.{digits}f}] %"


def render_report(metrics: dict[str, Any]) -> str:
    """The Markdown report of :func:`calibrate_obd`, from its metrics dict."""
    d, cfg, pop = metrics["data"], metrics["config"], metrics["population"]
    jsd, tr, ctr, cm = metrics["jsd"], metrics["traffic"], metrics["ctr"], metrics["ctr_model"]
    ov = ctr["overall"]
    L: list[str] = []
    L += ["# covercast vs the Open Bandit Dataset: hold-out calibration", "",
          f"Fitted on {len(d['train_days'])} days ({d['train_days'][0]} .. "
          f"{d['train_days'][-1]}), tested on the held-out {d['test_weekday']} "
          f"{d['test_day']} (UTC). Policy `{cfg['policy']}`, campaign `{cfg['campaign']}`, "
          f"seed {cfg['seed']}, {cfg['n_replicates']} simulated days of {cfg['n_users']} users.",
          "", "## Summary", "",
          f"* Hourly traffic: JSD(simulated, real held-out day) = **{jsd['sim_vs_real']:.4f}** "
          f"bits (a single simulated day: median {jsd['sim_day_vs_real']['median']:.4f}, 95 % "
          f"[{jsd['sim_day_vs_real']['lo']:.4f}, {jsd['sim_day_vs_real']['hi']:.4f}]). "
          f"References: flat profile vs real {jsd['flat_vs_real']:.4f}; real training day vs "
          f"the other training days {jsd['train_day_vs_other_train_days']['mean']:.4f} on "
          f"average (range {jsd['train_day_vs_other_train_days']['min']:.4f} .. "
          f"{jsd['train_day_vs_other_train_days']['max']:.4f}); between two real training "
          f"days {jsd['train_days_pairwise']['mean']:.4f} on average.",
          f"* Daily volume: real held-out {tr['real_test_volume']:.0f} impressions; simulated "
          f"{tr['sim_volume']['mean']:.0f} (95 % [{tr['sim_volume']['lo']:.0f}, "
          f"{tr['sim_volume']['hi']:.0f}]); inside: {tr['real_volume_inside_sim_interval']}. "
          f"Real hourly counts inside the simulated 95 % band in "
          f"{tr['real_inside_sim_interval_hours']}/24 hours.",
          f"* CTR: real held-out {_pct(ov['real']['ctr'][0])} ({ov['real']['clicks'][0]}/"
          f"{ov['real']['impressions'][0]}, Wilson {_ci(ov['real']['wilson_lo'][0], ov['real']['wilson_hi'][0])}); "
          f"simulated {_pct(ov['sim']['ctr'][0])} (95 % predictive "
          f"{_ci(ov['sim']['pi_lo'][0], ov['sim']['pi_hi'][0])}); inside: "
          f"{ov['real_inside_sim_interval'][0]}. By hour: real inside the simulated interval in "
          f"{ctr['hours_inside']}/24 hours; by position: {ctr['positions_inside']}/3.",
          f"* For scale, the same simulated interval holds "
          f"{sum(ctr['train_days']['inside_sim_interval'])}/{len(ctr['train_days']['day'])} of "
          "the real training days' CTRs ("
          + ", ".join(f"{_pct(c)}" for c in ctr["train_days"]["ctr"]) + ").",
          ""]
    L += ["## Data and provenance", "",
          f"* {d['dataset']}; file `{d['file']}` from obp {d['obp_version']} "
          f"(sha256 `{d['sha256'][:16]}...`), read with pandas (obp is never imported).",
          f"* {d['rows']} impressions, {d['clicks']} clicks, {d['first']} .. {d['last']}.",
          f"* Training: {d['train_rows']} impressions, {d['train_clicks']} clicks; held out: "
          f"{d['test_rows']} impressions, {d['test_clicks']} click"
          f"{'s' if d['test_clicks'] != 1 else ''}.",
          "* Timestamps are UTC as shipped (`+00:00`); the traffic trough at 18-20 UTC is "
          "03-05 in Japan (UTC+9), consistent with a Japanese site logged in true UTC.", ""]
    L += ["## Method and assumptions", "",
          "1. Days are UTC calendar days; the last one is held out.",
          "2. Traffic: the hourly profile is the share of training impressions per UTC hour "
          "(pooled over training days, unsmoothed); the daily volume is their mean per day "
          f"({tr['train_daily_volume_mean']:.1f}). One week holds one Saturday (the held-out "
          "day), so no day-of-week level can be estimated; every weekday gets the same "
          "profile. Training daily volumes: "
          + ", ".join(f"{x:.0f}" for x in tr["train_daily_volume"]) + ".",
          f"3. Population: one segment, {pop['n_users']} users, each with the profile times "
          f"{pop['sessions_per_user_day']:.3f} sessions per day. The per-user Gamma activity "
          f"shape k = {pop['activity_shape']:.4g} is set by the method of moments, "
          "Var(day) = m + m^2 / (n_users k), so that the simulated daily volume varies as "
          "much as the real days do (they vary far more than Poisson). In the simulator this "
          "spread comes from user heterogeneity redrawn with each simulated day; in reality "
          "it is a day-level effect. Other user parameters are neutral (no push is sent).",
          "4. Simulation: covercast's engine (`simulate_log(params, policy=None, days=1, "
          "start=<held-out midnight UTC>)`); each organic session is one impression.",
          f"5. Clicks: logistic model with {cfg['n_harmonics']} hour-of-day harmonics and "
          "position dummies, fitted by maximum likelihood on the training days. Positions of "
          f"simulated impressions: {pop['position_source']}. Each simulated day draws its "
          "coefficients from the MLE's asymptotic normal distribution, then one Bernoulli "
          "click per impression. Averaging over uncertain coefficients raises the mean "
          f"simulated CTR ({_pct(ctr['overall']['sim']['ctr'][0], 3)}) above the plug-in "
          f"model's ({_pct(cm['ctr_overall'], 3)}): the logistic curve is convex at these "
          "rates.",
          "6. Intervals: real CTRs carry 95 % Wilson intervals; simulated CTRs a Wilson interval "
          "on the pooled simulated counts (Monte Carlo precision) and a 95 % predictive interval "
          "(2.5-97.5 percentiles of the per-day CTR), which is what a single real day is "
          "compared with ('inside').",
          "7. JSD is the Jensen-Shannon divergence in bits (base 2): 0 for identical "
          "distributions, 1 for disjoint ones. A single day's ~1,400 impressions spread over "
          "24 hours carry sampling noise of their own: a simulated day vs the profile it was "
          f"drawn from scores {jsd['sim_day_vs_fitted_profile']['median']:.4f} (median).", ""]
    L += ["## Traffic by hour (UTC)", "",
          "| hour | real held-out | fitted expectation | simulated mean | simulated 95 % |",
          "|---:|---:|---:|---:|---:|"]
    for h in range(24):
        L.append(f"| {h:02d} | {tr['real_test_counts'][h]:.0f} | "
                 f"{tr['fitted_expected_counts'][h]:.1f} | {tr['sim_mean_counts'][h]:.1f} | "
                 f"[{tr['sim_lo'][h]:.0f}, {tr['sim_hi'][h]:.0f}] |")
    L += ["", "| Jensen-Shannon divergence (bits) | value |", "|---|---:|",
          f"| simulated (mean over days) vs real held-out | {jsd['sim_vs_real']:.4f} |",
          f"| fitted profile vs real held-out | {jsd['fitted_profile_vs_real']:.4f} |",
          f"| one simulated day vs real held-out (median) | "
          f"{jsd['sim_day_vs_real']['median']:.4f} |",
          f"| one simulated day vs fitted profile (median; sampling floor) | "
          f"{jsd['sim_day_vs_fitted_profile']['median']:.4f} |",
          f"| flat profile vs real held-out | {jsd['flat_vs_real']:.4f} |",
          f"| real training day vs other training days (mean) | "
          f"{jsd['train_day_vs_other_train_days']['mean']:.4f} |",
          f"| two real training days (mean of {jsd['train_days_pairwise']['n_pairs']} pairs) | "
          f"{jsd['train_days_pairwise']['mean']:.4f} |", ""]
    L += ["## Click model (training days)", "",
          f"{cm['n']} impressions, {cm['clicks']} clicks; log likelihood {cm['loglik']:.2f} "
          f"({cm['iterations']} Newton steps).", "",
          "| term | coefficient | SE | z |", "|---|---:|---:|---:|"]
    for t, b, s, z in zip(cm["terms"], cm["coef"], cm["se"], cm["z"], strict=True):
        L.append(f"| {t} | {b:.3f} | {s:.3f} | {z:.2f} |")
    L.append("")
    for g, t in cm["lr_tests"].items():
        L.append(f"* Likelihood-ratio test of the {g} terms: chi2({t['df']}) = "
                 f"{t['statistic']:.2f}, p = {t['p_value']:.3f}.")
    L += ["* With so few clicks the hour and position effects are weakly identified; the "
          "simulated intervals include this uncertainty.", ""]

    def rate_rows(label: str, block: dict[str, Any], keys: list[str]) -> list[str]:
        rows = [f"| {label} | real clicks/impr. | real CTR | real Wilson 95 % | sim CTR | "
                "sim Wilson 95 % (pooled) | sim predictive 95 % | inside |",
                "|---|---:|---:|---:|---:|---:|---:|:---:|"]
        r, s = block["real"], block["sim"]
        for i, k in enumerate(keys):
            rows.append(
                f"| {k} | {r['clicks'][i]}/{r['impressions'][i]} | {_pct(r['ctr'][i])} | "
                f"{_ci(r['wilson_lo'][i], r['wilson_hi'][i])} | {_pct(s['ctr'][i], 3)} | "
                f"{_ci(s['wilson_lo'][i], s['wilson_hi'][i], 3)} | "
                f"{_ci(s['pi_lo'][i], s['pi_hi'][i])} | "
                f"{'yes' if block['real_inside_sim_interval'][i] else 'no'} |")
        return rows

    L += ["## CTR, real held-out day vs simulated", ""]
    L += rate_rows("all", ctr["overall"], ["all"]) + [""]
    L += rate_rows("position", ctr["by_position"], ["1", "2", "3"]) + [""]
    L += rate_rows("hour (UTC)", ctr["by_hour"], [f"{h:02d}" for h in range(24)]) + [""]
    L += ["## Limitations", "",
          "* One week of data, one held-out day, and few clicks per hour (often none): most "
          "per-hour comparisons have little power; the overall and per-position rows are the "
          "informative ones.",
          "* OBD impressions are recommendation-widget views, not push notifications; the "
          "check is about covercast's traffic engine and a CTR model, not push behaviour.",
          "* The click model ignores the item shown. "
          + ("Under the random logging policy items are independent of hour and position, so "
             "hour and position effects are not confounded by them."
             if cfg["policy"] == "random" else
             "Under the bts logging policy the item shown depends on past clicks and so on "
             "time: the hour terms may partly reflect which items were shown."), ""]
    return "\n".join(L)


def plot_calibration(metrics_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Draw ``calibration.png`` from a saved ``metrics.json`` (matplotlib Agg, atomic write).

    Three panels: impressions by hour (real held-out day, fitted expectation, simulated mean
    and 95 % band); CTR by hour (real with Wilson intervals, simulated with its predictive
    band, the fitted model); CTR by position.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = json.loads(Path(metrics_path).read_text())
    tr, ctr, cm = metrics["traffic"], metrics["ctr"], metrics["ctr_model"]

    def arr(x: list) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in x], dtype=np.float64)

    hours = np.arange(24) + 0.5  # per-hour quantities are drawn at the centre of their hour
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=[1.2, 1.2, 0.6])
    ax1.fill_between(hours, arr(tr["sim_lo"]), arr(tr["sim_hi"]), step="mid", alpha=0.25,
                     color="C0", label="simulated 95 %")
    ax1.step(hours, arr(tr["sim_mean_counts"]), where="mid", color="C0", label="simulated mean")
    ax1.plot(hours, arr(tr["fitted_expected_counts"]), "--", color="C2",
             label="fitted (training days)")
    ax1.plot(hours, arr(tr["real_test_counts"]), "o", color="k", ms=4,
             label=f"real {metrics['data']['test_day']}")
    ax1.set(xlabel="hour of day (UTC)", ylabel="impressions per hour", xlim=(0, 24),
            xticks=range(0, 25, 3),
            title=f"Traffic  (JSD sim vs real = {metrics['jsd']['sim_vs_real']:.3f} bits)")
    ax1.legend(fontsize=8)

    bh = ctr["by_hour"]
    r_ctr, r_lo, r_hi = arr(bh["real"]["ctr"]), arr(bh["real"]["wilson_lo"]), \
        arr(bh["real"]["wilson_hi"])
    ax2.fill_between(hours, 100 * arr(bh["sim"]["pi_lo"]), 100 * arr(bh["sim"]["pi_hi"]),
                     step="mid", alpha=0.2, color="C0", label="simulated day, 95 % predictive")
    ax2.plot(hours, 100 * arr(bh["sim"]["ctr"]), color="C0", label="simulated (pooled)")
    ax2.plot(hours, 100 * arr(cm["ctr_by_hour"]), "--", color="C2", label="fitted model")
    ax2.errorbar(hours, 100 * r_ctr, yerr=100 * np.vstack([r_ctr - r_lo, r_hi - r_ctr]),
                 fmt="o", color="k", ms=4, capsize=2, label="real held-out, Wilson 95 %")
    top = 1.3 * 100 * np.nanmax(np.concatenate([arr(bh["sim"]["pi_hi"]), r_ctr]))
    ax2.set(xlabel="hour of day (UTC)", ylabel="CTR (%)", xlim=(0, 24), xticks=range(0, 25, 3),
            ylim=(0, top), title="CTR by hour (Wilson bars cut at the top)")
    ax2.legend(fontsize=8, loc="upper left")

    bp = ctr["by_position"]
    pos = np.arange(1, 4)
    p_ctr, p_lo, p_hi = arr(bp["real"]["ctr"]), arr(bp["real"]["wilson_lo"]), \
        arr(bp["real"]["wilson_hi"])
    s_ctr = arr(bp["sim"]["ctr"])
    ax3.errorbar(pos - 0.1, 100 * p_ctr, yerr=100 * np.vstack([p_ctr - p_lo, p_hi - p_ctr]),
                 fmt="o", color="k", capsize=3, label="real, Wilson 95 %")
    ax3.errorbar(pos + 0.1, 100 * s_ctr,
                 yerr=100 * np.vstack([s_ctr - arr(bp["sim"]["pi_lo"]),
                                       arr(bp["sim"]["pi_hi"]) - s_ctr]),
                 fmt="s", color="C0", capsize=3, label="simulated, 95 % predictive")
    top = 1.35 * 100 * np.nanmax(np.concatenate([p_hi, arr(bp["sim"]["pi_hi"])]))
    ax3.set(xlabel="position", ylabel="CTR (%)", title="CTR by position", xticks=pos,
            xlim=(0.5, 3.5), ylim=(0, top))
    ax3.legend(fontsize=7, loc="upper center")

    out_path = Path(out_path)
    atomic_write(out_path, lambda tmp: fig.savefig(tmp, format="png", dpi=110), suffix=".png")
    return out_path


__all__ = ["calibrate_obd", "ctr_design", "fit_logit", "jensen_shannon", "obd_population",
           "plot_calibration", "render_report", "wilson_interval", "LogitFit"]


# ---------------------------------------------------------------------- the activity slope
def obd_activity_slope(samples: Sequence[tuple[str, str]] | None = None,
                       floor: float = 0.05) -> dict[str, Any]:
    """How click rate moves with an hour's relative traffic in the real OBD sample.

    The population's ``open.beta_activity`` weighs ``log(rate(t) / mean_rate)`` in the open
    logit: users open more when they are more active than usual. The OBD sample's analogue is
    the hour-of-day traffic: for each sample, ``x_h = log(max(n_h / mean(n), floor))`` where
    ``n_h`` is the impressions in UTC hour ``h`` (its six days pooled), and a logistic
    regression of ``click`` on ``x_h`` with one intercept per sample (samples pooled, so each
    sample's own click level does not leak into the slope) and the position dummies. The slope
    is the real-data estimate of ``beta_activity``, with its 95 % Wald interval.

    Parameters
    ----------
    samples : sequence of (policy, campaign), optional
        The OBD samples to pool (default: all six, ``random``/``bts`` x ``all``/``men``/
        ``women``).
    floor : float
        Floor of the traffic ratio inside the log (:data:`covercast.simulators.response.
        MIN_RELATIVE_ACTIVITY`).

    Returns
    -------
    dict
        ``slope``, ``se``, ``ci95`` (low, high), ``n``, ``clicks``, ``samples``, and
        ``hour_counts`` (impressions per UTC hour of day, the samples pooled).
    """
    if samples is None:
        samples = [(p, c) for p in ("random", "bts") for c in ("all", "men", "women")]
    samples = list(samples)
    if not samples:
        raise ValueError("`samples` must name at least one (policy, campaign) OBD sample.")
    xs, ys, groups, positions = [], [], [], []
    pooled = np.zeros(24)
    for g, (policy, campaign) in enumerate(samples):
        df = load_obd(policy, campaign)
        hour = np.floor(_hour_of_day(df["timestamp"])).astype(np.int64) % 24
        n_h = np.bincount(hour, minlength=24).astype(np.float64)
        pooled += n_h
        x_h = np.log(np.maximum(n_h / n_h.mean(), floor))
        xs.append(x_h[hour])
        ys.append(df["click"].to_numpy(dtype=np.float64))
        groups.append(np.full(len(df), g))
        positions.append(df["position"].to_numpy())
    x, y = np.concatenate(xs), np.concatenate(ys)
    grp, pos = np.concatenate(groups), np.concatenate(positions)
    cols = [np.ones_like(x)] + [(grp == g).astype(np.float64) for g in range(1, len(samples))]
    names = ["intercept"] + [f"sample{g}" for g in range(1, len(samples))]
    cols += [(pos == k).astype(np.float64) for k in (2, 3)] + [x]
    names += ["position2", "position3", "slope"]
    fit = fit_logit(np.column_stack(cols), y, names)
    b, se = float(fit.coef[-1]), float(fit.se[-1])
    return {"slope": b, "se": se, "ci95": (b - Z95 * se, b + Z95 * se), "n": fit.n,
            "clicks": fit.events, "samples": [f"{p}/{c}" for p, c in samples],
            "hour_counts": pooled}
