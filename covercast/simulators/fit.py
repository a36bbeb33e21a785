"""Fit a :class:`~covercast.simulators.params.PopulationParams` to an interaction log.

:func:`fit_population` turns a log (the schema of :mod:`covercast.simulators.logs`) into a
population the engine can simulate; :func:`fit_population_report` does the same and returns a
:class:`FitReport` with standard errors, log-likelihoods and diagnostics. The formulas are
those of :mod:`covercast.simulators.response` (imported, not re-written), and the engine rules
are those of :mod:`covercast.simulators.population`, so simulator and fitter cannot drift apart.

Stages
------
1. **Validation** -- :func:`covercast.simulators.logs.validate_log`, then what the fitter needs:
   organic ``session`` rows, ``push`` rows, at least one ``open``, a span of at least a week
   (every hour of the week observed) and enough users for the segments asked for.
2. **Segments** -- each user's organic sessions are counted by hour of week (Monday 00:00 UTC
   = 0). Given the segment, those counts are *multinomial* with the segment's normalised
   profile whatever the user's activity multiplier, so users are clustered with a mixture of
   multinomials: weighted k-means++ / Lloyd on the normalised histograms (shrunk towards the
   population's by :data:`KMEANS_SHRINKAGE` pseudo-sessions, weighted by session count)
   gives :data:`KMEANS_STARTS` seeded starts, each runs :data:`SHORT_EM_ITERATIONS` EM
   iterations and the best runs EM to convergence; each user joins the segment of highest
   posterior probability.
   With ``n_segments=None`` the number of segments ``K`` in 1..:data:`MAX_AUTO_SEGMENTS`
   minimises the mixture's BIC, ``-2 log L + (168 K - 1) log(n_users)`` (the search stops
   once the BIC has risen twice in a row).
3. **Activity** -- ``activity[h]`` = mean sessions per user of the segment in hour of week ``h``
   divided by the hours of the log's span that fall in ``h``; ``weight`` = share of users.
   Per-user session totals are Poisson-Gamma, ``Var = m + m^2 / k``, so ``activity_shape``
   ``k = m^2 / (Var - m)`` (method of moments), clipped to :data:`ACTIVITY_SHAPE_RANGE` (an
   under-dispersed segment gets the upper end: nearly equal users). A user's multiplier then
   has the empirical-Bayes posterior Gamma(k + n_u, k + m).
4. **Opens and fatigue** -- a push that made its user opt out is never opened (the engine
   draws the opt-out first), so the open model conditions on not opting out. For the others,
   ``P(open) = q * sigmoid(eta_now) + (1 - q) * L * exp(-D / stale_tau_h) * sigmoid(eta_late)``
   -- exactly the engine's draw: ``q`` is the seen-now probability
   (:func:`~covercast.simulators.response.seen_now_probability` averaged over the user's
   posterior multiplier), ``D`` the hours to the user's next organic session in the log,
   ``L`` = 1 if that session comes before the user's next push (a newer push replaces an
   unseen one), and the logits (:func:`~covercast.simulators.response.open_logit`) carry the
   relative activity and the fatigue when the push is seen (its own increment included,
   decayed to then). Segment intercepts, taste and topic effects per segment,
   ``beta_activity``, ``beta_fatigue``, ``beta_quality`` (when the bank's quality varies) and
   ``log stale_tau_h`` are maximum likelihood (trust-region Newton, analytic Hessian).
   ``half_life_h`` is fitted by profile likelihood over :data:`HALF_LIFE_GRID_H`, refined by a
   bounded Brent search between the best grid point's neighbours; the profile is that of opens
   *and* opt-outs, which both depend on fatigue.
5. **Opt-out** -- per delivered push ``P = 1 - exp(-(base_hazard + fatigue_coef * F))``, ``F``
   after the push (:func:`~covercast.simulators.response.opt_out_probability`), maximum
   likelihood with both coefficients ``>= 0``.
6. **Dwell, engagement, surveys** -- log dwell of opens is regressed on segment and relevance
   (``dwell_mu`` per segment, ``dwell.relevance_coef``); ``session_dwell_mu`` is the mean log
   dwell of organic sessions, and ``dwell_sigma`` -- shared by opens and sessions in the engine
   -- is pooled over both. Likes, shares and comments per open are logistic with three
   intercepts and a shared relevance slope; ``survey_rate`` is surveys per open and an ordered
   logit of the 1-5 answers gives the cutpoints and the relevance, dwell and fatigue weights.

Standard errors come from the inverse Hessian of each log-likelihood (for the open / opt-out /
half-life block, jointly, so the half-life's uncertainty reaches ``beta_fatigue``), from the
binomial formula for shares, and from the delta method for transformed parameters.

Identification
--------------
Only differences between styles and between topics reach the data: a cover's style
probabilities sum to 1 and every push has one topic, so adding a constant to all style weights
(or all topic affinities) of a segment is the same as changing its intercept. The fitter
reports style weights and topic affinities centred to sum to zero and puts their mean into
``open_intercept``; :func:`identified_open_intercepts` maps any parameters to that convention.
``beta_taste`` and ``beta_topic`` are the units of taste and topic affinity and the fatigue
``increment`` is the unit of fatigue (all kept at their defaults). Without a cover bank, taste
is fitted as one weight per style (attribute weights stay 0) and the intercepts absorb the
covers' mean quality effect.

Individual taste
----------------
Users' individual taste and topic affinity are latent: their spread (``taste_sd``,
``topic_sd``) and drift cannot be identified well from opens alone and are *assumed* (keyword
arguments; defaults those of the default population). The fitter integrates over them, so
that the segment means it reports are the engine's parameters rather than
population-averaged ones: a push's open logit gets the individual deviation
``eps ~ N(0, V)``, ``V = beta_taste^2 v_taste(t) |f|^2 + beta_topic^2 v_topic(t)`` (``f`` the
cover's features, ``v(t)`` the variance after the Ornstein-Uhlenbeck drift from ``sd^2``),
and each sigmoid of the open probability is averaged over ``eps`` by Gauss-Hermite
quadrature (:data:`QUADRATURE_NODES`). Opens select users who like the cover, so the relevance
behind an open is shifted and narrowed: its mean and variance given the open follow from the
joint normality of the relevance and logit deviations, and the dwell, engagement and survey
models use them (the last two again by quadrature). Relevance is computed from estimated
tastes; the dwell regression corrects for that estimation error (errors in variables). The
approximations left: the deviations are treated as independent between a user's pushes
(standard errors then ignore that correlation) and the relevance given an open as normal.
With ``taste_sd = topic_sd = 0`` and no drift all of this vanishes and the likelihoods are
exact.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special
from tqdm import tqdm

from covercast._io import atomic_write_text, check_int, check_number
from covercast.covers.attributes import ATTRIBUTE_NAMES, DEFAULT_STYLES, DEFAULT_TOPICS
from covercast.covers.bank import CoverBank
from covercast.simulators.logs import validate_log
from covercast.simulators.params import (
    HOURS_PER_WEEK,
    DriftModel,
    DwellModel,
    EngagementModel,
    FatigueModel,
    OpenModel,
    OptOutModel,
    PopulationParams,
    SatisfactionModel,
    Segment,
)
from covercast.simulators.population import simulate_log
from covercast.simulators.response import (
    add_push_fatigue,
    fatigue_at,
    relative_activity_feature,
    seen_now_probability,
)

__all__ = [
    "ACTIVITY_SHAPE_RANGE",
    "DEFAULT_TASTE_SD",
    "DEFAULT_TOPIC_SD",
    "HALF_LIFE_GRID_H",
    "KMEANS_STARTS",
    "MAX_AUTO_SEGMENTS",
    "MIN_SURVEYS",
    "MIN_USERS_PER_SEGMENT",
    "PRIOR_SD",
    "QUADRATURE_NODES",
    "FitReport",
    "fit_population",
    "fit_population_report",
    "identified_open_intercepts",
    "simulate_log",
]

#: Largest number of segments tried when ``n_segments=None``.
MAX_AUTO_SEGMENTS = 6
#: Fewest users with organic sessions per segment.
MIN_USERS_PER_SEGMENT = 10
#: Range ``activity_shape`` is clipped to; an under-dispersed segment gets the upper end.
ACTIVITY_SHAPE_RANGE = (0.05, 1000.0)
#: Half-lives (hours) of the profile-likelihood grid; the best is refined between neighbours.
HALF_LIFE_GRID_H: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 336.0)
#: Prior standard deviation (logit units) of every taste and topic effect: a weak Gaussian
#: prior that keeps the optimum unique when covers are collinear; negligible with real data.
PRIOR_SD = 10.0
#: Pseudo-count per hour of week and segment in the multinomial mixture (a Dirichlet prior).
MIXTURE_PSEUDOCOUNT = 0.01
#: k-means++ starts for each number of segments; each is followed by
#: :data:`SHORT_EM_ITERATIONS` EM iterations and the best one is run to convergence.
KMEANS_STARTS = 10
#: EM iterations of each start before the best start is chosen ("short-run EM").
SHORT_EM_ITERATIONS = 10
#: Pseudo-sessions shrinking each user's histogram towards the population's before k-means.
KMEANS_SHRINKAGE = 20.0
#: Fewest scored surveys for fitting the ordered logit (with fewer, its defaults are kept).
MIN_SURVEYS = 30
#: Assumed spread of individual taste around the segment mean (the default population's).
DEFAULT_TASTE_SD = 0.3
#: Assumed spread of individual topic affinity (the default population's).
DEFAULT_TOPIC_SD = 0.4

#: Gauss-Hermite nodes for averaging over an individual's taste deviation (used only when the
#: assumed spread is not zero; one node, exact, otherwise). Six nodes average a sigmoid over a
#: normal deviation of SD 0.9 to a relative error of 3e-5.
QUADRATURE_NODES = 6
_STAGES = ("validate", "segments", "activity", "opens and fatigue", "standard errors", "dwell",
           "engagement", "surveys", "assemble")


# ============================================================================ report
@dataclass
class FitReport:
    """What :func:`fit_population_report` found, beside the fitted parameters.

    Attributes
    ----------
    params
        The fitted population (what :func:`fit_population` returns).
    estimates
        One row per fitted number: ``name`` (the parameter's path, e.g.
        ``"segments[0].open_intercept"``, ``"open.beta_fatigue"``,
        ``"segments[1].taste_mean[style:noir]"``), ``estimate``, ``se`` (standard error, NaN
        where none exists), ``method`` and ``segment`` (the segment's name, or ``""``).
    loglik
        Maximised log-likelihood of each model: ``segments``, ``opens``, ``opt_out``,
        ``dwell``, ``engagement``, ``surveys`` (NaN where a model kept its defaults).
    segment_selection
        One row per number of segments tried: ``n_segments``, ``loglik``, ``n_params``,
        ``bic``, ``chosen``.
    half_life_profile
        Profile log-likelihood (opens + opt-outs) at every half-life evaluated.
    user_segment
        Segment index given to each user (index: ``user_id``).
    diagnostics
        Counts and checks: users, events, span, optimiser convergence, rows left out and why.
    notes
        Plain-language caveats: parameters kept at their defaults and why, estimates on a
        boundary, approximations in force.
    """

    params: PopulationParams
    estimates: pd.DataFrame
    loglik: dict[str, float]
    segment_selection: pd.DataFrame
    half_life_profile: pd.DataFrame
    user_segment: pd.Series
    diagnostics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def _row(self, name: str) -> pd.Series:
        row = self.estimates.loc[self.estimates["name"] == name]
        if row.empty:
            raise KeyError(f"No estimate named {name!r}; available names include "
                           f"{self.estimates['name'].head(4).tolist()} (see `.estimates`).")
        return row.iloc[0]

    def estimate(self, name: str) -> float:
        """The estimate called ``name`` (a row of :attr:`estimates`)."""
        return float(self._row(name)["estimate"])

    def se(self, name: str) -> float:
        """Standard error of the estimate called ``name``."""
        return float(self._row(name)["se"])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers become ``null``)."""
        return _json_clean({
            "params": self.params.to_dict(),
            "estimates": self.estimates.to_dict(orient="records"),
            "loglik": self.loglik,
            "segment_selection": self.segment_selection.to_dict(orient="records"),
            "half_life_profile": self.half_life_profile.to_dict(orient="records"),
            "user_segment": {str(k): int(v) for k, v in self.user_segment.items()},
            "diagnostics": self.diagnostics,
            "notes": self.notes,
        })

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON, atomically; returns the path."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def _json_clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_clean(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    return v


# ============================================================================ public API
def fit_population(log: pd.DataFrame, *, n_segments: int | None = None,
                   bank: CoverBank | None = None, seed: int = 0, progress: bool = False,
                   span: tuple[Any, Any] | None = None,
                   taste_sd: float = DEFAULT_TASTE_SD, topic_sd: float = DEFAULT_TOPIC_SD,
                   drift: DriftModel | None = None) -> PopulationParams:
    """Fit population parameters to an interaction log.

    Parameters
    ----------
    log : pandas.DataFrame
        An event log in the schema of :mod:`covercast.simulators.logs` (validated here). It
        needs organic ``session`` rows, ``push`` rows and at least one ``open``, over at least
        a week.
    n_segments : int, optional
        Number of user segments; ``None`` chooses it in 1..:data:`MAX_AUTO_SEGMENTS` by BIC.
    bank : CoverBank, optional
        The cover bank the log's ``cover_id`` column indexes. With it, each segment's taste is
        fitted over the cover feature space (attributes and style probabilities) and
        ``beta_quality`` is fitted when quality varies; without it, one weight per style.
    seed : int
        Seed of the k-means++ starts (the only randomness): same log and seed, same result.
    progress : bool
        Show a progress bar over the fitting stages.
    span : (start, end), optional
        The time window the log covers (timestamps or ISO strings, UTC). Default:
        ``log.attrs["start"]`` / ``["end"]`` when present, else from the first event's hour to
        the end of the last event's hour. Hours of week are counted over this window.
    taste_sd, topic_sd : float
        Assumed spread of individual taste and topic affinity around the segment means (not
        identifiable from opens; see the module docstring). They are written into the fitted
        segments and used to de-bias the segment means.
    drift : DriftModel, optional
        Assumed taste drift (default: ``DriftModel()``); written into the fitted parameters.

    Returns
    -------
    PopulationParams
        Segments named ``seg<k>_<peak hour>h``, in order of decreasing weight.

    Raises
    ------
    ValueError
        If the log breaks the schema (:class:`~covercast.simulators.logs.LogValidationError`
        is a ValueError), lacks sessions, pushes or opens, spans less than a week, has too few
        users for ``n_segments``, or does not match ``bank``; or if an argument is invalid.
    TypeError
        If ``log`` is not a DataFrame.
    """
    return fit_population_report(log, n_segments=n_segments, bank=bank, seed=seed,
                                 progress=progress, span=span, taste_sd=taste_sd,
                                 topic_sd=topic_sd, drift=drift).params


def fit_population_report(log: pd.DataFrame, *, n_segments: int | None = None,
                          bank: CoverBank | None = None, seed: int = 0, progress: bool = False,
                          span: tuple[Any, Any] | None = None,
                          taste_sd: float = DEFAULT_TASTE_SD, topic_sd: float = DEFAULT_TOPIC_SD,
                          drift: DriftModel | None = None) -> FitReport:
    """:func:`fit_population`, also returning standard errors, log-likelihoods and diagnostics.

    Takes the same arguments as :func:`fit_population`; returns a :class:`FitReport` whose
    ``params`` are the fitted parameters.
    """
    if n_segments is not None:                  # None: chosen by BIC
        n_segments = check_int(n_segments, "n_segments")
    check_int(seed, "seed", 0)
    if bank is not None and not isinstance(bank, CoverBank):
        raise ValueError(f"`bank` must be a CoverBank or None, got {type(bank).__name__}.")
    check_number(taste_sd, "taste_sd", lo=0)
    check_number(topic_sd, "topic_sd", lo=0)
    if drift is None:
        drift = DriftModel()
    if not isinstance(drift, DriftModel):
        raise ValueError(f"`drift` must be a DriftModel or None, got {type(drift).__name__}.")
    drift.validate()
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    notes: list[str] = []
    diag: dict[str, Any] = {}
    est = _Estimates()
    ll: dict[str, float] = {}
    spread = _Spread(float(taste_sd), float(topic_sd), drift)

    with tqdm(total=len(_STAGES), desc="fit", disable=not progress, leave=False) as bar:
        def stage(i: int) -> None:
            bar.set_description(f"fit: {_STAGES[i]}")

        stage(0)
        data = _prepare(log, bank, span, diag, notes)
        bar.update()

        stage(1)
        n_active = int(np.count_nonzero(data.n_sessions > 0))
        if n_segments is not None and n_active < n_segments * MIN_USERS_PER_SEGMENT:
            raise ValueError(
                f"`n_segments={n_segments}` needs at least {n_segments * MIN_USERS_PER_SEGMENT} "
                f"users with organic sessions ({MIN_USERS_PER_SEGMENT} per segment), but the log "
                f"has {n_active} (of {data.n_users} users). Ask for at most "
                f"{max(1, n_active // MIN_USERS_PER_SEGMENT)} segment(s) or use a larger log.")
        labels, selection, ll["segments"] = _fit_segments(data, n_segments, rng, diag)
        K = int(labels.max()) + 1
        bar.update()

        stage(2)
        act = _fit_activity(data, labels, K, est, notes)
        bar.update()

        stage(3)
        pushes = _push_features(data, labels, act, spread)
        fit = _fit_opens_and_fatigue(data, pushes, K, notes, diag)
        ll["opens"], ll["opt_out"] = fit.ll_open, fit.ll_optout
        bar.update()

        stage(4)
        _standard_errors(fit, est, notes)
        bar.update()

        stage(5)
        rel, rel_var, rel_err = _relevance(data, pushes, fit)
        dwell = _fit_dwell(data, labels, pushes, rel, rel_var, rel_err, K, est, notes, diag)
        ll["dwell"] = dwell["ll"]
        bar.update()

        stage(6)
        eng = _fit_engagement(data, rel, rel_var, est, notes)
        ll["engagement"] = eng["ll"]
        bar.update()

        stage(7)
        sat = _fit_surveys(data, pushes, rel, rel_var, fit, dwell, est, notes, diag)
        ll["surveys"] = sat["ll"]
        bar.update()

        stage(8)
        params = _assemble(data, act, fit, dwell, eng, sat, K, spread, notes, diag)
        bar.update()

    user_segment = pd.Series(labels, index=pd.Index(data.users, name="user_id"),
                             name="segment")
    return FitReport(params=params, estimates=est.frame(params), loglik=ll,
                     segment_selection=selection, half_life_profile=fit.profile_frame(),
                     user_segment=user_segment, diagnostics=diag, notes=notes)


def identified_open_intercepts(params: PopulationParams) -> np.ndarray:
    """Each segment's open intercept in the fitter's convention, shape ``(n_segments,)``.

    The open logit depends on a segment's intercept, style weights and topic affinities only
    through ``open_intercept + beta_taste * mean(style weights) + beta_topic *
    mean(topic_mean)`` and the centred weights (see *Identification* in the module
    docstring); this returns that sum, the number :func:`fit_population` reports as
    ``open_intercept``.
    """
    if not isinstance(params, PopulationParams):
        raise ValueError(f"`params` must be a PopulationParams, got {type(params).__name__}.")
    n_attr = len(ATTRIBUTE_NAMES)
    return np.array([s.open_intercept
                     + params.open.beta_taste * float(np.mean(s.taste_mean[n_attr:]))
                     + params.open.beta_topic * float(np.mean(s.topic_mean))
                     for s in params.segments])


# ============================================================================ small helpers
class _Estimates:
    """Collects (name, estimate, se, method) rows."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float, str]] = []

    def add(self, name: str, value: float, se: float, method: str) -> None:
        self.rows.append((name, float(value), float(se), method))

    def frame(self, params: PopulationParams) -> pd.DataFrame:
        df = pd.DataFrame(self.rows, columns=["name", "estimate", "se", "method"])
        names = params.segment_names
        df["segment"] = [names[int(n[9:n.index("]")])] if n.startswith("segments[") else ""
                         for n in df["name"]]
        return df


@dataclass(frozen=True)
class _Spread:
    """Assumed individual taste / topic spread and drift (see *Individual taste*)."""

    taste_sd: float
    topic_sd: float
    drift: DriftModel

    def variance(self, sd: float, day: np.ndarray) -> np.ndarray:
        """Variance of an individual's deviation from the segment mean after ``day`` daily
        Ornstein-Uhlenbeck steps (:func:`~covercast.simulators.response.drift_step`)."""
        r, s = self.drift.reversion_per_day, self.drift.sd_per_day
        day = np.asarray(day, dtype=np.float64)
        a = (1.0 - r) ** 2
        if a < 1.0:
            stat = s * s / (1.0 - a)
            return stat + (sd * sd - stat) * a ** day
        return sd * sd + s * s * day

    @property
    def active(self) -> bool:
        return self.taste_sd > 0 or self.topic_sd > 0 or self.drift.sd_per_day > 0


def _sum_zero_basis(n: int) -> np.ndarray:
    """Orthonormal ``(n, n - 1)`` basis of the vectors summing to zero (Helmert contrasts)."""
    C = np.zeros((n, max(n - 1, 0)))
    for j in range(1, n):
        C[:j, j - 1] = 1.0
        C[j, j - 1] = -float(j)
        C[:, j - 1] /= math.sqrt(j * (j + 1))
    return C


def _hours(ts: pd.Series | pd.DatetimeIndex, start: pd.Timestamp) -> np.ndarray:
    return np.asarray((ts - start) / pd.Timedelta(hours=1), dtype=np.float64)


def _hour_of_week(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    idx = pd.DatetimeIndex(ts)
    return np.asarray(idx.day_of_week * 24 + idx.hour, dtype=np.int64)


def _numerical_hessian(f: Callable[[np.ndarray], float], x: np.ndarray,
                       step: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian of a scalar function (small problems only)."""
    n = len(x)
    H = np.zeros((n, n))
    f0 = f(x)
    E = np.eye(n) * step
    for i in range(n):
        H[i, i] = (f(x + E[i]) - 2.0 * f0 + f(x - E[i])) / step ** 2
        for j in range(i + 1, n):
            H[i, j] = H[j, i] = (f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j])
                                 + f(x - E[i] - E[j])) / (4.0 * step ** 2)
    return H


def _inverse(H: np.ndarray, what: str, notes: list[str]) -> np.ndarray:
    """Inverse of a (negative log-likelihood) Hessian; pseudo-inverse with a note if singular."""
    try:
        cov = np.linalg.inv(H)
        if np.all(np.isfinite(cov)) and np.all(np.diag(cov) > 0):
            return cov
    except np.linalg.LinAlgError:
        pass
    notes.append(f"The Hessian of the {what} likelihood is singular or not positive definite at "
                 "the optimum; its standard errors come from a pseudo-inverse and are unreliable "
                 "(some parameter is barely identified by this log).")
    return np.linalg.pinv(H)


def _se(cov: np.ndarray) -> np.ndarray:
    d = np.diag(cov)
    return np.sqrt(np.where(d > 0, d, np.nan))


def _xtx(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A.T @ B`` for tall, narrow matrices. numpy's own einsum loop: for these shapes it is
    as fast as BLAS on an idle machine and far faster on a busy one (no thread spin-waits)."""
    return np.einsum("ni,nj->ij", A, B)


def _normal_nodes(active: bool) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of ``E[g(Z)]``, ``Z ~ N(0, 1)`` (Gauss-Hermite); one node at 0 when
    there is no spread to average over."""
    if not active:
        return np.zeros(1), np.ones(1)
    x, w = np.polynomial.hermite.hermgauss(QUADRATURE_NODES)
    return x * math.sqrt(2.0), w / math.sqrt(math.pi)


# ============================================================================ stage 1: data
@dataclass
class _Data:
    users: np.ndarray              # sorted unique user ids
    start: pd.Timestamp
    end: pd.Timestamp
    span_h: float
    exposure: np.ndarray           # (168,) hours of the span in each hour of week
    counts: np.ndarray             # (n_users, 168) organic sessions by hour of week
    n_sessions: np.ndarray         # (n_users,)
    s_user: np.ndarray             # sessions, sorted by (user, t)
    s_t: np.ndarray
    s_dwell: np.ndarray
    p_user: np.ndarray             # pushes, sorted by (user, t)
    p_t: np.ndarray
    p_how: np.ndarray
    p_id: np.ndarray
    p_style: np.ndarray            # index into styles (-1 when the log has no styles)
    p_topic: np.ndarray            # index into topics (-1 when the log has no topics)
    p_cover: np.ndarray | None     # index into the bank
    p_opened: np.ndarray
    p_open_t: np.ndarray           # hours, NaN where not opened
    p_open_dwell: np.ndarray       # seconds, NaN where not opened
    p_like: np.ndarray
    p_share: np.ndarray
    p_comment: np.ndarray
    p_survey: np.ndarray           # 1-5 score, 0 = no survey, -1 = survey without a score
    p_optout: np.ndarray           # the user opted out in response to this push
    p_at_risk: np.ndarray          # the user had not opted out before this push
    styles: list[str]
    topics: list[str]
    use_style: bool
    use_topic: bool
    bank: CoverBank | None

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_pushes(self) -> int:
        return len(self.p_t)


def _resolve_span(log: pd.DataFrame, ts: pd.Series,
                  span: tuple[Any, Any] | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    if span is None and "start" in log.attrs and "end" in log.attrs:
        span = (log.attrs["start"], log.attrs["end"])
    if span is None:
        start = ts.min().floor("h")
        end = ts.max().floor("h") + pd.Timedelta(hours=1)
        return start, end
    if not isinstance(span, (tuple, list)) or len(span) != 2:
        raise ValueError(f"`span` must be a (start, end) pair, got {span!r}.")
    try:
        start, end = (pd.Timestamp(x) for x in span)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`span` {span!r} is not a pair of timestamps ({e}).") from e
    if start is pd.NaT or end is pd.NaT:
        raise ValueError(f"`span` must be two timestamps, got {span!r}.")
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    if not end > start:
        raise ValueError(f"`span` must end after it starts, got {start} .. {end}.")
    outside = ((ts < start) | (ts > end)).to_numpy()
    if outside.any():
        raise ValueError(f"{int(outside.sum())} log rows lie outside `span` {start} .. {end} "
                         f"(first rows {np.flatnonzero(outside)[:5].tolist()}); widen the span "
                         "or cut the log to it.")
    return start, end


def _exposure(start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Hours of ``[start, end)`` that fall in each hour of week."""
    bins = pd.date_range(start.floor("h"), end, freq="h", inclusive="left")
    b0 = _hours(bins, start)
    total = float((end - start) / pd.Timedelta(hours=1))
    frac = np.clip(np.minimum(b0 + 1.0, total) - np.maximum(b0, 0.0), 0.0, 1.0)
    return np.bincount(_hour_of_week(bins), weights=frac, minlength=HOURS_PER_WEEK)


def _prepare(log: pd.DataFrame, bank: CoverBank | None, span: tuple[Any, Any] | None,
             diag: dict[str, Any], notes: list[str]) -> _Data:
    if not isinstance(log, pd.DataFrame):
        raise TypeError(f"`log` must be a pandas DataFrame, got {type(log).__name__}; read a "
                        "file with `covercast.simulators.logs.read_log`.")
    df = validate_log(log).reset_index(drop=True)
    rows_all = np.arange(len(df))
    event = df["event"].to_numpy(dtype=object)
    n_ev = {e: int(np.count_nonzero(event == e)) for e in
            ("session", "push", "open", "like", "share", "comment", "survey", "opt_out")}
    diag["events"] = n_ev
    n_u_all = int(df["user_id"].nunique())
    if n_ev["session"] == 0:
        raise ValueError(f"The log ({len(df)} rows, {n_u_all} users) has no `session` events; "
                         "segments and activity are fitted from organic sessions, so pass a log "
                         "that records them.")
    if n_ev["push"] == 0:
        raise ValueError(f"The log ({len(df)} rows, {n_ev['session']} sessions, {n_u_all} "
                         "users) has no `push` events; the open, fatigue and opt-out models are "
                         "fitted from pushes, so pass a log of a policy that pushes (e.g. "
                         "UniformRandomPolicy).")
    if n_ev["open"] == 0:
        raise ValueError(f"The log has {n_ev['push']} pushes but no `open`: the open model "
                         "cannot be fitted (its intercepts would be -inf). Use a longer log or "
                         "more users.")

    ts = df["timestamp"]
    start, end = _resolve_span(log, ts, span)
    span_h = float((end - start) / pd.Timedelta(hours=1))
    exposure = _exposure(start, end)
    if np.any(exposure <= 0):
        raise ValueError(f"The log spans {span_h:.1f} h ({start} .. {end}); hour-of-week "
                         f"activity needs every hour of the week observed, i.e. at least "
                         f"{HOURS_PER_WEEK} h. Use a log of a week or more.")
    diag.update(span_start=str(start), span_end=str(end), span_hours=span_h)

    users, uidx = np.unique(df["user_id"].to_numpy(dtype=np.int64), return_inverse=True)
    n_users = len(users)
    t = _hours(ts, start)
    how = _hour_of_week(ts)
    diag["n_users"] = n_users
    dwell_col = df["dwell_s"].to_numpy(dtype=np.float64)

    # ---- organic sessions
    s_rows = rows_all[event == "session"]
    s_rows = s_rows[np.lexsort((t[s_rows], uidx[s_rows]))]
    counts = np.bincount(uidx[s_rows] * HOURS_PER_WEEK + how[s_rows],
                         minlength=n_users * HOURS_PER_WEEK).reshape(n_users, HOURS_PER_WEEK)
    counts = counts.astype(np.float64)

    # ---- pushes, sorted by (user, time)
    p_rows = rows_all[event == "push"]
    p_rows = p_rows[np.lexsort((t[p_rows], uidx[p_rows]))]
    p_user, p_t = uidx[p_rows], t[p_rows]
    push_id = df["push_id"].to_numpy(dtype=np.float64, na_value=np.nan)
    p_id = push_id[p_rows].astype(np.int64)
    n_p = len(p_rows)

    style_col = df["style"].iloc[p_rows].to_numpy(dtype=object)
    topic_col = df["topic"].iloc[p_rows].to_numpy(dtype=object)
    style_missing = pd.isna(style_col)
    topic_missing = pd.isna(topic_col)
    if bank is not None:
        styles, topics = list(bank.styles), list(bank.topics)
    else:
        seen_s = sorted({str(s) for s in style_col[~style_missing]})
        seen_t = sorted({str(s) for s in topic_col[~topic_missing]})
        styles = list(DEFAULT_STYLES) if set(seen_s) <= set(DEFAULT_STYLES) else seen_s
        topics = list(DEFAULT_TOPICS) if set(seen_t) <= set(DEFAULT_TOPICS) else seen_t
    use_style, use_topic = bool((~style_missing).any()), bool((~topic_missing).any())
    index_of = {}
    for name, col, miss, use, names in (("style", style_col, style_missing, use_style, styles),
                                        ("topic", topic_col, topic_missing, use_topic, topics)):
        if not use:
            notes.append(f"The log has no `{name}` on its push rows: no {name} effects are "
                         "fitted (those weights are 0).")
            index_of[name] = np.full(n_p, -1)
            continue
        if miss.any():
            raise ValueError(f"{int(miss.sum())} of {n_p} push rows have no `{name}` (first rows "
                             f"{p_rows[miss][:5].tolist()}); fill it on every push row, or leave "
                             f"it empty on all of them to fit without {name} effects.")
        idx = pd.Index(names).get_indexer(col)
        if (idx < 0).any():
            bad = sorted({str(v) for v in col[idx < 0]})[:5]
            raise ValueError(f"{int((idx < 0).sum())} push rows have a {name} outside {names}: "
                             f"{bad} (first rows {p_rows[idx < 0][:5].tolist()}); pass the cover "
                             "bank these pushes used.")
        index_of[name] = idx
    if not styles:
        styles = list(DEFAULT_STYLES)
    if not topics:
        topics = list(DEFAULT_TOPICS)

    p_cover = None
    if bank is not None:
        if "cover_id" not in df.columns:
            raise ValueError("A `bank` was given but the log has no `cover_id` column; pass the "
                             "log its covers were logged in, or fit without the bank.")
        cov = df["cover_id"].to_numpy(dtype=np.float64, na_value=np.nan)[p_rows]
        bad = ~np.isfinite(cov) | (cov < 0) | (cov >= len(bank))
        if bad.any():
            raise ValueError(f"{int(bad.sum())} push rows have a `cover_id` missing or outside "
                             f"the bank's range [0, {len(bank) - 1}] (first rows "
                             f"{p_rows[bad][:5].tolist()}); pass the bank these pushes used.")
        p_cover = cov.astype(np.int64)
        if use_style:
            mismatch = bank.style[p_cover] != index_of["style"]
            if mismatch.any():
                raise ValueError(f"{int(mismatch.sum())} push rows name a style other than their "
                                 f"cover's style in the bank (first rows "
                                 f"{p_rows[mismatch][:5].tolist()}); is this the bank the log "
                                 "was made with?")

    # ---- answers to pushes, joined by push_id
    id_index = pd.Index(p_id)
    if id_index.has_duplicates:
        dup = p_id[id_index.duplicated()][:5].tolist()
        raise ValueError(f"Several push rows share a push_id (e.g. {dup}); every push needs its "
                         "own id.")

    def answers(ev: str) -> tuple[np.ndarray, np.ndarray]:
        rows = rows_all[event == ev]
        j = id_index.get_indexer(push_id[rows].astype(np.int64))
        bad = j < 0
        if bad.any():
            raise ValueError(f"{int(bad.sum())} `{ev}` rows name a push_id without a push row "
                             f"(first rows {rows[bad][:5].tolist()}); the log is incomplete.")
        other = p_user[j] != uidx[rows]
        if other.any():
            raise ValueError(f"{int(other.sum())} `{ev}` rows belong to another user than their "
                             f"push (first rows {rows[other][:5].tolist()}).")
        dup = np.bincount(j, minlength=n_p) > 1
        if dup.any():
            raise ValueError(f"{int(dup.sum())} pushes have more than one `{ev}` row (first "
                             f"push_ids {p_id[dup][:5].tolist()}); a push has at most one.")
        return j, rows

    j_open, r_open = answers("open")
    p_opened = np.zeros(n_p, dtype=bool)
    p_opened[j_open] = True
    p_open_t = np.full(n_p, np.nan)
    p_open_t[j_open] = t[r_open]
    p_open_dwell = np.full(n_p, np.nan)
    p_open_dwell[j_open] = dwell_col[r_open]
    flags = {}
    for ev in ("like", "share", "comment", "survey"):
        j, rows = answers(ev)
        f = np.zeros(n_p, dtype=bool)
        f[j] = True
        unopened = f & ~p_opened
        if unopened.any():
            raise ValueError(f"{int(unopened.sum())} pushes have a `{ev}` but no `open` (first "
                             f"push_ids {p_id[unopened][:5].tolist()}); it can only follow an "
                             "open.")
        flags[ev] = (f, j, rows)
    p_survey = np.zeros(n_p, dtype=np.int64)
    _, j_s, r_s = flags["survey"]
    if len(j_s):
        if "satisfaction" in df.columns:
            sat = df["satisfaction"].to_numpy(dtype=np.float64, na_value=np.nan)[r_s]
            p_survey[j_s] = np.where(np.isfinite(sat), sat, -1).astype(np.int64)
        else:
            p_survey[j_s] = -1
            notes.append("The log has `survey` rows but no `satisfaction` column: the survey "
                         "rate is fitted, the ordered logit keeps its defaults.")

    # ---- opt-outs: caused by the user's last push at or before them
    o_rows = rows_all[event == "opt_out"]
    o_user, o_t = uidx[o_rows], t[o_rows]
    twice = np.bincount(o_user, minlength=n_users) > 1
    if twice.any():
        raise ValueError(f"{int(twice.sum())} users opt out more than once (first user_ids "
                         f"{users[twice][:5].tolist()}); opting out is terminal.")
    stride = span_h + 2.0
    k = np.searchsorted(p_user * stride + p_t, o_user * stride + o_t, side="right") - 1
    ok = (k >= 0) & (p_user[np.maximum(k, 0)] == o_user)
    p_optout = np.zeros(n_p, dtype=bool)
    p_optout[k[ok]] = True
    diag["opt_outs"] = int(ok.sum())
    diag["opt_outs_before_any_push"] = int((~ok).sum())
    if (~ok).any():
        notes.append(f"{int((~ok).sum())} opt-outs come before their user's first push (first "
                     f"rows {o_rows[~ok][:5].tolist()}); no push caused them, so they are not "
                     "part of the opt-out hazard.")
    out_t = np.full(n_users, np.inf)
    out_t[o_user] = o_t
    p_at_risk = p_t <= out_t[p_user]
    after = int(np.count_nonzero(~p_at_risk))
    diag["pushes_after_opt_out"] = after
    if after:
        notes.append(f"{after} pushes reached users who had opted out; they count for opens but "
                     "not for the opt-out hazard.")

    return _Data(
        users=users, start=start, end=end, span_h=span_h, exposure=exposure, counts=counts,
        n_sessions=counts.sum(axis=1), s_user=uidx[s_rows], s_t=t[s_rows],
        s_dwell=dwell_col[s_rows], p_user=p_user, p_t=p_t, p_how=how[p_rows], p_id=p_id,
        p_style=index_of["style"], p_topic=index_of["topic"], p_cover=p_cover,
        p_opened=p_opened, p_open_t=p_open_t, p_open_dwell=p_open_dwell,
        p_like=flags["like"][0], p_share=flags["share"][0], p_comment=flags["comment"][0],
        p_survey=p_survey, p_optout=p_optout, p_at_risk=p_at_risk, styles=styles,
        topics=topics, use_style=use_style, use_topic=use_topic, bank=bank)


# ============================================================================ stage 2: segments
def _kmeans_pp(X: np.ndarray, w: np.ndarray, K: int, rng: np.random.Generator,
               n_iter: int = 100) -> np.ndarray:
    """Labels of weighted k-means on the rows of ``X`` (row weights ``w``): k-means++ seeding
    (a row is drawn with probability proportional to ``w * d^2``), then Lloyd iterations."""
    n = len(X)
    centers = np.empty((K, X.shape[1]))
    centers[0] = X[rng.choice(n, p=w / w.sum())]
    d2 = ((X - centers[0]) ** 2).sum(axis=1)
    for j in range(1, K):
        score = w * d2
        total = float(score.sum())
        i = int(rng.choice(n, p=score / total)) if total > 0 else int(rng.integers(n))
        centers[j] = X[i]
        d2 = np.minimum(d2, ((X - centers[j]) ** 2).sum(axis=1))
    x2 = (X ** 2).sum(axis=1)[:, None]
    labels = np.full(n, -1)
    for _ in range(n_iter):
        cross = np.einsum("nh,kh->nk", X, centers)  # einsum: see _mixture_em
        dist = x2 - 2.0 * cross + (centers ** 2).sum(axis=1)[None, :]
        new = dist.argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(K):
            members = labels == j
            if members.any():
                centers[j] = np.average(X[members], axis=0, weights=w[members])
            else:  # an empty cluster restarts at the point farthest from its own centre
                centers[j] = X[int(dist[np.arange(n), labels].argmax())]
    return labels


def _mixture_em(C: np.ndarray, R: np.ndarray, const: float, max_iter: int = 300,
                tol: float = 1e-3) -> tuple[np.ndarray, float]:
    """EM for a mixture of multinomials over hour of week, from responsibilities ``R``
    ``(n, K)`` (one-hot labels to start from a hard clustering); stops when no
    responsibility moves by more than ``tol``.

    Returns the new responsibilities and the log-likelihood.
    """
    n = len(C)
    ll = -np.inf
    for _ in range(max_iter):
        w = np.maximum(R.sum(axis=0) / n, 1e-300)
        # einsum, not BLAS: these products are small, and multi-threaded BLAS on a busy
        # machine makes them orders of magnitude slower
        prof = np.einsum("nk,nh->kh", R, C) + MIXTURE_PSEUDOCOUNT
        logp = np.log(prof / prof.sum(axis=1, keepdims=True))
        L = np.einsum("nh,kh->nk", C, logp) + np.log(w)[None, :]
        lse = special.logsumexp(L, axis=1)
        R_new = np.exp(L - lse[:, None])
        ll = float(lse.sum()) + const
        moved = float(np.abs(R_new - R).max())
        R = R_new
        if moved < tol:
            break
    return R, ll


def _fit_segments(data: _Data, K_req: int | None, rng: np.random.Generator,
                  diag: dict[str, Any]) -> tuple[np.ndarray, pd.DataFrame, float]:
    active = data.n_sessions > 0
    C = data.counts[active]
    n_act = len(C)
    # k-means runs on histograms shrunk towards the population profile by
    # KMEANS_SHRINKAGE pseudo-sessions, weighted by session count, so that users with few
    # sessions (noisy histograms far from every centre) cannot seed a cluster of their own
    pop = C.sum(axis=0) / C.sum()
    n_u = C.sum(axis=1)
    X = (C + KMEANS_SHRINKAGE * pop) / (n_u + KMEANS_SHRINKAGE)[:, None]
    # multinomial coefficients: the same for every K; kept so that log L is a true likelihood
    const = float(special.gammaln(C.sum(axis=1) + 1).sum() - special.gammaln(C + 1).sum())
    Ks = [K_req] if K_req is not None else list(
        range(1, min(MAX_AUTO_SEGMENTS, max(1, n_act // MIN_USERS_PER_SEGMENT)) + 1))
    rows, best = [], None
    for K in Ks:
        # short-run EM from every k-means start, then the best start runs to convergence
        short = None
        for _ in range(KMEANS_STARTS if K > 1 else 1):
            lab0 = _kmeans_pp(X, n_u, K, rng) if K > 1 else np.zeros(n_act, dtype=np.int64)
            R0 = np.zeros((n_act, K))
            R0[np.arange(n_act), lab0] = 1.0
            R, ll = _mixture_em(C, R0, const, max_iter=SHORT_EM_ITERATIONS)
            if short is None or ll > short[1]:
                short = (R, ll)
        fit_K = _mixture_em(C, short[0], const)
        n_par = K * (HOURS_PER_WEEK - 1) + (K - 1)
        bic = -2.0 * fit_K[1] + n_par * math.log(n_act)
        rows.append({"n_segments": K, "loglik": fit_K[1], "n_params": n_par, "bic": bic})
        if best is None or bic < best[1]:
            best = (fit_K, bic, K)
        elif len(rows) >= 3 and rows[-1]["bic"] > rows[-2]["bic"] > rows[-3]["bic"]:
            break  # the BIC has risen twice in a row: more segments only overfit
    (R, ll), _, K = best
    lab = R.argmax(axis=1)
    diag["segment_posterior_min_max"] = float(R.max(axis=1).min())
    diag["users_with_uncertain_segment"] = int(np.count_nonzero(R.max(axis=1) < 0.9))
    # segments in order of decreasing share of users, for stable names; empty ones dropped
    share = np.bincount(lab, minlength=K)
    order = [k for k in np.lexsort((np.arange(K), -share)) if share[k] > 0]
    rank = np.full(K, -1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    labels = np.zeros(data.n_users, dtype=np.int64)
    labels[active] = rank[lab]
    # users without organic sessions say nothing about their rhythm: the largest segment
    diag["users_without_sessions"] = int(np.count_nonzero(~active))
    selection = pd.DataFrame(rows)
    selection["chosen"] = selection["n_segments"] == K
    return labels, selection, ll


# ============================================================================ stage 3: activity
@dataclass
class _Activity:
    rates: np.ndarray        # (K, 168)
    mean_rate: np.ndarray    # (K,)
    shape: np.ndarray        # (K,)
    expected: np.ndarray     # (K,) expected sessions per user over the span
    weights: np.ndarray      # (K,)
    post_a: np.ndarray       # (n_users,) posterior Gamma shape of each user's multiplier
    post_b: np.ndarray       # (n_users,) posterior Gamma rate


def _fit_activity(data: _Data, labels: np.ndarray, K: int, est: _Estimates,
                  notes: list[str]) -> _Activity:
    n = data.n_users
    rates = np.zeros((K, HOURS_PER_WEEK))
    shape = np.zeros(K)
    expected = np.zeros(K)
    weights = np.bincount(labels, minlength=K) / n
    lo, hi = ACTIVITY_SHAPE_RANGE
    week = HOURS_PER_WEEK / data.span_h
    for k in range(K):
        members = labels == k
        nk = int(members.sum())
        Ck = data.counts[members]
        rates[k] = Ck.mean(axis=0) / data.exposure
        tot = Ck.sum(axis=1)
        m = float(tot.mean())
        expected[k] = m
        est.add(f"segments[{k}].weight", weights[k],
                math.sqrt(weights[k] * (1.0 - weights[k]) / n), "share of users (binomial SE)")
        est.add(f"segments[{k}].sessions_per_week", m * week,
                float(tot.std(ddof=1)) / math.sqrt(nk) * week if nk > 1 else float("nan"),
                "mean organic sessions per user and week (SE across users)")
        # Poisson-Gamma method of moments, delta-method SE from the sample moments
        k_hat, se = hi, float("nan")
        if nk > 2:
            v = float(tot.var(ddof=1))
            d = tot - m
            m3, m4 = float(np.mean(d ** 3)), float(np.mean(d ** 4))
            excess = v - m
            if excess <= m * m / hi:
                notes.append(f"Segment {k}: session totals are not over-dispersed (variance "
                             f"{v:.3g}, mean {m:.3g}); activity_shape is set to the upper end "
                             f"{hi:g} of its range (nearly equally active users).")
            else:
                k_hat = m * m / excess
                g_m = (2.0 * m * excess + m * m) / excess ** 2
                g_v = -m * m / excess ** 2
                var_k = (g_m ** 2 * v + g_v ** 2 * (m4 - v * v) + 2.0 * g_m * g_v * m3) / nk
                se = math.sqrt(max(var_k, 0.0))
                if not lo <= k_hat <= hi:
                    notes.append(f"Segment {k}: activity_shape {k_hat:.3g} clipped to "
                                 f"[{lo:g}, {hi:g}].")
                    k_hat = float(np.clip(k_hat, lo, hi))
        else:
            notes.append(f"Segment {k} has {nk} users: activity_shape set to {hi:g}.")
        shape[k] = k_hat
        est.add(f"segments[{k}].activity_shape", k_hat, se,
                "Poisson-Gamma method of moments on session totals (delta-method SE)")
    post_a = shape[labels] + data.n_sessions
    post_b = shape[labels] + expected[labels]
    return _Activity(rates=rates, mean_rate=rates.mean(axis=1), shape=shape, expected=expected,
                     weights=weights, post_a=post_a, post_b=post_b)


# ============================================================================ stage 4: opens
@dataclass
class _Pushes:
    seg: np.ndarray            # segment of each push (push order)
    q: np.ndarray              # seen-now probability
    D: np.ndarray              # hours to the next organic session (0 where none)
    has_next: np.ndarray       # a next organic session exists in the log
    late_ok: np.ndarray        # ... and comes before the user's next push
    x_now: np.ndarray          # relative activity at delivery
    x_late: np.ndarray         # relative activity at the next session (0 where none)
    dt_prev: np.ndarray        # hours since the user's previous push (inf for a first push)
    rank_index: list[np.ndarray]  # pushes that are their user's r-th (r = 1, 2, ...)
    fnorm2: np.ndarray         # squared norm of the cover's feature vector
    v_logit: np.ndarray        # variance of the open logit's individual part
    v_rel: np.ndarray          # variance of the individual part of relevance
    c_rel: np.ndarray          # its covariance with the open logit's individual part
    rows: np.ndarray           # open-model rows (pushes that did not cause an opt-out),
    #                            sorted by segment
    seg_slices: list[slice]    # each segment's block of `rows`


def _push_features(data: _Data, labels: np.ndarray, act: _Activity, spread: _Spread
                   ) -> _Pushes:
    glance = OpenModel().glance_hours
    seg = labels[data.p_user]
    rate_seg = act.rates[seg, data.p_how]
    # seen_now_probability(M * r) averaged over the posterior Gamma(a, b) of the multiplier M:
    # E[1 - exp(-M r g)] = 1 - (1 + r g / b) ** -a; a point mass (a, b -> inf, a / b = m)
    # gives seen_now_probability(m * r, g).
    a, b = act.post_a[data.p_user], act.post_b[data.p_user]
    q = -np.expm1(-a * np.log1p(rate_seg * glance / b))
    big = a > 1e6
    if big.any():
        q[big] = seen_now_probability(rate_seg[big] * a[big] / b[big], glance)
    # an hour without any session of the segment in the log has a fitted rate of 0; a floor
    # keeps a push opened at such an hour possible (it changes nothing elsewhere)
    q = np.maximum(q, 1e-9)
    x_now = relative_activity_feature(rate_seg, act.mean_rate[seg])

    stride = data.span_h + 2.0
    s_key = data.s_user * stride + data.s_t
    j = np.searchsorted(s_key, data.p_user * stride + data.p_t, side="right")
    has = j < len(s_key)
    has[has] = data.s_user[j[has]] == data.p_user[has]
    D = np.zeros(data.n_pushes)
    D[has] = data.s_t[j[has]] - data.p_t[has]
    same_next = np.r_[data.p_user[1:] == data.p_user[:-1], False]
    gap_next = np.full(data.n_pushes, np.inf)
    gap_next[same_next] = np.diff(data.p_t)[same_next[:-1]]
    late_ok = has & (D < gap_next)
    x_late = np.zeros(data.n_pushes)
    if has.any():
        seen_at = data.start + pd.to_timedelta(data.p_t[has] + D[has], unit="h")
        x_late[has] = relative_activity_feature(act.rates[seg[has], _hour_of_week(seen_at)],
                                                act.mean_rate[seg[has]])

    first = np.r_[True, data.p_user[1:] != data.p_user[:-1]]
    dt_prev = np.full(data.n_pushes, np.inf)
    dt_prev[1:] = np.where(first[1:], np.inf, np.diff(data.p_t))
    starts = np.flatnonzero(first)
    lengths = np.diff(np.r_[starts, data.n_pushes])
    rank_index = [starts[lengths > r] + r for r in range(1, int(lengths.max()))]

    # individual taste and topic spread (see "Individual taste" in the module docstring)
    n_attr = len(ATTRIBUTE_NAMES)
    if data.bank is not None:
        fnorm2 = (np.asarray(data.bank.features, dtype=np.float64) ** 2).sum(axis=1)[data.p_cover]
    else:  # attributes are standardised to unit spread; a style one-hot adds 1
        fnorm2 = np.full(data.n_pushes, float(n_attr + 1))
    day = np.floor(data.p_t / 24.0)
    vt = spread.variance(spread.taste_sd, day)
    vp = spread.variance(spread.topic_sd, day)
    om = OpenModel()
    v_logit = om.beta_taste ** 2 * vt * fnorm2 + om.beta_topic ** 2 * vp
    v_rel = vt * fnorm2 + vp
    c_rel = om.beta_taste * vt * fnorm2 + om.beta_topic * vp

    rows = np.flatnonzero(~data.p_optout)
    rows = rows[np.argsort(seg[rows], kind="stable")]
    K = int(labels.max()) + 1
    bounds = np.searchsorted(seg[rows], np.arange(K + 1))
    seg_slices = [slice(int(bounds[k]), int(bounds[k + 1])) for k in range(K)]
    return _Pushes(seg=seg, q=q, D=D, has_next=has, late_ok=late_ok, x_now=x_now,
                   x_late=x_late, dt_prev=dt_prev, rank_index=rank_index, fnorm2=fnorm2,
                   v_logit=v_logit, v_rel=v_rel, c_rel=c_rel, rows=rows, seg_slices=seg_slices)


def _fatigue_after(pushes: _Pushes, half_life_h: float) -> np.ndarray:
    """Each user's fatigue just after each push (its own increment included)."""
    fm = FatigueModel(half_life_h=half_life_h)
    F = np.full(len(pushes.dt_prev), fm.increment)
    for idx in pushes.rank_index:
        F[idx] = add_push_fatigue(F[idx - 1], 0.0, pushes.dt_prev[idx], fm)
    return F


class _OpenLikelihood:
    """Negative log-posterior of the open model, with its gradient and Hessian.

    Parameters ``x = [Theta (K x m), gamma (r), log stale_tau_h]``: ``Theta[k]`` is segment
    ``k``'s intercept, attribute weights (with a bank), style and topic contrasts;
    ``gamma = [beta_activity, beta_fatigue, (beta_quality)]``. With ``eta_now = Z theta +
    W_now gamma + offset`` (and ``eta_late`` alike) and the individual deviation
    ``eps ~ N(0, sd^2)`` of the logit, ``P = q E[s(eta_now + eps)] + e E[s(eta_late + eps)]``,
    the expectations by Gauss-Hermite quadrature (:func:`_normal_nodes`).
    """

    def __init__(self, *, seg_slices: list[slice], Z: np.ndarray, x_now: np.ndarray,
                 x_late: np.ndarray, qual: np.ndarray | None, offset: np.ndarray,
                 sd: np.ndarray, q: np.ndarray, e0: np.ndarray, D: np.ndarray,
                 y: np.ndarray, penalised: np.ndarray) -> None:
        self.slices = seg_slices
        self.K = len(seg_slices)
        self.Z = Z
        self.m = Z.shape[1]
        self.x_now, self.x_late, self.qual = x_now, x_late, qual
        self.r = 2 + (qual is not None)
        self.offset = offset
        nodes, self.wq = _normal_nodes(bool(np.any(sd > 0)))
        self.log_wq = np.log(self.wq)
        self.q, self.e0, self.D = q, e0, D
        self.y = y.astype(np.float64)
        self.opened = y.astype(bool)
        # logit deviations at the quadrature nodes, (rows, J), for opened / other rows
        self.eps_o = sd[self.opened, None] * nodes[None, :]
        self.eps_n = sd[~self.opened, None] * nodes[None, :]
        self.n_par = self.K * self.m + self.r + 1
        self.prior_prec = np.where(penalised, 1.0 / PRIOR_SD ** 2, 0.0)
        self.fixed: dict[int, float] = {}
        self.W1 = self.W2 = np.zeros((len(y), self.r))

    def set_fatigue(self, f_now: np.ndarray, f_late: np.ndarray) -> None:
        """Fatigue when each push is seen at once / at the next session (open-model rows)."""
        c1, c2 = [self.x_now, -f_now], [self.x_late, -f_late]
        if self.qual is not None:
            c1.append(self.qual)
            c2.append(self.qual)
        self.W1 = np.column_stack(c1)
        self.W2 = np.column_stack(c2)

    def etas(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The seen-now and seen-late logits (without the individual deviation)."""
        K, m, r = self.K, self.m, self.r
        Theta = x[:K * m].reshape(K, m)
        gam = x[K * m:K * m + r]
        base = self.offset.copy()
        for k, sl in enumerate(self.slices):
            base[sl] += self.Z[sl] @ Theta[k]
        return base + self.W1 @ gam, base + self.W2 @ gam

    def _component(self, eta: np.ndarray, o: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                              np.ndarray, np.ndarray]:
        """``E[s]``, ``E[s']``, ``E[s'']`` over the deviation for the rows not in ``o``; for
        the rows in ``o``: ``log E[s]``, ``E[s'] / E[s]``, ``E[s''] / E[s]`` (log domain, so
        finite when ``E[s]`` underflows) and the node posterior ``pi`` (n_o, J)."""
        s_n = special.expit(eta[~o, None] + self.eps_n)
        d_n = s_n - s_n * s_n
        S = s_n @ self.wq
        Sp = d_n @ self.wq
        Spp = (d_n - 2.0 * d_n * s_n) @ self.wq
        h_o = eta[o, None] + self.eps_o
        L = special.log_expit(h_o) + self.log_wq[None, :]
        logS = special.logsumexp(L, axis=1)
        pi = np.exp(L - logS[:, None])
        s_o = special.expit(h_o)
        rp = np.sum(pi * (1.0 - s_o), axis=1)
        rpp = np.sum(pi * (1.0 - s_o) * (1.0 - 2.0 * s_o), axis=1)
        return S, Sp, Spp, logS, rp, rpp, pi

    def _terms(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-row log-likelihood and the scaled derivatives ``u = l'(P) dP/deta``,
        ``t = l'(P) d2P/deta2`` (seen-now: 1, seen-late: 2), ``uphi = l'(P) dP/dlog(tau)``
        and ``xD = D / tau``; with the Bernoulli ``l``, ``l'' = -l'^2``."""
        eta1, eta2 = self.etas(x)
        xD = self.D * math.exp(-x[-1])
        e = self.e0 * np.exp(-xD)
        o, n = self.opened, ~self.opened
        S1, S1p, S1pp, lS1, r1p, r1pp, _ = self._component(eta1, o)
        S2, S2p, S2pp, lS2, r2p, r2pp, _ = self._component(eta2, o)
        ll = np.empty(len(eta1))
        u1, u2, t1, t2, uphi = (np.empty_like(ll) for _ in range(5))
        # opened: l'(P) = 1 / P, with the shares of the two components in the log domain
        with np.errstate(divide="ignore"):
            la = np.log(self.q[o]) + lS1
            lb = np.log(e[o]) + lS2
        lP = np.logaddexp(la, lb)
        ll[o] = lP
        sh1, sh2 = np.exp(la - lP), np.exp(lb - lP)
        u1[o], t1[o] = sh1 * r1p, sh1 * r1pp
        u2[o], t2[o] = sh2 * r2p, sh2 * r2pp
        uphi[o] = sh2 * xD[o]
        # not opened: l'(P) = -1 / (1 - P)
        qn, en = self.q[n], e[n]
        P = np.minimum(qn * S1 + en * S2, 1.0 - 1e-15)
        ll[n] = np.log1p(-P)
        inv = -1.0 / (1.0 - P)
        u1[n], t1[n] = inv * qn * S1p, inv * qn * S1pp
        u2[n], t2[n] = inv * en * S2p, inv * en * S2pp
        uphi[n] = inv * en * S2 * xD[n]
        return ll, u1, u2, t1, t2, uphi, xD

    def loglik(self, x: np.ndarray) -> float:
        """Log-likelihood (without the prior)."""
        return float(np.sum(self._terms(x)[0]))

    def deviation_given_open(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of the logit deviation ``eps`` of the opened rows, given the open
        (the two components weighted by their shares of ``P``)."""
        eta1, eta2 = self.etas(x)
        o = self.opened
        xD = self.D * math.exp(-x[-1])
        e = self.e0 * np.exp(-xD)
        *_, lS1, _, _, pi1 = self._component(eta1, o)
        *_, lS2, _, _, pi2 = self._component(eta2, o)
        with np.errstate(divide="ignore"):
            la = np.log(self.q[o]) + lS1
            lb = np.log(e[o]) + lS2
        lP = np.logaddexp(la, lb)
        post = np.exp(la - lP)[:, None] * pi1 + np.exp(lb - lP)[:, None] * pi2
        ev = self.eps_o
        mean = np.sum(post * ev, axis=1)
        var = np.maximum(np.sum(post * ev * ev, axis=1) - mean ** 2, 0.0)
        return mean, var

    def evaluate(self, x: np.ndarray, hess: bool = True
                 ) -> tuple[float, np.ndarray, np.ndarray | None]:
        """Negative log-posterior, its gradient and (if ``hess``) its Hessian at ``x``."""
        K, m, r = self.K, self.m, self.r
        ll_rows, u1, u2, t1, t2, uphi, xD = self._terms(x)
        ll = float(np.sum(ll_rows))
        g = np.zeros(self.n_par)
        for k, sl in enumerate(self.slices):
            g[k * m:(k + 1) * m] = self.Z[sl].T @ (u1[sl] + u2[sl])
        gs = slice(K * m, K * m + r)
        g[gs] = self.W1.T @ u1 + self.W2.T @ u2
        g[-1] = float(np.sum(uphi))
        f = -ll + 0.5 * float(np.sum(self.prior_prec * x * x))
        grad = -g + self.prior_prec * x
        if not np.isfinite(f):
            return math.inf, grad, (np.eye(self.n_par) if hess else None)
        if not hess:
            return f, grad, None
        w11 = -u1 * u1 + t1
        w22 = -u2 * u2 + t2
        w12 = -u1 * u2
        v1 = -u1 * uphi
        v2 = -u2 * uphi + u2 * xD
        W1, W2 = self.W1, self.W2
        H = np.zeros((self.n_par, self.n_par))
        for k, sl in enumerate(self.slices):
            bs = slice(k * m, (k + 1) * m)
            Zk = self.Z[sl]
            H[bs, bs] = _xtx(Zk * (w11[sl] + w22[sl] + 2.0 * w12[sl])[:, None], Zk)
            cross = _xtx(Zk, W1[sl] * (w11[sl] + w12[sl])[:, None]
                         + W2[sl] * (w22[sl] + w12[sl])[:, None])
            H[bs, gs] = cross
            H[gs, bs] = cross.T
            H[bs, -1] = H[-1, bs] = Zk.T @ (v1[sl] + v2[sl])
        H[gs, gs] = (_xtx(W1 * w11[:, None], W1) + _xtx(W2 * w22[:, None], W2)
                     + _xtx(W1 * w12[:, None], W2) + _xtx(W2 * w12[:, None], W1))
        H[gs, -1] = H[-1, gs] = W1.T @ v1 + W2.T @ v2
        H[-1, -1] = float(np.sum(-uphi * uphi + uphi * (xD - 1.0)))
        return f, grad, -H + np.diag(self.prior_prec)

    def fit(self, x0: np.ndarray, gtol: float) -> tuple[np.ndarray, float, bool]:
        """Minimise over the parameters not in :attr:`fixed`, from ``x0``."""
        x0 = np.array(x0, dtype=np.float64)
        for i, v in self.fixed.items():
            x0[i] = v
        free = np.ones(self.n_par, dtype=bool)
        free[list(self.fixed)] = False
        memo: dict[str, Any] = {"key": None, "val": None}

        def ev(z: np.ndarray, need_h: bool) -> tuple[float, np.ndarray, np.ndarray | None]:
            key = z.tobytes()
            if memo["key"] != key or (need_h and memo["val"][2] is None):
                xx = x0.copy()
                xx[free] = z
                memo["key"], memo["val"] = key, self.evaluate(xx, hess=need_h)
            return memo["val"]

        res = optimize.minimize(
            lambda z: ev(z, False)[0], x0[free], jac=lambda z: ev(z, False)[1][free],
            hess=lambda z: ev(z, True)[2][np.ix_(free, free)], method="trust-exact",
            options={"gtol": gtol, "maxiter": 300})
        x = x0.copy()
        x[free] = res.x
        return x, float(res.fun), bool(res.success)


class _OptOutLikelihood:
    """Negative log-likelihood of the per-push opt-out hazard ``base + coef * F``."""

    def __init__(self, y: np.ndarray) -> None:
        self.y = y.astype(bool)
        self.F = np.zeros(len(y))

    def evaluate(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        lam = np.maximum(x[0] + x[1] * self.F, 1e-300)
        y = self.y
        ll, l1, l2 = -lam, np.full(len(y), -1.0), np.zeros(len(y))
        if y.any():  # only opt-out rows: with none, the hazard may sit at 0 (no 1/0 warning)
            lam_y = lam[y]
            em1 = np.expm1(lam_y)
            ll = ll.copy()
            ll[y] = np.log(-np.expm1(-lam_y))
            l1[y] = 1.0 / em1
            l2[y] = -np.exp(lam_y) / em1 ** 2
        F = self.F
        g = np.array([l1.sum(), (l1 * F).sum()])
        H = np.array([[l2.sum(), (l2 * F).sum()], [(l2 * F).sum(), (l2 * F * F).sum()]])
        return -float(ll.sum()), -g, -H

    def fit(self, x0: np.ndarray | None) -> tuple[np.ndarray, float]:
        """Projected Newton under ``base_hazard > 0``, ``fatigue_coef >= 0``."""
        n1 = int(self.y.sum())
        if n1 == 0:
            return np.zeros(2), 0.0
        lb = np.array([1e-12, 0.0])
        x = np.array([n1 / len(self.y), 0.0]) if x0 is None else np.maximum(
            np.asarray(x0, dtype=np.float64), lb)
        f, g, H = self.evaluate(x)
        for _ in range(200):
            free = ~((x <= lb) & (g > 0))
            step = np.zeros(2)
            Hf = H[np.ix_(free, free)]
            try:
                if np.any(np.linalg.eigvalsh(Hf) <= 0):
                    raise np.linalg.LinAlgError
                step[free] = -np.linalg.solve(Hf, g[free])
            except np.linalg.LinAlgError:
                step[free] = -g[free] / np.maximum(np.abs(np.diag(Hf)), 1e-300)
            t = 1.0
            while True:
                xn = np.maximum(x + t * step, lb)
                fn = self.evaluate(xn)[0]
                if fn <= f + 1e-4 * float(g @ (xn - x)) or t < 1e-12:
                    break
                t *= 0.5
            done = np.all(np.abs(xn - x) <= 1e-10 * np.maximum(np.abs(x), n1 / len(self.y)))
            x = xn
            f, g, H = self.evaluate(x)
            if done:
                break
        return x, f


@dataclass
class _OpenFit:
    lik: _OpenLikelihood
    optout: _OptOutLikelihood
    pushes: _Pushes
    layout: dict[str, Any]
    x: np.ndarray
    oo: np.ndarray
    half_life: float
    F_after: np.ndarray        # fatigue just after each push, at the fitted half-life
    ll_open: float
    ll_optout: float
    profile: dict[float, float]
    fatigue_fixed_zero: bool
    set_half_life: Callable[[float], np.ndarray]
    cov: np.ndarray | None = None

    def profile_frame(self) -> pd.DataFrame:
        h = sorted(self.profile)
        return pd.DataFrame({"half_life_h": h, "profile_loglik": [self.profile[v] for v in h]})

    def segment_effects(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment ``k``'s taste (attribute part, style part) and topic means, in the units of
        :class:`Segment` (divided by ``beta_taste`` / ``beta_topic``)."""
        lay, om = self.layout, OpenModel()
        m = lay["m"]
        th = self.x[k * m:(k + 1) * m]
        i_s = 1 + lay["n_attr"]
        i_t = i_s + lay["n_style"]
        attr = th[1:i_s] / om.beta_taste
        style = (lay["CS"] @ th[i_s:i_t] / om.beta_taste if lay["n_style"]
                 else np.zeros(lay["CS"].shape[0]))
        topic = (lay["CT"] @ th[i_t:i_t + lay["n_topic"]] / om.beta_topic if lay["n_topic"]
                 else np.zeros(lay["CT"].shape[0]))
        return attr, style, topic


def _open_design(data: _Data, pushes: _Pushes, K: int
                 ) -> tuple[np.ndarray, dict[str, Any], np.ndarray | None, np.ndarray]:
    """Segment-block design ``Z`` of the open-model rows, its layout, quality and offset."""
    rows = pushes.rows
    cols = [np.ones(len(rows))]
    S, T = len(data.styles), len(data.topics)
    CS, CT = _sum_zero_basis(S), _sum_zero_basis(T)
    has_attr = data.bank is not None
    n_style = 0
    if has_attr:
        cov = data.p_cover[rows]
        cols.extend(np.asarray(data.bank.attributes, dtype=np.float64)[cov].T)
        cols.extend((np.asarray(data.bank.style_probs, dtype=np.float64)[cov] @ CS).T)
        n_style = S - 1
    elif data.use_style:
        cols.extend(CS[data.p_style[rows]].T)
        n_style = S - 1
    n_topic = 0
    if data.use_topic:
        cols.extend(CT[data.p_topic[rows]].T)
        n_topic = T - 1
    Z = np.column_stack(cols)
    qual, offset = None, np.zeros(len(rows))
    if has_attr:
        qv = np.asarray(data.bank.quality, dtype=np.float64)[data.p_cover[rows]] - 0.5
        if float(np.std(qv)) > 1e-9:
            qual = qv
        else:  # constant quality: its effect cannot be told from the intercept; keep the default
            offset = OpenModel().beta_quality * qv
    layout = {"n_attr": len(ATTRIBUTE_NAMES) if has_attr else 0, "n_style": n_style,
              "n_topic": n_topic, "CS": CS, "CT": CT, "has_attr": has_attr, "m": Z.shape[1],
              "K": K, "quality_fitted": qual is not None, "styles": list(data.styles),
              "topics": list(data.topics)}
    return Z, layout, qual, offset


def _fit_opens_and_fatigue(data: _Data, pushes: _Pushes, K: int, notes: list[str],
                           diag: dict[str, Any]) -> _OpenFit:
    rows = pushes.rows
    Z, layout, qual, offset = _open_design(data, pushes, K)
    m = layout["m"]
    e0 = (1.0 - pushes.q) * pushes.late_ok
    n_par = K * m + 2 + (qual is not None) + 1
    penalised = np.zeros(n_par, dtype=bool)
    for k in range(K):
        penalised[k * m + 1:(k + 1) * m] = True
    lik = _OpenLikelihood(seg_slices=pushes.seg_slices, Z=Z, x_now=pushes.x_now[rows],
                          x_late=pushes.x_late[rows], qual=qual, offset=offset,
                          sd=np.sqrt(pushes.v_logit[rows]),
                          q=pushes.q[rows], e0=e0[rows], D=pushes.D[rows],
                          y=data.p_opened[rows], penalised=penalised)
    at_risk = np.flatnonzero(data.p_at_risk)
    optout = _OptOutLikelihood(data.p_optout[at_risk])
    diag["open_model_pushes"] = len(rows)
    diag["opt_out_model_pushes"] = len(at_risk)

    def set_half_life(h: float) -> np.ndarray:
        Fa = _fatigue_after(pushes, h)
        F_late = fatigue_at(Fa, 0.0, pushes.D, h)
        lik.set_fatigue(Fa[rows], F_late[rows])
        optout.F = Fa[at_risk]
        return Fa

    # start: the overall open rate over the share of pushes that are ever seen
    tau0 = OpenModel().stale_tau_h
    reach = float(np.mean(pushes.q[rows] + e0[rows] * np.exp(-pushes.D[rows] / tau0)))
    p0 = float(np.clip(data.p_opened[rows].mean() / max(reach, 1e-9), 1e-6, 0.5))
    x0 = np.zeros(n_par)
    x0[[k * m for k in range(K)]] = math.log(p0 / (1.0 - p0))
    x0[-1] = math.log(tau0)
    state: dict[str, Any] = {"x": x0, "oo": None, "ok": True}
    profile: dict[float, float] = {}
    gtol_loose = 1e-3 * math.sqrt(len(rows))
    gtol_tight = 1e-7 * math.sqrt(len(rows))

    def neg_profile(h: float, gtol: float = gtol_loose) -> float:
        set_half_life(h)
        x, f_open, ok = lik.fit(state["x"], gtol)
        oo, f_oo = optout.fit(state["oo"])
        state.update(x=x, oo=oo, ok=state["ok"] and ok)
        profile[float(h)] = -(f_open + f_oo)
        return f_open + f_oo

    grid = np.asarray(HALF_LIFE_GRID_H)
    vals = [neg_profile(h) for h in grid]
    i = int(np.argmin(vals))
    if i in (0, len(grid) - 1):
        notes.append(f"The profile likelihood of the fatigue half-life peaks at the edge of the "
                     f"searched range ({grid[0]:g}-{grid[-1]:g} h), at {grid[i]:g} h: the "
                     "half-life is poorly identified by this log.")
    if i != len(grid) - 1:  # restart the refinement from the best grid point's coefficients
        neg_profile(grid[i])
    optimize.minimize_scalar(
        lambda psi: neg_profile(math.exp(psi)),
        bounds=(math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, len(grid) - 1)])),
        method="bounded", options={"xatol": 5e-3})
    h_best = max(profile, key=profile.get)
    neg_profile(h_best, gtol_tight)
    Fa = set_half_life(h_best)
    x = state["x"]
    fixed_zero = False
    bf = K * m + 1
    if x[bf] < 0:
        notes.append(f"beta_fatigue came out negative ({x[bf]:.3g}): fatigue does not lower "
                     "opens in this log. It is set to 0 and the open model refitted; the "
                     "half-life then rests on the opt-out hazard alone.")
        lik.fixed = {bf: 0.0}
        x, _, ok = lik.fit(x, gtol_tight)
        state["ok"] = state["ok"] and ok
        fixed_zero = True
    oo, f_oo = optout.fit(state["oo"])
    if not state["ok"]:
        notes.append("The open-model optimiser reported non-convergence at some half-life "
                     "(`diagnostics['open_converged']`).")
    diag["open_converged"] = bool(state["ok"])
    diag["half_life_evaluations"] = len(profile)
    return _OpenFit(lik=lik, optout=optout, pushes=pushes, layout=layout, x=x, oo=oo,
                    half_life=float(h_best), F_after=Fa, ll_open=lik.loglik(x), ll_optout=-f_oo,
                    profile=profile, fatigue_fixed_zero=fixed_zero,
                    set_half_life=set_half_life)


def _standard_errors(fit: _OpenFit, est: _Estimates, notes: list[str]) -> None:
    """Joint covariance of the open coefficients, log tau, the opt-out hazard and the log
    half-life: the Hessian of the (open + opt-out) negative log-likelihood, analytic within
    each model and by central differences of their analytic gradients along the log
    half-life (which moves every push's fatigue)."""
    lik, oo = fit.lik, fit.optout
    x, b = fit.x, fit.oo
    P = lik.n_par
    psi = math.log(fit.half_life)
    idx = np.array([i for i in range(P) if i not in lik.fixed], dtype=np.int64)

    def grads(p: float) -> tuple[np.ndarray, np.ndarray, float]:
        fit.set_half_life(math.exp(p))
        f1, g1, _ = lik.evaluate(x, hess=False)
        f2, g2, _ = oo.evaluate(b)
        return g1, g2, f1 + f2

    eps = 1e-3
    g1p, g2p, fp = grads(psi + eps)
    g1m, g2m, fm = grads(psi - eps)
    _, _, f0 = grads(psi)
    H1 = lik.evaluate(x, hess=True)[2]
    H2 = oo.evaluate(b)[2]
    n1 = len(idx)
    H = np.zeros((n1 + 3, n1 + 3))
    H[:n1, :n1] = H1[np.ix_(idx, idx)]
    H[n1:n1 + 2, n1:n1 + 2] = H2
    H[:n1, -1] = H[-1, :n1] = (g1p - g1m)[idx] / (2 * eps)
    H[n1:n1 + 2, -1] = H[-1, n1:n1 + 2] = (g2p - g2m) / (2 * eps)
    H[-1, -1] = (fp - 2.0 * f0 + fm) / eps ** 2
    # opt-out coefficients on their bound 0 (or no opt-outs at all) have no curvature-based SE
    keep = np.ones(n1 + 3, dtype=bool)
    keep[n1:n1 + 2] = b > 1e-9 * max(float(oo.y.mean()), 1e-12)
    if not oo.y.any():
        keep[n1:n1 + 2] = False
    cov_k = _inverse(H[np.ix_(keep, keep)], "open / opt-out / half-life", notes)
    cov = np.full((n1 + 3, n1 + 3), np.nan)
    cov[np.ix_(keep, keep)] = cov_k
    full = np.full((P + 3, P + 3), np.nan)
    sel = np.r_[idx, P, P + 1, P + 2]
    full[np.ix_(sel, sel)] = cov
    fit.cov = full
    _report_open_estimates(fit, est, notes)


def _report_open_estimates(fit: _OpenFit, est: _Estimates, notes: list[str]) -> None:
    lay, cov, x = fit.layout, fit.cov, fit.x
    K, m, P = lay["K"], lay["m"], fit.lik.n_par
    se = _se(cov)
    om = OpenModel()
    styles, topics = fit.layout["styles"], fit.layout["topics"]
    ml = "open model maximum likelihood (inverse Hessian)"
    for k in range(K):
        est.add(f"segments[{k}].open_intercept", x[k * m], se[k * m], ml)
        attr, style, topic = fit.segment_effects(k)
        for j, name in enumerate(ATTRIBUTE_NAMES[:lay["n_attr"]]):
            i = k * m + 1 + j
            est.add(f"segments[{k}].taste_mean[{name}]", attr[j], se[i] / om.beta_taste, ml)
        i_s = k * m + 1 + lay["n_attr"]
        if lay["n_style"]:
            V = cov[i_s:i_s + lay["n_style"], i_s:i_s + lay["n_style"]]
            sw = np.sqrt(np.maximum(np.diag(lay["CS"] @ V @ lay["CS"].T), 0.0))
            for j, s in enumerate(styles):
                est.add(f"segments[{k}].taste_mean[style:{s}]", style[j], sw[j] / om.beta_taste,
                        ml + ", centred over styles")
        i_t = i_s + lay["n_style"]
        if lay["n_topic"]:
            V = cov[i_t:i_t + lay["n_topic"], i_t:i_t + lay["n_topic"]]
            tw = np.sqrt(np.maximum(np.diag(lay["CT"] @ V @ lay["CT"].T), 0.0))
            for j, t in enumerate(topics):
                est.add(f"segments[{k}].topic_mean[{t}]", topic[j], tw[j] / om.beta_topic,
                        ml + ", centred over topics")
    g0 = K * m
    est.add("open.beta_activity", x[g0], se[g0], ml)
    est.add("open.beta_fatigue", x[g0 + 1], se[g0 + 1],
            "fixed at 0 (fitted value was negative)" if fit.fatigue_fixed_zero else ml)
    if lay["quality_fitted"]:
        est.add("open.beta_quality", x[g0 + 2], se[g0 + 2], ml)
    tau = math.exp(x[P - 1])
    est.add("open.stale_tau_h", tau, tau * se[P - 1], ml + ", delta method on log tau")
    est.add("fatigue.half_life_h", fit.half_life, fit.half_life * se[P + 2],
            "profile likelihood of opens and opt-outs (delta method on log half-life)")
    est.add("opt_out.base_hazard", fit.oo[0], se[P], "opt-out maximum likelihood")
    est.add("opt_out.fatigue_coef", fit.oo[1], se[P + 1], "opt-out maximum likelihood")
    if not fit.optout.y.any():
        notes.append("No push in the log was followed by an opt-out: the opt-out hazard is "
                     "estimated as 0.")
    else:
        for j, name in enumerate(("base_hazard", "fatigue_coef")):
            if not np.isfinite(se[P + j]):
                notes.append(f"opt_out.{name} sits on its lower bound 0; its standard error is "
                             "undefined.")


# ============================================================================ stage 6: after opens
def _relevance(data: _Data, pushes: _Pushes, fit: _OpenFit
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relevance behind each open: its mean and variance given the open, and the variance of
    its estimation error.

    Relevance is ``taste . features + topic affinity``: at the segment means plus the
    individual deviation ``delta``, jointly normal with the open logit's deviation ``eps``
    (``Cov = c_rel``). Opens select users who like the cover, so given the open
    ``E[delta] = c_rel / v_logit * E[eps | open]`` and ``Var[delta] = v_rel - c_rel^2 / v_logit
    + (c_rel / v_logit)^2 Var[eps | open]`` (both 0 without individual spread). The estimation
    error is that of the fitted taste and topic means, ``z' V z`` with ``V`` their covariance.
    NaN for pushes that were not opened.
    """
    lik, lay = fit.lik, fit.layout
    m = lay["m"]
    om = OpenModel()
    fit.set_half_life(fit.half_life)
    # relevance = the open logit's taste and topic part, each divided by its beta
    unit = np.r_[0.0, np.full(lay["n_attr"] + lay["n_style"], 1.0 / om.beta_taste),
                 np.full(lay["n_topic"], 1.0 / om.beta_topic)]
    rel = np.full(data.n_pushes, np.nan)
    err = np.full(data.n_pushes, np.nan)
    for k, sl in enumerate(lik.slices):
        bs = slice(k * m, (k + 1) * m)
        V = fit.cov[bs, bs] * np.outer(unit, unit)
        rows = pushes.rows[sl]
        Zk = lik.Z[sl]
        rel[rows] = Zk @ (fit.x[bs] * unit)
        err[rows] = np.einsum("ij,jk,ik->i", Zk, np.where(np.isfinite(V), V, 0.0), Zk)
    mean_eps, var_eps = lik.deviation_given_open(fit.x)
    opened_rows = pushes.rows[lik.opened]
    vl = pushes.v_logit[opened_rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        b = np.where(vl > 0, pushes.c_rel[opened_rows] / vl, 0.0)
    shift = np.zeros(data.n_pushes)
    var = np.full(data.n_pushes, np.nan)
    shift[opened_rows] = b * mean_eps
    var[opened_rows] = np.maximum(pushes.v_rel[opened_rows] - b * pushes.c_rel[opened_rows]
                                  + b * b * var_eps, 0.0)
    opened = data.p_opened
    return (np.where(opened, rel + shift, np.nan), np.where(opened, var, np.nan),
            np.where(opened, err, np.nan))


def _fit_dwell(data: _Data, labels: np.ndarray, pushes: _Pushes, rel: np.ndarray,
               rel_var: np.ndarray, rel_err: np.ndarray, K: int, est: _Estimates,
               notes: list[str], diag: dict[str, Any]) -> dict[str, Any]:
    """``dwell_mu`` (per segment) and ``relevance_coef`` by weighted least squares on log
    dwell of opens; ``session_dwell_mu`` from organic sessions; ``dwell_sigma`` pooled.

    Relevance is computed from estimated tastes, so it carries an estimation error of known
    variance ``rel_err``; left alone it would attenuate ``relevance_coef``. The normal
    equations are corrected for it (method of moments: the error's variance is taken out of
    the relevance column's sum of squares)."""
    # organic sessions
    s_ok = data.s_dwell > 0
    s_seg = labels[data.s_user[s_ok]]
    ls = np.log(data.s_dwell[s_ok])
    n_s = np.bincount(s_seg, minlength=K).astype(float)
    s_mu = np.bincount(s_seg, weights=ls, minlength=K) / np.maximum(n_s, 1)
    rss_s = np.bincount(s_seg, weights=(ls - s_mu[s_seg]) ** 2, minlength=K)
    # opens
    use = data.p_opened & (data.p_open_dwell > 0)
    zero = int(np.count_nonzero(data.p_opened & ~(data.p_open_dwell > 0)))
    zero_s = int(np.count_nonzero(~s_ok))
    diag["dwell_zero_rows"] = {"open": zero, "session": zero_s}
    if zero or zero_s:
        notes.append(f"{zero} opens and {zero_s} sessions have dwell_s == 0; a log-normal dwell "
                     "cannot produce them, so they are left out of the dwell fit.")
    seg = pushes.seg[use]
    y = np.log(data.p_open_dwell[use])
    r = rel[use]
    v = rel_var[use]
    me = rel_err[use]
    n_o = np.bincount(seg, minlength=K).astype(float)
    if np.any(n_o < 3) or np.any(n_s < 2):
        raise ValueError(f"Segments {np.flatnonzero((n_o < 3) | (n_s < 2)).tolist()} have fewer "
                         f"than 3 opens (have {n_o.astype(int).tolist()}) or 2 sessions with a "
                         "dwell time; dwell cannot be fitted. Use a longer log or fewer "
                         "segments.")
    vary = float(np.std(r)) > 1e-9
    X = np.column_stack([np.eye(K)[seg], r]) if vary else np.eye(K)[seg]
    sig2 = rss_s / np.maximum(n_s - 1, 1)
    coef = 0.0
    def normal_matrix(w: np.ndarray) -> np.ndarray:
        A = (X.T * w) @ X
        if vary:  # errors-in-variables correction of the relevance column
            A[K, K] -= float(np.sum(w * me))
        return A

    for _ in range(4):  # weighted least squares; variance sigma^2 + coef^2 Var(relevance)
        w = 1.0 / (sig2[seg] + coef ** 2 * v)
        beta = np.linalg.solve(normal_matrix(w), (X.T * w) @ y)
        coef = float(beta[K]) if vary else 0.0
        resid = y - X @ beta
        rss_o = np.bincount(seg, weights=resid ** 2 - coef ** 2 * v, minlength=K)
        sig2 = np.maximum((rss_s + rss_o) / np.maximum(n_s + n_o - 1 - X.shape[1] / K, 1),
                          1e-12)
    w = 1.0 / (sig2[seg] + coef ** 2 * v)
    cov = np.linalg.inv(normal_matrix(w))
    se = _se(cov)
    sigma = np.sqrt(sig2)
    diag["dwell_sigma_opens_only"] = np.sqrt(np.maximum(
        np.bincount(seg, weights=resid ** 2 - coef ** 2 * v, minlength=K)
        / np.maximum(n_o - 1, 1), 0.0)).tolist()
    diag["dwell_sigma_sessions_only"] = np.sqrt(rss_s / np.maximum(n_s - 1, 1)).tolist()
    for k in range(K):
        est.add(f"segments[{k}].dwell_mu", beta[k], se[k],
                "weighted least squares on log dwell of opens")
        est.add(f"segments[{k}].dwell_sigma", sigma[k],
                sigma[k] / math.sqrt(2.0 * (n_s[k] + n_o[k])),
                "residual SD of log dwell, pooled over opens and sessions (SE sigma/sqrt(2n))")
        est.add(f"segments[{k}].session_dwell_mu", s_mu[k], sigma[k] / math.sqrt(n_s[k]),
                "mean log dwell of organic sessions")
    if vary:
        est.add("dwell.relevance_coef", coef, se[K],
                "weighted least squares on log dwell of opens")
    else:
        coef = DwellModel().relevance_coef
        notes.append("Relevance does not vary among opens: dwell.relevance_coef keeps its "
                     "default.")
    var_o = sig2[seg] + (coef ** 2 * v if vary else 0.0)
    ll = float(np.sum(-0.5 * np.log(2 * np.pi * var_o) - 0.5 * resid ** 2 / var_o)
               + np.sum(-0.5 * np.log(2 * np.pi * sig2[s_seg])
                        - 0.5 * (ls - s_mu[s_seg]) ** 2 / sig2[s_seg]))
    return {"mu": beta[:K], "sigma": sigma, "coef": coef, "session_mu": s_mu, "ll": ll}


def _fit_engagement(data: _Data, rel: np.ndarray, rel_var: np.ndarray, est: _Estimates,
                    notes: list[str]) -> dict[str, Any]:
    """Likes, shares, comments per open: ``E[sigmoid(a_e + c * (relevance + delta))]`` over
    the relevance's deviation ``delta ~ N(0, rel_var)`` given the open (Gauss-Hermite; a plain
    logistic regression without individual spread)."""
    opened = data.p_opened
    r = rel[opened]
    sd = np.sqrt(rel_var[opened])
    nodes, wq = _normal_nodes(bool(np.any(sd > 0)))
    dev = sd[:, None] * nodes[None, :]                     # (n, J)
    Y = np.column_stack([data.p_like[opened], data.p_share[opened],
                         data.p_comment[opened]]).astype(np.float64)
    names = ("like_intercept", "share_intercept", "comment_intercept")
    counts = Y.sum(axis=0)
    default = EngagementModel()
    if np.any(counts == 0) or np.any(counts == len(r)):
        which = [names[j] for j in range(3) if counts[j] in (0, len(r))]
        notes.append(f"No variation in {which} over {len(r)} opens: the engagement model keeps "
                     "its defaults.")
        return {"model": default, "ll": float("nan")}
    vary = float(np.std(r)) > 1e-9

    def nll(z: np.ndarray) -> float:
        c = z[3] if vary else 0.0
        h = (r[:, None] + dev) * c                          # (n, J)
        total = 0.0
        for j in range(3):
            p = np.clip((special.expit(z[j] + h)) @ wq, 1e-300, 1.0 - 1e-15)
            total += float(np.sum(Y[:, j] * np.log(p) + (1.0 - Y[:, j]) * np.log1p(-p)))
        return -total

    p = counts / len(r)
    z0 = np.r_[np.log(p / (1 - p)), default.relevance_coef]
    res = optimize.minimize(nll, z0, method="BFGS", options={"gtol": 1e-7})
    z = res.x
    free = np.array([True, True, True, vary])
    cov = _inverse(_numerical_hessian(lambda u: nll(_embed(u, z, free)), z[free]),
                   "engagement", notes)
    se = np.full(4, np.nan)
    se[free] = _se(cov)
    ml = "logistic maximum likelihood per open"
    for j, n in enumerate(names):
        est.add(f"engagement.{n}", z[j], se[j], ml)
    if vary:
        est.add("engagement.relevance_coef", z[3], se[3], ml)
        coef = float(z[3])
    else:
        coef = default.relevance_coef
        notes.append("Relevance does not vary among opens: engagement.relevance_coef keeps its "
                     "default.")
    model = EngagementModel(like_intercept=float(z[0]), share_intercept=float(z[1]),
                            comment_intercept=float(z[2]), relevance_coef=coef)
    return {"model": model, "ll": -float(res.fun)}


def _embed(z: np.ndarray, template: np.ndarray, free: np.ndarray) -> np.ndarray:
    out = template.copy()
    out[free] = z
    return out


def _fit_surveys(data: _Data, pushes: _Pushes, rel: np.ndarray, rel_var: np.ndarray,
                 fit: _OpenFit, dwell: dict[str, Any], est: _Estimates, notes: list[str],
                 diag: dict[str, Any]) -> dict[str, Any]:
    """``survey_rate`` and the ordered logit of 1-5 answers
    (:func:`~covercast.simulators.response.satisfaction_probabilities`)."""
    default = SatisfactionModel()
    n_open = int(data.p_opened.sum())
    has = data.p_survey != 0
    n_s = int(has.sum())
    diag["surveys"] = n_s
    if n_s == 0:
        notes.append("The log has no surveys: the satisfaction model keeps its defaults.")
        return {"model": default, "ll": float("nan")}
    rate = n_s / n_open
    est.add("satisfaction.survey_rate", rate, math.sqrt(rate * (1 - rate) / n_open),
            "surveys per open (binomial SE)")
    scored = has & (data.p_survey > 0) & (data.p_open_dwell > 0)
    n_scored = int(scored.sum())
    if n_scored < MIN_SURVEYS:
        notes.append(f"Only {n_scored} scored surveys (fewer than {MIN_SURVEYS}): the ordered "
                     "logit keeps its defaults; survey_rate is fitted.")
        return {"model": dataclasses.replace(default, survey_rate=float(rate),
                                             cutpoints=list(default.cutpoints)),
                "ll": float("nan")}
    # fatigue when the push was opened: after its increment, decayed to the open
    wait = np.where(np.isfinite(data.p_open_t), data.p_open_t - data.p_t, 0.0)
    F_open = fatigue_at(fit.F_after, 0.0, wait, fit.half_life)[scored]
    ld = np.log(data.p_open_dwell[scored] / 60.0)
    # relevance given the observed dwell (Gaussian conditioning; exact without spread)
    seg = pushes.seg[scored]
    c_d, s2 = dwell["coef"], dwell["sigma"][seg] ** 2
    v = rel_var[scored]
    r0 = rel[scored]
    gain = c_d * v / (c_d * c_d * v + s2)
    r_s = r0 + gain * (np.log(data.p_open_dwell[scored]) - dwell["mu"][seg] - c_d * r0)
    v_s = v * s2 / (c_d * c_d * v + s2)
    X = np.column_stack([r_s, ld, -F_open])
    score = data.p_survey[scored].astype(np.int64)
    vary = np.std(X, axis=0) > 1e-9
    rows = np.arange(n_scored)
    nodes, wq = _normal_nodes(bool(np.any(v_s > 0)))
    dev = np.sqrt(v_s)[:, None] * nodes[None, :]          # (n, J) relevance deviations
    bounds = np.concatenate([np.full((n_scored, 1), -np.inf), np.full((n_scored, 1), np.inf)],
                            axis=1)

    def nll(th: np.ndarray) -> float:
        cuts = th[:4]
        if np.any(np.diff(cuts) <= 0):
            return 1e300
        eta = (X * vary) @ th[4:]
        cut = np.concatenate([bounds[:, :1], np.broadcast_to(cuts, (n_scored, 4)),
                              bounds[:, 1:]], axis=1)
        hi = cut[rows, score][:, None] - eta[:, None] - th[4] * dev
        lo = cut[rows, score - 1][:, None] - eta[:, None] - th[4] * dev
        p = (special.expit(hi) - special.expit(lo)) @ wq
        return -float(np.sum(np.log(np.maximum(p, 1e-300))))

    th0 = np.r_[default.cutpoints, default.relevance_coef, default.dwell_coef,
                default.fatigue_coef]
    res = optimize.minimize(nll, th0, method="Nelder-Mead",
                            options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 40000,
                                     "maxfev": 40000})
    res = optimize.minimize(nll, res.x, method="BFGS", options={"gtol": 1e-6})
    th = res.x
    free = np.r_[np.ones(4, dtype=bool), vary]
    cov = _inverse(_numerical_hessian(lambda u: nll(_embed(u, th, free)), th[free]),
                   "survey", notes)
    se = np.full(len(th), np.nan)
    se[free] = _se(cov)
    ml = "ordered logit maximum likelihood"
    for j in range(4):
        est.add(f"satisfaction.cutpoints[{j}]", th[j], se[j], ml)
    kwargs = {}
    for j, name in enumerate(("relevance_coef", "dwell_coef", "fatigue_coef")):
        if vary[j]:
            est.add(f"satisfaction.{name}", th[4 + j], se[4 + j], ml)
            kwargs[name] = float(th[4 + j])
        else:
            kwargs[name] = getattr(default, name)
            notes.append(f"satisfaction.{name}: its covariate does not vary over the surveys; "
                         "the default is kept.")
    model = SatisfactionModel(survey_rate=float(rate), cutpoints=[float(c) for c in th[:4]],
                              **kwargs)
    return {"model": model, "ll": -float(res.fun)}


# ============================================================================ stage 9: assemble
def _assemble(data: _Data, act: _Activity, fit: _OpenFit, dwell: dict[str, Any],
              eng: dict[str, Any], sat: dict[str, Any], K: int, spread: _Spread,
              notes: list[str], diag: dict[str, Any]) -> PopulationParams:
    n_attr = len(ATTRIBUTE_NAMES)
    segments = []
    for k in range(K):
        attr, style, topic = fit.segment_effects(k)
        taste = list(attr) if fit.layout["has_attr"] else [0.0] * n_attr
        peak = int(act.rates[k].reshape(7, 24).mean(axis=0).argmax())
        segments.append(Segment(
            name=f"seg{k}_{peak:02d}h", weight=float(act.weights[k]),
            activity=[float(a) for a in act.rates[k]], activity_shape=float(act.shape[k]),
            taste_mean=[float(t) for t in taste + list(style)], taste_sd=spread.taste_sd,
            topic_mean=[float(t) for t in topic], topic_sd=spread.topic_sd,
            open_intercept=float(fit.x[k * fit.layout["m"]]),
            dwell_mu=float(dwell["mu"][k]), dwell_sigma=float(dwell["sigma"][k]),
            session_dwell_mu=float(dwell["session_mu"][k])))
    # weights from shares of users sum to 1 up to rounding; make it exact
    total = sum(s.weight for s in segments)
    for s in segments:
        s.weight = s.weight / total
    g0 = K * fit.layout["m"]
    base = OpenModel()
    open_model = dataclasses.replace(
        base, beta_activity=float(fit.x[g0]), beta_fatigue=max(float(fit.x[g0 + 1]), 0.0),
        beta_quality=float(fit.x[g0 + 2]) if fit.layout["quality_fitted"] else base.beta_quality,
        stale_tau_h=float(math.exp(fit.x[-1])))
    kept = ["taste_sd", "topic_sd", "drift", "open.glance_hours", "open.beta_taste",
            "open.beta_topic", "fatigue.increment"]
    if not fit.layout["quality_fitted"]:
        kept.append("open.beta_quality")
    notes.append(f"Not identified from this log, kept as given or at their defaults: "
                 f"{', '.join(kept)} (taste_sd={spread.taste_sd:g}, "
                 f"topic_sd={spread.topic_sd:g}).")
    if fit.layout["has_attr"] is False:
        notes.append("Fitted without a cover bank: taste is one weight per style (attribute "
                     "weights 0) and the intercepts include the covers' mean quality effect.")
    source = (f"Fitted by covercast.simulators.fit from a log of {data.n_users} users, "
              f"{data.n_pushes} pushes, {int(data.p_opened.sum())} opens over "
              f"{data.span_h / 24:.1f} days ({data.start.isoformat()} .. "
              f"{data.end.isoformat()}); {K} segment(s). Not identified, so assumed: "
              f"{', '.join(kept)}. Style weights and topic affinities are centred (their mean "
              "is in open_intercept).")
    params = PopulationParams(
        segments=segments, styles=list(data.styles), topics=list(data.topics),
        open=open_model, fatigue=FatigueModel(increment=FatigueModel().increment,
                                              half_life_h=float(fit.half_life)),
        dwell=DwellModel(relevance_coef=float(dwell["coef"])), engagement=eng["model"],
        opt_out=OptOutModel(base_hazard=float(fit.oo[0]), fatigue_coef=float(fit.oo[1])),
        satisfaction=sat["model"], drift=dataclasses.replace(spread.drift), name="fitted",
        source=source)
    diag["n_segments"] = K
    return params
