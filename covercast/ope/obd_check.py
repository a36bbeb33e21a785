"""Real-data check: estimate Bernoulli TS's CTR from OBD's uniform-random log.

The validation protocol of Saito et al. (2020), "Open Bandit Dataset and Pipeline": the Open
Bandit Dataset holds two logs of the same widget in the same week, one from a uniform-random
policy and one from Bernoulli Thompson sampling (BTS). Estimating BTS's CTR off-policy from the
random log and comparing with the CTR observed on-policy in the BTS log scores the estimators on
real data. covercast uses the 10,000-row samples shipped with obp 0.4.1 (read without importing
obp, see :mod:`covercast.simulators.obd`).

**Assumptions** (obp computes BTS's action probabilities by Monte-Carlo simulation of BTS with
its priors; covercast cannot import obp under pandas 3, and the sample does not hold BTS's
distribution over all items, only the propensity of the item it showed):

1. **Decision = (impression, position).** Each row is one decision: given its position ``k``
   (the context), the policy picks the item; the random policy's propensity is the logged
   ``propensity_score`` (1/80 for ``all``: uniform over items, per position).
2. **BTS is context-free** (Bernoulli TS uses no user features), so its distribution over
   items at position ``k``, ``pi(i | k)``, is the same for every impression of the week. The
   posterior moved during the week; the time-averaged distribution is what the on-policy CTR
   of the BTS log averages over, so it is the right target for this comparison.
3. ``pi(i | k)`` is estimated from the BTS log in one of two ways (both reported):
   ``"frequency"`` -- the share of the BTS log's position-``k`` impressions that showed item
   ``i`` (an unbiased estimate of the time-averaged distribution, with add-``alpha`` smoothing
   so that unseen items keep a small probability); ``"pscore"`` -- the mean of the BTS log's
   ``propensity_score`` over its rows showing ``i`` at ``k``, renormalised per position (the
   logged probabilities themselves; biased up for items shown when their probability was
   high, and 0 for items never shown, before smoothing).
4. **Reward model for DR**: ``q(i, k)`` = the random log's click rate of ``(i, k)`` shrunk
   towards the position's click rate with a prior of ``prior_impressions`` impressions; fitted
   on the same random log it is used on (no cross-fitting: with a few clicks per item,
   splitting leaves nothing to fit).
5. **Truth**: the BTS log's mean click (its on-policy CTR) with a Wilson 95 % interval; it is
   itself noisy (a few dozen clicks in 10,000 rows), so relative errors below its own relative
   half-width cannot be told apart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import atomic_write_csv, atomic_write_text

__all__ = ["BTS_PROBABILITY_METHODS", "bts_action_dist", "obd_check"]

#: Ways to estimate BTS's per-position item distribution from the BTS log.
BTS_PROBABILITY_METHODS: tuple[str, ...] = ("frequency", "pscore")


def bts_action_dist(bts: pd.DataFrame, n_items: int, method: str = "frequency",
                    alpha: float = 0.1) -> np.ndarray:
    """``(3, n_items)``: BTS's estimated distribution over items at positions 1, 2, 3.

    Parameters
    ----------
    bts : pandas.DataFrame
        The BTS log (:func:`covercast.simulators.obd.load_obd` ``("bts", campaign)``).
    n_items : int
        Items of the campaign.
    method : {"frequency", "pscore"}
        See the module docstring, assumption 3.
    alpha : float
        Additive smoothing (pseudo-impressions, or pseudo-probability mass per item for
        ``"pscore"`` scaled by ``1 / n_items``), >= 0.
    """
    if method not in BTS_PROBABILITY_METHODS:
        raise ValueError(f"`method` must be one of {list(BTS_PROBABILITY_METHODS)}, got "
                         f"{method!r}.")
    if not alpha >= 0:
        raise ValueError(f"`alpha` must be >= 0, got {alpha!r}.")
    item = bts["item_id"].to_numpy(np.int64)
    pos = bts["position"].to_numpy(np.int64) - 1
    out = np.zeros((3, n_items))
    for k in range(3):
        sel = pos == k
        if method == "frequency":
            counts = np.bincount(item[sel], minlength=n_items).astype(np.float64)
            out[k] = counts + alpha
        else:
            s = np.bincount(item[sel], weights=bts["propensity_score"].to_numpy()[sel],
                            minlength=n_items)
            c = np.bincount(item[sel], minlength=n_items)
            mean = np.where(c > 0, s / np.maximum(c, 1), 0.0)
            out[k] = mean / max(mean.sum(), 1e-300) + alpha / n_items
        if out[k].sum() <= 0:
            raise ValueError(f"The BTS log has no impressions at position {k + 1} and alpha = 0; "
                             "use alpha > 0.")
        out[k] /= out[k].sum()
    return out


def obd_check(out: str | os.PathLike | None = None, *, campaign: str = "all",
              prior_impressions: float = 100.0, alpha: float = 0.1, n_bootstrap: int = 2000,
              seed: int = 0) -> pd.DataFrame:
    """Run the check; return one row per (BTS probability method, estimator).

    Columns: ``method``, ``estimator``, ``estimate``, ``ci_low``, ``ci_high``, ``ess``,
    ``truth`` (the BTS log's CTR), ``truth_low``, ``truth_high``, ``rel_error``
    (``|estimate - truth| / truth``), ``covers_truth``. With ``out``, writes
    ``out/obd_check.csv`` and ``out/obd_check.md`` (the table and the assumptions).
    """
    from covercast.ope.estimators import estimate_per_decision
    from covercast.simulators.calibrate import wilson_interval
    from covercast.simulators.obd import load_obd

    rnd = load_obd("random", campaign)
    bts = load_obd("bts", campaign)
    n_items = int(max(rnd["item_id"].max(), bts["item_id"].max())) + 1
    item = rnd["item_id"].to_numpy(np.int64)
    pos = rnd["position"].to_numpy(np.int64) - 1
    click = rnd["click"].to_numpy(np.float64)
    pscore = rnd["propensity_score"].to_numpy(np.float64)
    # reward model: per (position, item) CTR shrunk to the position's CTR
    q = np.zeros((3, n_items))
    for k in range(3):
        sel = pos == k
        base = click[sel].mean() if sel.any() else click.mean()
        n_ik = np.bincount(item[sel], minlength=n_items)
        c_ik = np.bincount(item[sel], weights=click[sel], minlength=n_items)
        q[k] = (c_ik + prior_impressions * base) / (n_ik + prior_impressions)
    truth = float(bts["click"].mean())
    t_lo, t_hi = (float(x) for x in wilson_interval(int(bts["click"].sum()), len(bts)))
    rows: list[dict[str, Any]] = []
    for method in BTS_PROBABILITY_METHODS:
        dist = bts_action_dist(bts, n_items, method, alpha)
        res = estimate_per_decision(click, item, pscore, dist[pos], q[pos],
                                    estimators=("DM", "IPS", "SNIPS", "DR", "SNDR"),
                                    n_bootstrap=n_bootstrap, rng=seed)
        for name, r in res.items():
            rows.append({"method": method, "estimator": name, "estimate": r.estimate,
                         "ci_low": r.ci_low, "ci_high": r.ci_high, "ess": r.ess,
                         "truth": truth, "truth_low": t_lo, "truth_high": t_hi,
                         "rel_error": abs(r.estimate - truth) / truth,
                         "covers_truth": r.covers(truth)})
    table = pd.DataFrame(rows)
    table.attrs.update(random_ctr=float(click.mean()), n_random=len(rnd), n_bts=len(bts),
                       clicks_random=int(click.sum()), clicks_bts=int(bts["click"].sum()))
    if out is not None:
        out = Path(out)
        atomic_write_csv(table, out / "obd_check.csv")
        atomic_write_text(out / "obd_check.md", _report(table, campaign))
    return table


def _report(table: pd.DataFrame, campaign: str) -> str:
    a = table.attrs
    lines = [f"# OPE on real data: Bernoulli TS's CTR from the uniform-random log (OBD, "
             f"campaign `{campaign}`)", "",
             f"Random log: {a['n_random']:,} impressions, {a['clicks_random']} clicks (CTR "
             f"{a['random_ctr']:.4%}). BTS log: {a['n_bts']:,} impressions, {a['clicks_bts']} "
             f"clicks, on-policy CTR {table['truth'].iloc[0]:.4%} (Wilson 95 %: "
             f"{table['truth_low'].iloc[0]:.4%} - {table['truth_high'].iloc[0]:.4%}).", "",
             "| BTS probabilities | estimator | estimate | 95 % CI | ESS | relative error | "
             "CI covers truth |", "|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.method} | {r.estimator} | {r.estimate:.4%} | {r.ci_low:.4%} - "
                     f"{r.ci_high:.4%} | {r.ess:,.0f} | {r.rel_error:.1%} | "
                     f"{'yes' if r.covers_truth else 'no'} |")
    doc = __doc__.split("**Assumptions**", 1)[1]
    lines += ["", "## Assumptions", "", "**Assumptions**" + doc.strip()]
    return "\n".join(lines) + "\n"
