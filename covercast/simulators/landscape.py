"""How peaked a population's decision landscape is: the statistics a population's data card states.

A scheduling benchmark's conclusions transfer only if its population responds to *when* and
*with what* a push is sent about as strongly as real users do. Published whole-system lifts of
notification optimization are a few percent, the best published send-time result is "up to
+60.7 %" click rate, creative optimization about +7 % CTR (see
:mod:`covercast.simulators.suite` for the sources). This module measures, for any
:class:`~covercast.simulators.params.PopulationParams`, the numbers to hold against them:

* :func:`expected_open_table` -- each sampled user's *expected* open probability of a push
  delivered at each hour of the day with each cover, computed exactly from the user model's own
  formulas (:mod:`covercast.simulators.response`): seen at once with
  :func:`~covercast.simulators.response.seen_now_probability`, else at the first organic session
  of a later hour with the staleness factor and the fatigue decayed until then;
* :func:`landscape_statistics` -- from that table: how much better an average user's best hour
  is than their average hour, their best style than their worst-but-one, the same for the
  population as a whole (what a static schedule can exploit), and how much of the taste
  varies within segments (what a user's active hours cannot reveal);
* :func:`simulated_statistics` -- by simulation with the population engine: the static
  scheduler's open rate, organic sessions per day, opt-outs per month and the open rate at 1,
  2, 4 and 8 pushes a day (fatigue);
* :func:`population_statistics` -- both, as one flat dict, the numbers data cards quote.

Everything is seeded (``np.random.SeedSequence``) and deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from covercast.simulators import response as R
from covercast.simulators.params import HOURS_PER_WEEK, PopulationParams

__all__ = ["steady_fatigue", "expected_open_table", "landscape_statistics",
           "simulated_statistics", "population_statistics", "STATISTICS"]

#: Statistic name -> what it is (the data cards' vocabulary).
STATISTICS: dict[str, str] = {
    "static_open_rate": "open rate of the seed paper's static schedule (08:00 and 20:00 UTC, "
                        "the first style), opens per delivered push, 14 days",
    "sessions_per_day": "organic app sessions per user per day",
    "best_hour_ratio_user": "an average user's best hour of day over their average hour: "
                            "expected open probability of a push at two pushes a day "
                            "(mean over users of max/mean)",
    "best_hour_ratio_population": "the population's best hour over its average hour (what one "
                                  "fixed hour for everyone can gain)",
    "best_style_ratio_user": "an average user's best style over their worst-but-one style "
                             "(mean over users)",
    "best_style_ratio_population": "the population's best style over its worst-but-one style",
    "taste_within_between": "variance of the style-match logit within segments over its "
                            "variance between segment means (>= 1: taste is not readable "
                            "from a user's segment, hence not from their active hours)",
    "best_style_from_segment": "share of users whose own best style is their segment's most "
                               "common best style",
    "opt_out_30d_1push": "share of users who opt out within 30 days of one push a day "
                         "(19:00 UTC)",
    "opt_out_30d_4push": "the same at four pushes a day (09:00, 13:00, 17:00, 21:00)",
    "open_rate_ratio_4_vs_1": "open rate at four pushes a day over the open rate at one "
                              "(fatigue: < 1)",
}


def steady_fatigue(params: PopulationParams, pushes_per_day: float = 2.0) -> float:
    """Fatigue just after a push in the steady state of ``pushes_per_day`` evenly spaced pushes.

    ``increment / (1 - 2 ** (-gap / half_life_h))`` with ``gap = 24 / pushes_per_day`` hours.
    """
    if not pushes_per_day > 0:
        raise ValueError(f"`pushes_per_day` must be > 0, got {pushes_per_day!r}.")
    gap = 24.0 / float(pushes_per_day)
    return params.fatigue.increment / (1.0 - 2.0 ** (-gap / params.fatigue.half_life_h))


def _bank(bank: Any) -> Any:
    if bank is None:
        from covercast.covers.procedural import default_bank
        bank = default_bank()
    return bank


def _users(params: PopulationParams, n_users: int, seed: int, bank: Any) -> dict[str, np.ndarray]:
    """Hidden state of ``n_users`` freshly drawn users (their taste, activity, segment)."""
    from covercast.simulators.population import Population
    pop = Population(params, n_users, bank=bank, seed=seed)
    return pop.hidden_state()


def expected_open_table(params: PopulationParams, *, n_users: int = 1000, seed: int = 0,
                        bank: Any = None, fatigue: float | None = None, weekday: int = 2,
                        tray_hours: int = 24) -> dict[str, np.ndarray]:
    """Expected open probability of a push at each hour of one day with each cover, per user.

    Parameters
    ----------
    params : PopulationParams
        The population.
    n_users : int
        Users drawn from it (``Population(params, n_users, seed=seed)``).
    seed : int
        Seed of the user draw.
    bank : CoverBank, optional
        The covers (default: the procedural default bank).
    fatigue : float, optional
        The user's fatigue just after the push (default: :func:`steady_fatigue` at two pushes
        a day).
    weekday : int
        Day of the week, 0 = Monday (default 2, a Wednesday).
    tray_hours : int
        Hours a push waiting in the tray is followed (later sessions are ignored).

    Returns
    -------
    dict
        ``p`` ``(n_users, 24, n_covers)`` expected open probabilities, ``segment``
        ``(n_users,)``, ``cover_style`` ``(n_covers,)``, ``match`` ``(n_users, n_covers)`` (the
        open logit's taste term ``beta_taste * taste . features``).
    """
    if not isinstance(n_users, int) or n_users < 1:
        raise ValueError(f"`n_users` must be a positive int, got {n_users!r}.")
    if not isinstance(weekday, int) or not 0 <= weekday <= 6:
        raise ValueError(f"`weekday` must be an int in 0-6 (0 = Monday), got {weekday!r}.")
    bank = _bank(bank)
    hs = _users(params, n_users, seed, bank)
    f0 = steady_fatigue(params) if fatigue is None else float(fatigue)
    om, fm = params.open, params.fatigue
    act = params.activity_matrix()
    mean_rate = act.mean(axis=1)
    seg = hs["segment"]
    feats = np.asarray(bank.features, dtype=np.float64)
    quality = np.asarray(bank.quality, dtype=np.float64)
    topic = np.asarray(bank.topic, dtype=np.int64)
    taste, aff = hs["taste"], hs["topic_affinity"][:, topic]          # (N, F), (N, C)
    match = taste @ feats.T                                             # (N, C)
    intercept = np.array([s.open_intercept for s in params.segments])[seg]
    K = int(tray_hours)
    hours0 = weekday * 24 + np.arange(24)                               # (24,)
    win = (hours0[:, None] + np.arange(K + 1)[None, :]) % HOURS_PER_WEEK  # (24, K+1)
    rate = act[seg][:, win] * hs["activity_multiplier"][:, None, None]   # (N, 24, K+1)
    relact = R.relative_activity_feature(act[seg][:, win], mean_rate[seg][:, None, None])
    seen_now = R.seen_now_probability(rate[:, :, 0], om.glance_hours)   # (N, 24)
    later = rate[:, :, :K]                                              # hour k of the wait
    none_before = np.exp(-(np.cumsum(later, axis=2) - later))
    first_in_k = none_before * R.seen_now_probability(later, 1.0)
    weight = np.concatenate([seen_now[:, :, None], (1.0 - seen_now)[:, :, None] * first_in_k],
                            axis=2)                                     # (N, 24, K+1)
    delay = np.concatenate([[0.0], np.arange(K) + 0.5])
    rel_seen = np.concatenate([relact[:, :, :1], relact[:, :, :K]], axis=2)
    f_seen = R.fatigue_at(f0, 0.0, delay, fm.half_life_h)               # (K+1,)
    p = np.empty((n_users, 24, feats.shape[0]))
    chunk = max(1, 4_000_000 // (24 * feats.shape[0] * (K + 1)))
    for lo in range(0, n_users, chunk):
        sl = slice(lo, min(n_users, lo + chunk))
        prob = R.open_probability(intercept[sl, None, None, None], rel_seen[sl, :, None, :],
                                  match[sl, None, :, None], quality[None, None, :, None],
                                  aff[sl, None, :, None], f_seen, delay, om)
        p[sl] = np.einsum("nhcm,nhm->nhc", prob, weight[sl])
    return {"p": p, "segment": seg, "cover_style": np.asarray(bank.style, dtype=np.int64),
            "match": om.beta_taste * match}


def _per_style(p: np.ndarray, cover_style: np.ndarray, n_styles: int) -> np.ndarray:
    """Average over each style's covers along the last axis."""
    onehot = np.zeros((cover_style.size, n_styles))
    onehot[np.arange(cover_style.size), cover_style] = 1.0
    onehot /= np.maximum(onehot.sum(axis=0, keepdims=True), 1.0)
    return p @ onehot


def _taste_variances(params: PopulationParams, bank: Any) -> tuple[float, float]:
    """Variance of the style-match logit contrasts within and between segments, exactly.

    The open logit's taste term for style ``s`` is ``beta_taste * taste . F_s`` (``F_s`` the
    mean features of the style's covers: the term is linear in the features); its contrast
    across styles is ``beta_taste * taste . (F_s - mean_s F_s)``. Within a segment, taste is
    ``taste_mean + taste_sd * N(0, I)``, so the contrast's variance is
    ``(beta_taste * taste_sd * |F_s - mean F|) ** 2``; between segments it is the
    weighted variance of ``beta_taste * taste_mean . (F_s - mean F)``. Both are averaged over
    styles. (Drift is ignored: it moves taste slowly back to the segment mean.)
    """
    feats = np.asarray(bank.features, dtype=np.float64)
    cs = np.asarray(bank.style, dtype=np.int64)
    F = np.stack([feats[cs == s].mean(axis=0) for s in range(len(params.styles))])
    D = F - F.mean(axis=0, keepdims=True)                               # (S, d)
    b = params.open.beta_taste
    w = params.segment_weights()
    sd = np.array([s.taste_sd for s in params.segments])
    within = float(np.sum(w * (b * sd) ** 2) * np.mean(np.sum(D ** 2, axis=1)))
    mu = np.array([s.taste_mean for s in params.segments]) @ D.T * b    # (n_seg, S)
    grand = w @ mu
    between = float(np.mean(w @ (mu - grand) ** 2))
    return within, between


def landscape_statistics(params: PopulationParams, *, n_users: int = 1000, seed: int = 0,
                         bank: Any = None) -> dict[str, float]:
    """The analytic statistics of :data:`STATISTICS` (hour, style and taste), at two pushes a
    day (see :func:`expected_open_table`)."""
    t = expected_open_table(params, n_users=n_users, seed=seed, bank=bank)
    n_styles = len(params.styles)
    ps = _per_style(t["p"], t["cover_style"], n_styles)                 # (N, 24, S)
    by_hour = ps.mean(axis=2)                                           # covers of all styles
    by_style = ps.mean(axis=1)                                          # average hour
    srt = np.sort(by_style, axis=1)
    worst_but_one = srt[:, 1] if n_styles > 1 else srt[:, 0]
    pop_hour = by_hour.mean(axis=0)
    pop_style = np.sort(by_style.mean(axis=0))
    within, between = _taste_variances(params, _bank(bank))
    seg = t["segment"]
    segs = np.unique(seg)
    best = np.argmax(by_style, axis=1)
    modal = {s: np.bincount(best[seg == s], minlength=n_styles).argmax() for s in segs}
    from_seg = float(np.mean(best == np.array([modal[s] for s in seg])))
    return {
        "best_hour_ratio_user": float(np.mean(by_hour.max(axis=1) / by_hour.mean(axis=1))),
        "best_hour_ratio_population": float(pop_hour.max() / pop_hour.mean()),
        "best_style_ratio_user": float(np.mean(srt[:, -1] / worst_but_one)),
        "best_style_ratio_population": float(pop_style[-1] / pop_style[min(1, n_styles - 1)]),
        "taste_within_between": within / between if between > 0 else float("inf"),
        "best_style_from_segment": from_seg,
    }


def _run_schedule(params: PopulationParams, hours: Sequence[int], style: int, days: int,
                  n_users: int, seed: int, bank: Any) -> dict[str, float]:
    """Push every user at ``hours`` each day with ``style``; totals per user."""
    from covercast.simulators.population import Population
    pop = Population(params, n_users, bank=bank, seed=seed)
    due = np.zeros(24, dtype=bool)
    due[list(hours)] = True
    pushes = opens = sessions = 0
    everyone = np.ones(n_users, dtype=bool)
    for slot in range(days * 24):
        push = everyone if due[slot % 24] else None
        out = pop.step(push, style=style if push is not None else None)
        pushes += out.push_user.size
        opens += out.open_user.size
        sessions += int(out.session_count.sum())
    hs = pop.hidden_state()
    return {"pushes": pushes, "opens": opens, "sessions": sessions,
            "opted_out": float(hs["opted_out"].mean())}


def simulated_statistics(params: PopulationParams, *, n_users: int = 2000, seed: int = 0,
                         bank: Any = None) -> dict[str, float]:
    """The simulated statistics of :data:`STATISTICS`: the engine pushes fixed schedules."""
    bank = _bank(bank)
    ss = np.random.SeedSequence(seed).spawn(3)
    s = [int(x.generate_state(1)[0]) for x in ss]
    static = _run_schedule(params, (8, 20), 0, 14, n_users, s[0], bank)
    one = _run_schedule(params, (19,), 0, 30, n_users, s[1], bank)
    four = _run_schedule(params, (9, 13, 17, 21), 0, 30, n_users, s[2], bank)
    rate1 = one["opens"] / max(one["pushes"], 1)
    rate4 = four["opens"] / max(four["pushes"], 1)
    return {
        "static_open_rate": static["opens"] / max(static["pushes"], 1),
        "sessions_per_day": static["sessions"] / (n_users * 14.0),
        "opt_out_30d_1push": one["opted_out"],
        "opt_out_30d_4push": four["opted_out"],
        "open_rate_ratio_4_vs_1": rate4 / rate1 if rate1 > 0 else float("nan"),
    }


def population_statistics(params: PopulationParams, *, n_users: int = 2000, seed: int = 0,
                          bank: Any = None) -> dict[str, float]:
    """Every statistic of :data:`STATISTICS` for ``params`` (about 10-30 s on one core)."""
    bank = _bank(bank)
    out = simulated_statistics(params, n_users=n_users, seed=seed, bank=bank)
    out.update(landscape_statistics(params, n_users=min(n_users, 2000), seed=seed, bank=bank))
    return {k: out[k] for k in STATISTICS}
