"""Off-policy estimators, vectorised numpy: per-decision and sequential (over episodes).

Every estimator answers "what would the mean reward (per decision) or the return (per episode)
have been had the *evaluation* policy ``pi`` acted instead of the *logging* policy ``mu``
that produced the data?", and returns an :class:`OPEResult`: the estimate, a 95 % confidence
interval and the effective sample size of its importance weights.

Notation: decision ``i`` saw context ``x_i``, the logging policy took action ``a_i`` with
probability ``p_i = mu(a_i | x_i)`` (the *propensity*, ``pscore``), and reward ``r_i`` followed;
``pi(. | x_i)`` is the evaluation policy's distribution (``action_dist``, ``(n, K)``), and
``q(x_i, a)`` a reward model (``estimated_rewards``, ``(n, K)``). The importance weight is
``w_i = pi(a_i | x_i) / p_i``.

=============  ==============================================================================
estimator      estimate
=============  ==============================================================================
``DM``         ``mean_i sum_a pi(a|x_i) q(x_i, a)``  (direct method; as good as ``q``)
``IPS``        ``mean_i w_i r_i``  (unbiased when ``mu > 0`` wherever ``pi > 0``)
``SNIPS``      ``sum_i w_i r_i / sum_i w_i``  (self-normalised; bias O(1/n), less variance)
``DR``         ``DM + mean_i w_i (r_i - q(x_i, a_i))``  (unbiased if ``p`` is exact, any ``q``)
``SNDR``       ``DM + sum_i w_i (r_i - q(x_i, a_i)) / sum_i w_i``
``SwitchDR``   ``DM + mean_i 1{w_i <= tau} w_i (r_i - q(x_i, a_i))`` (the model alone where
               the weight exceeds ``tau``; ``tau = inf`` is DR; the form Open Bandit Pipeline
               implements, which needs only the logged action's propensity)
=============  ==============================================================================

Sequential estimators work on whole episodes (``episode`` ids, decisions in time order) and
estimate the expected discounted return ``E[sum_t gamma^t r_t]`` of ``pi`` from the episode's
start; ``rho_{i,t} = prod_{s <= t} w_{i,s}`` is the cumulative weight of episode ``i`` up to
step ``t``:

* ``PDIS`` (per-decision IS, Precup et al. 2000): ``mean_i sum_t gamma^t rho_{i,t} r_{i,t}``;
* ``WPDIS`` (weighted PDIS): ``sum_t gamma^t sum_i rho_{i,t} r_{i,t} / sum_i rho_{i,t}``; an
  episode that ended before step ``t`` keeps its last ``rho`` and contributes reward 0 (it sits
  in an absorbing state), so every step's normaliser covers all episodes;
* ``SeqDR`` (sequential doubly robust, Jiang & Li 2016; Thomas & Brunskill 2016):
  ``mean_i sum_t gamma^t [rho_{i,t} (r_{i,t} - Q(s_{i,t}, a_{i,t})) + rho_{i,t-1} V(s_{i,t})]``
  with ``V(s) = sum_a pi(a|s) Q(s, a)`` and ``rho_{i,-1} = 1``: unbiased for any ``Q`` when the
  propensities are exact, exact with the true ``Q``;
* ``FQE`` (fitted Q evaluation, Le et al. 2019): ridge regression of
  ``r + gamma V(s')`` on features of ``(s, horizon - t)`` per action (a shared part plus
  penalised per-action deviations), iterated; see :func:`fit_fqe`.

**Confidence intervals.** ``ci="bootstrap"`` (default) is a nonparametric bootstrap over the
independent units (decisions, or episodes when ``episode`` ids are given -- a cluster bootstrap,
since decisions of one user are dependent). To stay fast at a million decisions it resamples
*blocks*: the units, in data order, are cut into ``n_blocks`` contiguous blocks of (nearly)
equal size, each estimator is written as a sum of ratios of block sums, and every bootstrap
replicate re-weights the blocks with multinomial counts (``n_bootstrap x n_blocks`` draws,
shared by all estimators of a call). With ``n_units <= n_blocks`` every block is one unit and
this *is* the ordinary bootstrap; otherwise it is the bootstrap of block sums, which are
independent when the units are (valid as ``n_blocks`` grows; 2,000 by default). The 95 % CI is
the percentile interval. ``ci="normal"`` gives the normal interval with the delta-method
standard error of the same ratio-of-sums form (no resampling at all); ``ci=None`` skips it.

FQE is not a ratio of sums of fixed per-episode values: its Q model is fitted on the same
episodes. Its bootstrap *refits* the model on every replicate (the same block counts as the
other estimators). Ridge FQE depends on the data only through sums of per-episode statistics
(Gram matrices, cross moments with the next state, ``Phi' r``), so a replicate sums the
statistics weighted by its counts and runs the same iteration; no rows are resampled. Its
``ci="normal"`` is the normal interval with the refit replicates' standard deviation.

**Effective sample size** is Kish's ``(sum w)^2 / sum w^2`` of the weights (per decision;
the final cumulative weight per episode for the sequential estimators; ``n`` for DM and FQE,
which use no weights). **Extreme weights**: when the largest weight exceeds ``max_weight``
(default 100) or the ESS falls below 1 % of the units, the result's ``extreme_weights`` is set
and an :class:`ExtremeWeightWarning` is issued: the estimate then rests on a handful of
decisions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from covercast._io import check_int, check_number

__all__ = [
    "OPEResult", "ExtremeWeightWarning", "PER_DECISION_ESTIMATORS", "SEQUENTIAL_ESTIMATORS",
    "CI_METHODS", "check_inputs", "estimate_per_decision", "dm", "ips", "snips", "dr", "sndr",
    "switch_dr", "episode_matrix", "EpisodeMatrix", "estimate_sequential", "pdis", "wpdis",
    "sequential_dr", "fqe", "fit_fqe", "FQEModel", "FQERefit", "default_fqe_features",
    "DEFAULT_MAX_WEIGHT", "DEFAULT_N_BLOCKS", "DEFAULT_N_BOOTSTRAP",
]

#: Per-decision estimators, in the order :func:`estimate_per_decision` returns them.
PER_DECISION_ESTIMATORS: tuple[str, ...] = ("DM", "IPS", "SNIPS", "DR", "SNDR", "SwitchDR")
#: Sequential estimators, in the order :func:`estimate_sequential` returns them.
SEQUENTIAL_ESTIMATORS: tuple[str, ...] = ("PDIS", "WPDIS", "SeqDR", "FQE")
#: Ways to compute the confidence interval.
CI_METHODS: tuple[str | None, ...] = ("bootstrap", "normal", None)
#: A weight above this is called extreme.
DEFAULT_MAX_WEIGHT = 100.0
#: Blocks of the block bootstrap.
DEFAULT_N_BLOCKS = 2000
#: Bootstrap replicates.
DEFAULT_N_BOOTSTRAP = 1000
#: An ESS below this share of the units is called extreme.
MIN_ESS_SHARE = 0.01
_SUM_TOL = 1e-6
_FQE_SCALE_ROWS = 2000
_Z95 = 1.959963984540054


class ExtremeWeightWarning(UserWarning):
    """Importance weights so large that a few decisions dominate an estimate."""


@dataclass(frozen=True)
class OPEResult:
    """One estimator's answer.

    Attributes
    ----------
    estimator : str
        Name (``"IPS"``, ``"WPDIS"``, ...).
    estimate : float
        The estimated value (mean reward per decision, or expected return per episode).
    ci_low, ci_high : float
        The confidence interval (NaN when ``ci=None``).
    ess : float
        Kish effective sample size of the importance weights (``n_units`` for DM and FQE).
    n_units : int
        Independent units: decisions, or episodes for the sequential estimators and for
        per-decision estimators given ``episode`` ids.
    n_decisions : int
        Logged decisions used.
    max_weight : float
        Largest importance weight (1 for DM and FQE).
    extreme_weights : bool
        Whether ``max_weight`` exceeded the threshold or ``ess < 1 %`` of ``n_units``.
    ci_method : str
        ``"bootstrap"``, ``"normal"`` or ``"none"``.
    confidence : float
        Confidence level of the interval (0.95 by default).
    extra : dict
        Estimator-specific details (e.g. ``tau`` of Switch-DR, FQE's iterations).
    """

    estimator: str
    estimate: float
    ci_low: float
    ci_high: float
    ess: float
    n_units: int
    n_decisions: int
    max_weight: float
    extreme_weights: bool
    ci_method: str
    confidence: float = 0.95
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ci(self) -> tuple[float, float]:
        """``(ci_low, ci_high)``."""
        return self.ci_low, self.ci_high

    def covers(self, value: float) -> bool:
        """Whether the interval contains ``value``."""
        return bool(self.ci_low <= value <= self.ci_high)

    def as_dict(self) -> dict[str, Any]:
        """A flat dict (``extra`` entries prefixed ``extra_``), for a DataFrame row."""
        d = asdict(self)
        extra = d.pop("extra")
        d.update({f"extra_{k}": v for k, v in extra.items()})
        return d


# =============================================================================== validation
def _array(x: Any, name: str, ndim: int, dtype: Any = np.float64) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`{name}` must be a numeric array, got {type(x).__name__}.") from e
    if a.ndim != ndim:
        raise ValueError(f"`{name}` must be {ndim}-dimensional, got shape {a.shape}.")
    return a


def check_inputs(reward: Any, action: Any, pscore: Any, action_dist: Any,
                 estimated_rewards: Any = None, episode: Any = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None,
                            np.ndarray | None]:
    """Validate and convert the logged data; return the arrays.

    Parameters
    ----------
    reward : array_like, (n,)
        Rewards (finite).
    action : array_like, (n,)
        Logged actions, integers in ``[0, K)``.
    pscore : array_like, (n,)
        The logging policy's probability of the logged action, in ``(0, 1]``.
    action_dist : array_like, (n, K)
        The evaluation policy's action probabilities; each row non-negative and summing to 1
        (within 1e-6).
    estimated_rewards : array_like, (n, K), optional
        A reward (or Q) model's prediction for every action (finite).
    episode : array_like, (n,), optional
        Episode (user) id of each decision; decisions of one episode must be contiguous.

    Raises
    ------
    ValueError
        For an empty dataset, mismatched lengths, propensities outside ``(0, 1]``, evaluation
        probabilities that are negative or do not sum to 1, actions out of range, non-finite
        values, or episodes that are not contiguous; the message names the offending value.
    """
    r = _array(reward, "reward", 1)
    n = r.shape[0]
    if n == 0:
        raise ValueError("The logged dataset is empty (`reward` has length 0); off-policy "
                         "estimates need at least one logged decision.")
    a_raw = np.asarray(action)
    if a_raw.ndim != 1:
        raise ValueError(f"`action` must be 1-dimensional, got shape {a_raw.shape}.")
    if a_raw.size and not np.issubdtype(a_raw.dtype, np.integer):
        if not (np.issubdtype(a_raw.dtype, np.floating) and np.all(a_raw == np.rint(a_raw))):
            raise ValueError(f"`action` must hold integer action indices, got dtype "
                             f"{a_raw.dtype}.")
    a = a_raw.astype(np.int64)
    p = _array(pscore, "pscore", 1)
    pi = _array(action_dist, "action_dist", 2)
    lengths = {"reward": n, "action": a.shape[0], "pscore": p.shape[0],
               "action_dist": pi.shape[0]}
    q = None
    if estimated_rewards is not None:
        q = _array(estimated_rewards, "estimated_rewards", 2)
        lengths["estimated_rewards"] = q.shape[0]
    ep = None
    if episode is not None:
        ep = np.asarray(episode)
        if ep.ndim != 1:
            raise ValueError(f"`episode` must be 1-dimensional, got shape {ep.shape}.")
        lengths["episode"] = ep.shape[0]
    if len(set(lengths.values())) != 1:
        raise ValueError(f"The logged arrays must have one entry per decision, but their lengths "
                         f"differ: {lengths}.")
    if not np.all(np.isfinite(r)):
        bad = int(np.flatnonzero(~np.isfinite(r))[0])
        raise ValueError(f"`reward` must be finite, got {float(r[bad])} at index {bad}.")
    bad_p = ~((p > 0) & (p <= 1))
    if bad_p.any():
        i = int(np.flatnonzero(bad_p)[0])
        raise ValueError(f"`pscore` (the logging policy's probability of the logged action) must "
                         f"lie in (0, 1], got {float(p[i])!r} at index {i} ({int(bad_p.sum())} bad "
                         "value(s)); a zero propensity means the logging policy could not have "
                         "taken that action -- drop those rows or fix the logging policy.")
    k = pi.shape[1]
    if k < 1:
        raise ValueError("`action_dist` must have at least one action column, got shape "
                         f"{pi.shape}.")
    if a.min() < 0 or a.max() >= k:
        raise ValueError(f"`action` must lie in [0, {k - 1}] (action_dist has {k} columns), got "
                         f"[{a.min()}, {a.max()}].")
    if not np.all(np.isfinite(pi)) or (pi < 0).any():
        i = int(np.flatnonzero(~np.all(np.isfinite(pi) & (pi >= 0), axis=1))[0])
        raise ValueError(f"`action_dist` must hold probabilities >= 0, got row {i}: "
                         f"{pi[i].tolist()}.")
    sums = pi.sum(axis=1)
    off = np.abs(sums - 1.0) > _SUM_TOL
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(f"Each row of `action_dist` (the evaluation policy's probabilities) must "
                         f"sum to 1, but row {i} sums to {sums[i]:.6g} ({int(off.sum())} such "
                         "row(s)); normalise the rows or fix the policy's action_probabilities.")
    if q is not None:
        if q.shape != pi.shape:
            raise ValueError(f"`estimated_rewards` must have the shape of `action_dist` "
                             f"{pi.shape}, got {q.shape}.")
        if not np.all(np.isfinite(q)):
            raise ValueError("`estimated_rewards` must be finite (a reward model's predictions "
                             "for every action).")
    if ep is not None and n > 1:
        change = ep[1:] != ep[:-1]
        n_runs = int(change.sum()) + 1
        if n_runs != np.unique(ep).size:
            raise ValueError("The decisions of each `episode` must be contiguous (sort the log "
                             "by episode, then by time).")
    return r, a, p, pi, q, ep


def _check_ci(ci: Any, confidence: Any, n_bootstrap: Any, n_blocks: Any) -> None:
    if ci not in CI_METHODS:
        raise ValueError(f"`ci` must be one of {list(CI_METHODS)}, got {ci!r}.")
    check_number(confidence, "confidence", lo=0, hi=1, lo_open=True, hi_open=True)
    check_int(n_bootstrap, "n_bootstrap", 10)
    check_int(n_blocks, "n_blocks", 2)


def _as_rng(rng: Any) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)
                       and rng >= 0) or isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    raise ValueError(f"`rng` must be a numpy Generator, a non-negative int seed, a SeedSequence "
                     f"or None, got {rng!r}.")


# =============================================================================== the CI engine
@dataclass
class _Ratio:
    """An estimator written as ``sum_k sum_u num[u, k] / sum_u den[u, k]`` over units ``u``.

    ``den=None`` means a plain mean (``den = 1`` per unit).
    """

    num: np.ndarray                 # (n_units, k)
    den: np.ndarray | None          # (n_units, k) or None

    def value(self) -> float:
        n = self.num.shape[0]
        d = self.den.sum(axis=0) if self.den is not None else np.full(self.num.shape[1], n)
        return float(np.sum(_safe_div(self.num.sum(axis=0), d)))


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1.0), 0.0)


class _Bootstrap:
    """Multinomial block weights shared by every estimator of one call."""

    def __init__(self, n_units: int, n_blocks: int, n_bootstrap: int,
                 rng: np.random.Generator) -> None:
        g = min(n_blocks, n_units)
        self.starts = (np.arange(g, dtype=np.int64) * n_units) // g
        self.sizes = np.diff(np.append(self.starts, n_units)).astype(np.float64)
        self.weights = rng.multinomial(g, np.full(g, 1.0 / g), size=n_bootstrap
                                       ).astype(np.float64)             # (B, g)

    def block_sums(self, m: np.ndarray) -> np.ndarray:
        return np.add.reduceat(m, self.starts, axis=0)

    def replicates(self, ratio: _Ratio) -> np.ndarray:
        num = self.weights @ self.block_sums(ratio.num)                 # (B, k)
        if ratio.den is None:
            den = (self.weights @ self.sizes)[:, None]
        else:
            den = self.weights @ self.block_sums(ratio.den)
        return _safe_div(num, den).sum(axis=1)


def _normal_se(ratio: _Ratio) -> float:
    """Delta-method standard error of a sum of ratios of sums over i.i.d. units."""
    n = ratio.num.shape[0]
    if n < 2:
        return math.nan
    if ratio.den is None:
        infl = ratio.num.sum(axis=1)
        return float(np.std(infl, ddof=1) / math.sqrt(n))
    dbar = ratio.den.mean(axis=0)
    nbar = ratio.num.mean(axis=0)
    ratios = _safe_div(nbar, dbar)
    infl = _safe_div(ratio.num - ratios * ratio.den, dbar).sum(axis=1)
    return float(np.std(infl, ddof=1) / math.sqrt(n))


def _interval(ratio: _Ratio, estimate: float, ci: str | None, confidence: float,
              boot: _Bootstrap | None) -> tuple[float, float]:
    if ci is None:
        return math.nan, math.nan
    if ci == "normal":
        z = _Z95 if confidence == 0.95 else _normal_quantile(0.5 + confidence / 2)
        se = _normal_se(ratio)
        return estimate - z * se, estimate + z * se
    reps = boot.replicates(ratio)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _normal_quantile(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def _kish(w: np.ndarray) -> float:
    s2 = float(np.dot(w, w))
    return float(w.sum()) ** 2 / s2 if s2 > 0 else 0.0


def _result(name: str, ratio: _Ratio, weights: np.ndarray | None, n_decisions: int,
            ci: str | None, confidence: float, boot: _Bootstrap | None, max_weight: float,
            extra: dict[str, Any] | None = None) -> OPEResult:
    est = ratio.value()
    lo, hi = _interval(ratio, est, ci, confidence, boot)
    n_units = ratio.num.shape[0]
    if weights is None:
        ess, wmax, extreme = float(n_units), 1.0, False
    else:
        ess = _kish(weights)
        wmax = float(weights.max()) if weights.size else 0.0
        extreme = bool(wmax > max_weight or ess < MIN_ESS_SHARE * weights.size)
        if extreme:
            warnings.warn(f"{name}: extreme importance weights (largest {wmax:.4g}, effective "
                          f"sample size {ess:.4g} of {weights.size}); the estimate rests on few "
                          "decisions -- prefer a self-normalised or model-based estimator, or "
                          "log with more exploration.", ExtremeWeightWarning, stacklevel=3)
    return OPEResult(name, est, lo, hi, ess, int(n_units), int(n_decisions), wmax, extreme,
                     ci if ci is not None else "none", float(confidence), dict(extra or {}))


def _per_unit(values: np.ndarray, unit: np.ndarray | None, n_units: int) -> np.ndarray:
    """Sum per-decision columns ``(n, k)`` to per-unit rows ``(n_units, k)``."""
    if unit is None:
        return values
    out = np.empty((n_units, values.shape[1]))
    for j in range(values.shape[1]):
        out[:, j] = np.bincount(unit, weights=values[:, j], minlength=n_units)
    return out


def _unit_index(ep: np.ndarray | None) -> tuple[np.ndarray | None, int]:
    if ep is None:
        return None, 0
    start = np.empty(ep.shape[0], dtype=bool)
    start[0] = True
    start[1:] = ep[1:] != ep[:-1]
    idx = np.cumsum(start) - 1
    return idx, int(idx[-1]) + 1


# =============================================================================== per-decision
def estimate_per_decision(reward: Any, action: Any, pscore: Any, action_dist: Any,
                          estimated_rewards: Any = None, *, episode: Any = None,
                          estimators: Sequence[str] | None = None, tau: float = 10.0,
                          ci: str | None = "bootstrap", confidence: float = 0.95,
                          n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                          n_blocks: int = DEFAULT_N_BLOCKS,
                          max_weight: float = DEFAULT_MAX_WEIGHT,
                          rng: np.random.Generator | int | None = 0) -> dict[str, OPEResult]:
    """Run several per-decision estimators on one logged dataset, sharing the bootstrap.

    Parameters
    ----------
    reward, action, pscore, action_dist, estimated_rewards, episode :
        The logged data and the evaluation policy (see :func:`check_inputs`).
        ``estimated_rewards`` is needed by DM, DR, SNDR and SwitchDR (those are skipped when
        it is absent and ``estimators`` is None). With ``episode`` ids the bootstrap and the
        normal interval treat episodes as the independent units (cluster bootstrap).
    estimators : sequence of str, optional
        Names from :data:`PER_DECISION_ESTIMATORS` (default: all that the inputs allow).
    tau : float
        Switch-DR's weight threshold (> 0; ``inf`` makes it DR).
    ci : {"bootstrap", "normal", None}
        How to compute the interval (see the module docstring).
    confidence : float
        Level of the interval, in (0, 1).
    n_bootstrap, n_blocks : int
        Bootstrap replicates and blocks (the block bootstrap is exact when there are at most
        ``n_blocks`` units).
    max_weight : float
        A weight above this flags the result as extreme (with a warning).
    rng : Generator, int or None
        Random source of the bootstrap (default seed 0: the same data give the same CI).

    Returns
    -------
    dict
        Estimator name -> :class:`OPEResult`, in the order of ``estimators``.
    """
    r, a, p, pi, q, ep = check_inputs(reward, action, pscore, action_dist, estimated_rewards,
                                      episode)
    _check_ci(ci, confidence, n_bootstrap, n_blocks)
    if estimators is None:
        estimators = PER_DECISION_ESTIMATORS if q is not None else ("IPS", "SNIPS")
    estimators = tuple(estimators)
    unknown = [e for e in estimators if e not in PER_DECISION_ESTIMATORS]
    if unknown or not estimators:
        raise ValueError(f"`estimators` must be a non-empty list of {list(PER_DECISION_ESTIMATORS)}"
                         f", got unknown {unknown}.")
    need_q = [e for e in estimators if e in ("DM", "DR", "SNDR", "SwitchDR")]
    if need_q and q is None:
        raise ValueError(f"{need_q} need `estimated_rewards` (a reward model's (n, K) "
                         "predictions); pass it, or ask only for IPS and SNIPS.")
    check_number(tau, "tau", lo=0, lo_open=True, allow_inf=True)
    check_number(max_weight, "max_weight", lo=0, lo_open=True, allow_inf=True)
    n = r.shape[0]
    rows = np.arange(n)
    w = pi[rows, a] / p
    unit, n_units = _unit_index(ep)
    n_units = n_units if unit is not None else n
    boot = (_Bootstrap(n_units, int(n_blocks), int(n_bootstrap), _as_rng(rng))
            if ci == "bootstrap" else None)
    if q is not None:
        q_pi = np.einsum("ij,ij->i", pi, q)
        resid = r - q[rows, a]
    out: dict[str, OPEResult] = {}

    def mean_of(*cols: np.ndarray) -> _Ratio:
        v = _per_unit(np.stack(cols, axis=1), unit, n_units)
        if unit is None:
            return _Ratio(v, None)
        # per decision mean over all decisions: sum / n_decisions, with per-unit counts
        counts = np.bincount(unit, minlength=n_units).astype(np.float64)[:, None]
        return _Ratio(v, np.repeat(counts, v.shape[1], axis=1))

    def self_norm(numer: np.ndarray, weights: np.ndarray) -> _Ratio:
        v = _per_unit(np.stack([numer, weights], axis=1), unit, n_units)
        return _Ratio(v[:, :1], v[:, 1:])

    for name in estimators:
        if name == "DM":
            out[name] = _result(name, mean_of(q_pi), None, n, ci, confidence, boot, max_weight)
        elif name == "IPS":
            out[name] = _result(name, mean_of(w * r), w, n, ci, confidence, boot, max_weight)
        elif name == "SNIPS":
            out[name] = _result(name, self_norm(w * r, w), w, n, ci, confidence, boot,
                                max_weight)
        elif name == "DR":
            out[name] = _result(name, mean_of(q_pi + w * resid), w, n, ci, confidence, boot,
                                max_weight)
        elif name == "SNDR":
            dm_part = mean_of(q_pi)
            sn_part = self_norm(w * resid, w)
            den_dm = dm_part.den if dm_part.den is not None else np.ones_like(dm_part.num)
            ratio = _Ratio(np.concatenate([dm_part.num, sn_part.num], axis=1),
                           np.concatenate([den_dm, sn_part.den], axis=1))
            out[name] = _result(name, ratio, w, n, ci, confidence, boot, max_weight)
        else:  # SwitchDR
            keep = w <= tau
            out[name] = _result(name, mean_of(q_pi + np.where(keep, w * resid, 0.0)), w, n, ci,
                                confidence, boot, max_weight,
                                {"tau": float(tau), "switched_share": float(1 - keep.mean())})
    return out


def _single(name: str, reward: Any, action: Any, pscore: Any, action_dist: Any,
            estimated_rewards: Any, kwargs: dict[str, Any]) -> OPEResult:
    return estimate_per_decision(reward, action, pscore, action_dist, estimated_rewards,
                                 estimators=(name,), **kwargs)[name]


def dm(reward: Any, action: Any, pscore: Any, action_dist: Any, estimated_rewards: Any,
       **kwargs: Any) -> OPEResult:
    """Direct method: ``mean_i sum_a pi(a|x_i) q(x_i, a)`` (keywords: see
    :func:`estimate_per_decision`)."""
    return _single("DM", reward, action, pscore, action_dist, estimated_rewards, kwargs)


def ips(reward: Any, action: Any, pscore: Any, action_dist: Any, **kwargs: Any) -> OPEResult:
    """Inverse propensity scoring: ``mean_i w_i r_i``."""
    return _single("IPS", reward, action, pscore, action_dist, None, kwargs)


def snips(reward: Any, action: Any, pscore: Any, action_dist: Any, **kwargs: Any) -> OPEResult:
    """Self-normalised IPS: ``sum_i w_i r_i / sum_i w_i``."""
    return _single("SNIPS", reward, action, pscore, action_dist, None, kwargs)


def dr(reward: Any, action: Any, pscore: Any, action_dist: Any, estimated_rewards: Any,
       **kwargs: Any) -> OPEResult:
    """Doubly robust: ``DM + mean_i w_i (r_i - q(x_i, a_i))``."""
    return _single("DR", reward, action, pscore, action_dist, estimated_rewards, kwargs)


def sndr(reward: Any, action: Any, pscore: Any, action_dist: Any, estimated_rewards: Any,
         **kwargs: Any) -> OPEResult:
    """Self-normalised DR: ``DM + sum_i w_i (r_i - q(x_i, a_i)) / sum_i w_i``."""
    return _single("SNDR", reward, action, pscore, action_dist, estimated_rewards, kwargs)


def switch_dr(reward: Any, action: Any, pscore: Any, action_dist: Any, estimated_rewards: Any,
              tau: float = 10.0, **kwargs: Any) -> OPEResult:
    """Switch-DR: DR where ``w_i <= tau``, the model alone elsewhere."""
    return _single("SwitchDR", reward, action, pscore, action_dist, estimated_rewards,
                   dict(kwargs, tau=tau))


# =============================================================================== sequential
@dataclass(frozen=True)
class EpisodeMatrix:
    """Logged episodes as padded ``(n_episodes, T)`` arrays (``T`` = the longest episode).

    Attributes
    ----------
    reward, weight : numpy.ndarray
        Reward and per-step importance weight ``pi(a_t|s_t) / mu(a_t|s_t)``; 0 and 1 past an
        episode's end.
    mask : numpy.ndarray
        True where a step exists.
    q_taken, v_pi : numpy.ndarray or None
        ``Q(s_t, a_t)`` and ``V(s_t) = sum_a pi(a|s_t) Q(s_t, a)`` of a Q model (0 past the end).
    index : numpy.ndarray
        ``(n_episodes, T)`` row of each step in the flat log (-1 past the end).
    """

    reward: np.ndarray
    weight: np.ndarray
    mask: np.ndarray
    q_taken: np.ndarray | None
    v_pi: np.ndarray | None
    index: np.ndarray

    @property
    def n_episodes(self) -> int:
        return int(self.reward.shape[0])

    @property
    def horizon(self) -> int:
        return int(self.reward.shape[1])


def episode_matrix(reward: Any, action: Any, pscore: Any, action_dist: Any, episode: Any,
                   estimated_q: Any = None) -> EpisodeMatrix:
    """Arrange a flat log (decisions of each episode contiguous, in time order) as matrices."""
    if episode is None:
        raise ValueError("Sequential estimators need `episode` ids (one per decision, "
                         "contiguous per episode, in time order).")
    r, a, p, pi, q, ep = check_inputs(reward, action, pscore, action_dist, estimated_q, episode)
    n = r.shape[0]
    unit, n_ep = _unit_index(ep)
    starts = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]])
    step = np.arange(n) - starts[unit]
    lengths = np.bincount(unit, minlength=n_ep)
    horizon = int(lengths.max())
    shape = (n_ep, horizon)
    rows = np.arange(n)
    R = np.zeros(shape)
    R[unit, step] = r
    W = np.ones(shape)
    W[unit, step] = pi[rows, a] / p
    M = np.zeros(shape, dtype=bool)
    M[unit, step] = True
    idx = np.full(shape, -1, dtype=np.int64)
    idx[unit, step] = rows
    Qt = Vp = None
    if q is not None:
        Qt = np.zeros(shape)
        Qt[unit, step] = q[rows, a]
        Vp = np.zeros(shape)
        Vp[unit, step] = np.einsum("ij,ij->i", pi, q)
    return EpisodeMatrix(R, W, M, Qt, Vp, idx)


def _check_gamma(gamma: Any) -> float:
    return check_number(gamma, "gamma", lo=0, hi=1)


def estimate_sequential(reward: Any, action: Any, pscore: Any, action_dist: Any, episode: Any,
                        estimated_q: Any = None, *, gamma: float = 1.0,
                        estimators: Sequence[str] | None = None, ci: str | None = "bootstrap",
                        confidence: float = 0.95, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                        n_blocks: int = DEFAULT_N_BLOCKS,
                        max_weight: float = DEFAULT_MAX_WEIGHT,
                        rng: np.random.Generator | int | None = 0,
                        fqe_model: FQEModel | None = None,
                        progress: bool = False) -> dict[str, OPEResult]:
    """Sequential estimators of the expected discounted return per episode.

    Parameters
    ----------
    reward, action, pscore, action_dist, episode :
        The flat log (see :func:`check_inputs`); ``episode`` is required, and decisions of an
        episode must be contiguous and in time order.
    estimated_q : array_like, (n, K), optional
        ``Q(s_t, a)``: the expected discounted return *from step t on* of taking ``a`` then
        following ``pi`` (e.g. :meth:`FQEModel.predict_q`); needed by SeqDR.
    gamma : float
        Discount in [0, 1] (1: the plain return over the horizon).
    estimators : sequence of str, optional
        From :data:`SEQUENTIAL_ESTIMATORS` (default: PDIS and WPDIS, plus SeqDR with
        ``estimated_q``, plus FQE with ``fqe_model``).
    fqe_model : FQEModel, optional
        A model fitted by :func:`fit_fqe` on this log, for the FQE estimate: the mean over
        episodes of ``V(s_0)``. Its interval comes from a bootstrap that *refits* the model on
        every replicate (:meth:`FQEModel.refit` with the replicate's episode counts; the same
        block weights as the other estimators, so an exact episode bootstrap up to
        ``n_blocks`` episodes): it carries the regression's estimation error, which the
        bootstrap of the initial-state values given one fitted model (the earlier interval)
        ignored. It does not carry the model's misspecification bias. With ``ci="normal"``
        the interval is ``estimate +- z * sd`` of the refit replicates (FQE has no
        resampling-free interval here). ``extra`` reports how many replicates gave a finite
        value and the share whose iteration converged.
    ci, confidence, n_bootstrap, n_blocks, max_weight, rng :
        As in :func:`estimate_per_decision`; the units are episodes.
    progress : bool
        A progress bar for FQE's refits (default: none).

    Returns
    -------
    dict
        Estimator name -> :class:`OPEResult`.
    """
    _check_ci(ci, confidence, n_bootstrap, n_blocks)
    g = _check_gamma(gamma)
    m = episode_matrix(reward, action, pscore, action_dist, episode, estimated_q)
    if estimators is None:
        estimators = ("PDIS", "WPDIS") + (("SeqDR",) if m.q_taken is not None else ()) \
            + (("FQE",) if fqe_model is not None else ())
    estimators = tuple(estimators)
    unknown = [e for e in estimators if e not in SEQUENTIAL_ESTIMATORS]
    if unknown or not estimators:
        raise ValueError(f"`estimators` must be a non-empty list of {list(SEQUENTIAL_ESTIMATORS)}"
                         f", got unknown {unknown}.")
    if "SeqDR" in estimators and m.q_taken is None:
        raise ValueError("SeqDR needs `estimated_q` (Q(s_t, a) for every logged step and "
                         "action), e.g. from fit_fqe(...).predict_q(...).")
    if "FQE" in estimators and fqe_model is None:
        raise ValueError("FQE needs `fqe_model` (from fit_fqe).")
    n_dec = int(m.mask.sum())
    disc = g ** np.arange(m.horizon)
    rho = np.cumprod(m.weight, axis=1)                   # padded weights are 1: rho stays put
    final_w = rho[:, -1]
    boot = (_Bootstrap(m.n_episodes, int(n_blocks), int(n_bootstrap), _as_rng(rng))
            if ci == "bootstrap" else None)
    out: dict[str, OPEResult] = {}
    for name in estimators:
        if name == "PDIS":
            ratio = _Ratio((rho * m.reward) @ disc[:, None], None)
            out[name] = _result(name, ratio, final_w, n_dec, ci, confidence, boot, max_weight)
        elif name == "WPDIS":
            ratio = _Ratio(rho * m.reward * disc, rho)
            out[name] = _result(name, ratio, final_w, n_dec, ci, confidence, boot, max_weight)
        elif name == "SeqDR":
            rho_prev = np.concatenate([np.ones((m.n_episodes, 1)), rho[:, :-1]], axis=1)
            terms = rho * (m.reward - m.q_taken) + rho_prev * m.v_pi
            ratio = _Ratio(np.where(m.mask, terms, 0.0) @ disc[:, None], None)
            out[name] = _result(name, ratio, final_w, n_dec, ci, confidence, boot, max_weight)
        else:  # FQE
            out[name] = _fqe_result(fqe_model, m, n_dec, ci, confidence, boot, n_blocks,
                                    n_bootstrap, rng, progress)
    return out


def _fqe_result(model: FQEModel, m: EpisodeMatrix, n_dec: int, ci: str | None,
                confidence: float, boot: _Bootstrap | None, n_blocks: int, n_bootstrap: int,
                rng: Any, progress: bool) -> OPEResult:
    """FQE's estimate (the mean of ``V(s_0)``) with the interval of the refit bootstrap."""
    first = m.index[:, 0]
    est = float(model.initial_values(first).mean())
    extra: dict[str, Any] = {"iterations": model.iterations, "converged": model.converged}
    lo = hi = math.nan
    if ci is not None:
        d = model._require_data()
        if d.first.shape[0] != m.n_episodes or d.phi.shape[0] != n_dec:
            raise ValueError(f"`fqe_model` was fitted on {d.first.shape[0]} episodes "
                             f"({d.phi.shape[0]} decisions), but the log has {m.n_episodes} "
                             f"({n_dec}); fit it on the same log.")
        if boot is None:                    # "normal": its own draw of the same bootstrap
            boot = _Bootstrap(m.n_episodes, int(n_blocks), int(n_bootstrap), _as_rng(rng))
        refit = _fqe_refit(d, boot.starts, boot.weights, progress)
        reps = refit.estimates[np.isfinite(refit.estimates)]
        extra.update({"refit_replicates": int(reps.size),
                      "refit_converged_share": float(refit.converged.mean())})
        if reps.size >= max(2, refit.estimates.size // 2):
            alpha = 1.0 - confidence
            if ci == "bootstrap":
                lo, hi = (float(v) for v in np.quantile(reps, [alpha / 2, 1 - alpha / 2]))
            else:
                z = _Z95 if confidence == 0.95 else _normal_quantile(0.5 + confidence / 2)
                se = float(np.std(reps, ddof=1))
                lo, hi = est - z * se, est + z * se
    return OPEResult("FQE", est, lo, hi, float(m.n_episodes), int(m.n_episodes), int(n_dec),
                     1.0, False, ci if ci is not None else "none", float(confidence), extra)


def pdis(reward: Any, action: Any, pscore: Any, action_dist: Any, episode: Any,
         **kwargs: Any) -> OPEResult:
    """Per-decision importance sampling (keywords: see :func:`estimate_sequential`)."""
    return estimate_sequential(reward, action, pscore, action_dist, episode,
                               estimators=("PDIS",), **kwargs)["PDIS"]


def wpdis(reward: Any, action: Any, pscore: Any, action_dist: Any, episode: Any,
          **kwargs: Any) -> OPEResult:
    """Weighted per-decision importance sampling."""
    return estimate_sequential(reward, action, pscore, action_dist, episode,
                               estimators=("WPDIS",), **kwargs)["WPDIS"]


def sequential_dr(reward: Any, action: Any, pscore: Any, action_dist: Any, episode: Any,
                  estimated_q: Any, **kwargs: Any) -> OPEResult:
    """Sequential doubly robust estimator with the Q model ``estimated_q``."""
    return estimate_sequential(reward, action, pscore, action_dist, episode, estimated_q,
                               estimators=("SeqDR",), **kwargs)["SeqDR"]


# =============================================================================== FQE
def default_fqe_features(obs: np.ndarray, steps_left: np.ndarray) -> np.ndarray:
    """Features of ``(s_t, t)`` for FQE's linear model.

    ``[1, obs, u, u^2, u^3, u * obs]`` with ``u = steps_left / max(steps_left)`` (the share of
    the horizon still ahead, so a finite-horizon value can fall to 0 at the end): ``2 d + 4``
    columns for ``d`` observation features. :func:`fit_fqe` passes ``steps_left = horizon -
    t`` (the time index counted from the horizon, never the steps the logged episode happened
    to have left, which would reveal an early termination to the model).
    """
    obs = np.asarray(obs, dtype=np.float64)
    u = np.asarray(steps_left, dtype=np.float64)
    scale = max(float(u.max()), 1.0)
    u = (u / scale)[:, None]
    return np.hstack([np.ones_like(u), obs, u, u ** 2, u ** 3, u * obs])


@dataclass
class _FQEData:
    """What a (re)fit of FQE needs besides its sufficient statistics (see :func:`fit_fqe`)."""

    phi: np.ndarray              # (n, p) features of every logged decision
    reward: np.ndarray           # (n,)
    action: np.ndarray           # (n,)
    pi: np.ndarray               # (n, K) the evaluation policy
    nxt: np.ndarray              # (n,) row of the next decision (clipped)
    cont: np.ndarray             # (n,) gamma where the episode goes on, else 0
    first: np.ndarray            # (n_episodes,) first row of each episode
    pen: np.ndarray              # (p,) ridge penalty (0 on the intercept)
    action_ridge: float | None
    iterations: int
    tol: float
    phi_norm: float              # largest feature norm
    sample: list[np.ndarray]     # per action, the rows whose fitted values set the scale

    @property
    def k(self) -> int:
        return int(self.pi.shape[1])

    @property
    def p(self) -> int:
        return int(self.phi.shape[1])


@dataclass
class FQEModel:
    """A fitted linear Q model ``Q(s, a) = phi(s, t) . theta[a]`` (see :func:`fit_fqe`).

    Attributes
    ----------
    theta : numpy.ndarray
        ``(K, n_features)`` coefficients.
    phi : numpy.ndarray
        ``(n, n_features)`` features of every logged decision.
    action_dist : numpy.ndarray
        ``(n, K)`` the evaluation policy at every logged decision.
    iterations : int
        Iterations run.
    converged : bool
        Whether the largest change of the fitted values fell below the tolerance.
    """

    theta: np.ndarray
    phi: np.ndarray
    action_dist: np.ndarray
    iterations: int
    converged: bool
    _data: _FQEData | None = field(default=None, repr=False)

    def predict_q(self) -> np.ndarray:
        """``(n, K)`` Q values of every logged decision (for :func:`sequential_dr`)."""
        return self.phi @ self.theta.T

    def initial_values(self, rows: np.ndarray) -> np.ndarray:
        """``V(s) = sum_a pi(a|s) Q(s, a)`` at the given rows of the log."""
        q = self.phi[rows] @ self.theta.T
        return np.einsum("ij,ij->i", self.action_dist[rows], q)

    @property
    def n_episodes(self) -> int:
        """Episodes of the log the model was fitted on."""
        return int(self._require_data().first.shape[0])

    def _require_data(self) -> _FQEData:
        if self._data is None:
            raise ValueError("This FQEModel was built by hand, not by fit_fqe: it holds no "
                             "data to refit on.")
        return self._data

    def refit(self, episode_weights: Any, *, progress: bool = False) -> FQERefit:
        """Refit the model with per-episode weights: one fit per row of ``episode_weights``.

        A row of multinomial counts is one bootstrap replicate over episodes. The fit is
        :func:`fit_fqe`'s (same settings, same stopping rule) with every decision of episode
        ``e`` counted ``episode_weights[b, e]`` times; it needs only the weighted sums of
        per-episode statistics (see :func:`fit_fqe`), never the resampled rows. With all
        weights 1 it reproduces the plain fit (up to rounding).

        Cost: the per-episode statistics once (as much as the plain fit), their weighted sums
        (``B x n_episodes x K^2 p^2`` multiply-adds) and one ``(K + 1) p`` square solve plus
        the iterations per row. The bootstrap of :func:`estimate_sequential` weights groups
        of episodes instead (its ``n_blocks``), which bounds the middle term.

        Parameters
        ----------
        episode_weights : array_like, (B, n_episodes) or (n_episodes,)
            Non-negative finite weights per episode (episodes in log order); each row needs a
            positive sum.
        progress : bool
            Show a progress bar (the default path has none).

        Returns
        -------
        FQERefit
            The coefficients, the estimates (weighted mean of ``V(s_0)``), iterations and
            convergence of every refit.
        """
        d = self._require_data()
        w = np.asarray(episode_weights, dtype=np.float64)
        if w.ndim == 1:
            w = w[None, :]
        n_ep = d.first.shape[0]
        if w.ndim != 2 or w.shape[1] != n_ep:
            raise ValueError(f"`episode_weights` must have shape (B, {n_ep}) (one column per "
                             f"episode), got {np.shape(episode_weights)}.")
        if not np.all(np.isfinite(w)) or (w < 0).any() or (w.sum(axis=1) <= 0).any():
            raise ValueError("`episode_weights` must be finite, >= 0, with a positive sum in "
                             "every row.")
        return _fqe_refit(d, np.arange(n_ep, dtype=np.int64), w, progress)


@dataclass(frozen=True)
class FQERefit:
    """Refits of an FQE model under episode weights (:meth:`FQEModel.refit`).

    Attributes
    ----------
    theta : numpy.ndarray
        ``(B, K, n_features)`` coefficients of each refit.
    estimates : numpy.ndarray
        ``(B,)`` each refit's FQE estimate: the weighted mean over episodes of ``V(s_0)``.
    iterations : numpy.ndarray
        ``(B,)`` iterations each refit ran.
    converged : numpy.ndarray
        ``(B,)`` whether each refit met the tolerance.
    """

    theta: np.ndarray
    estimates: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray


def _fqe_system(d: _FQEData, grams: np.ndarray, rhs: np.ndarray, cross: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The iteration ``beta -> lhs^-1 (const + feed beta)`` from (batched) statistics.

    ``grams`` ``(B, K, p, p)``, ``rhs`` ``(B, K, p)``, ``cross`` ``(B, K, K, p, p)``; returns
    ``lhs``, ``feed`` ``(B, size, size)``, ``const`` ``(B, size)`` and ``to_theta``
    ``(size, K p)``.
    """
    k, p = d.k, d.p
    nb = grams.shape[0]
    if d.action_ridge is None:
        # separate ridge regressions: theta_j = (G_j + P)^-1 (c_j + sum_b C_jb theta_b)
        size = k * p
        lhs = np.zeros((nb, size, size))
        for j in range(k):
            lhs[:, j * p:(j + 1) * p, j * p:(j + 1) * p] = grams[:, j] + np.diag(d.pen)
        feed = cross.transpose(0, 1, 3, 2, 4).reshape(nb, size, size)
        const = rhs.reshape(nb, size)
        to_theta = np.eye(size)
    else:
        # theta_j = theta_0 + delta_j: one regression on [phi, onehot(a) x phi], the deltas
        # penalised by action_ridge (rare actions borrow strength from the shared part)
        size = (k + 1) * p
        lhs = np.zeros((nb, size, size))
        feed = np.zeros((nb, size, size))
        const = np.zeros((nb, size))
        lhs[:, :p, :p] = grams.sum(axis=1) + np.diag(d.pen)
        const[:, :p] = rhs.sum(axis=1)
        cb = cross.sum(axis=1)                       # (B, k, p, p): sum over the taken action
        cj = cross.sum(axis=2)                       # (B, k, p, p): sum over the next action
        feed[:, :p, :p] = cross.sum(axis=(1, 2))
        ridge_eye = float(d.action_ridge) * np.eye(p)
        for j in range(k):
            blk = slice((j + 1) * p, (j + 2) * p)
            lhs[:, :p, blk] = lhs[:, blk, :p] = grams[:, j]
            lhs[:, blk, blk] = grams[:, j] + ridge_eye
            const[:, blk] = rhs[:, j]
            feed[:, :p, blk] = cb[:, j]
            feed[:, blk, :p] = cj[:, j]
            for b in range(k):
                feed[:, blk, (b + 1) * p:(b + 2) * p] = cross[:, j, b]
        to_theta = np.vstack([np.tile(np.eye(p), (1, k)), np.eye(k * p)])   # beta -> theta
    return lhs, feed, const, to_theta


def _fqe_iterate(d: _FQEData, lhs: np.ndarray, feed: np.ndarray, const: np.ndarray,
                 to_theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the FQE iteration for a batch of systems; return ``theta`` ``(B, K, p)``,
    iterations ``(B,)`` and convergence ``(B,)``.

    Each system follows :func:`fit_fqe`'s rule: stop once the bound on the change of any
    fitted value is at most ``tol`` times the largest fitted value of the scale sample (at
    least 1), or on non-finite coefficients. The scale (a pass over the sample) is computed
    only where its upper bound ``max_j |sample_j| |theta_j|`` cannot settle the test alone.
    """
    k, p = d.k, d.p
    nb, size = const.shape
    eye = 1e-9 * np.eye(size)
    sol = np.linalg.solve(lhs + eye, np.concatenate([const[:, :, None], feed], axis=2))
    offset, step_map = sol[:, :, 0], sol[:, :, 1:]
    sample_norm = np.array([float(np.sqrt(np.max(np.einsum("ij,ij->i", sm, sm))))
                            if sm.size else 0.0 for sm in d.sample])
    beta = np.zeros((nb, size))
    theta = np.zeros((nb, k, p))
    iters = np.zeros(nb, dtype=np.int64)
    converged = np.zeros(nb, dtype=bool)
    active = np.ones(nb, dtype=bool)
    shared = to_theta.shape[0] != to_theta.shape[1]          # beta = [theta_0, deltas]
    for it in range(1, int(d.iterations) + 1):
        if not active.any():
            break
        new_beta = offset + np.matmul(step_map, beta[:, :, None])[:, :, 0]
        if shared:
            new = new_beta[:, p:].reshape(nb, k, p) + new_beta[:, None, :p]
        else:
            new = new_beta.reshape(nb, k, p)
        change = np.max(np.linalg.norm(new - theta, axis=2), axis=1) * d.phi_norm
        beta[active], theta[active], iters[active] = new_beta[active], new[active], it
        finite = np.all(np.isfinite(new), axis=(1, 2))
        done = active & finite & (change <= d.tol)            # the scale is at least 1
        upper = np.maximum(1.0, np.max(np.linalg.norm(new, axis=2) * sample_norm, axis=1))
        unsure = np.flatnonzero(active & finite & ~done
                                & (change <= d.tol * upper * (1 + 1e-9)))
        if unsure.size:
            scale = np.ones(unsure.size)
            for j, sm in enumerate(d.sample):
                if sm.size:
                    fitted = np.abs(sm @ new[unsure, j].T)              # (rows, unsure)
                    scale = np.maximum(scale, fitted.max(axis=0))
            done[unsure] = change[unsure] <= d.tol * scale
        converged |= done
        active &= ~(done | ~finite)
    return theta, iters, converged


#: Refits iterated together (a few (size x size) matrices each: kept small so that the
#: iteration's matrices stay in the cache).
_FQE_REFIT_CHUNK = 4
#: Largest accumulator of weighted statistics (bytes); more replicates take several passes.
_FQE_ACC_BYTES = 512 * 2 ** 20
#: Groups of episodes whose statistics are computed before they are summed into the replicates.
_FQE_GROUP_CHUNK = 64


def _fqe_group_stats(d: _FQEData, row_lo: int, row_hi: int) -> np.ndarray:
    """``(K, p, p + K p + 1)`` statistics of the decisions ``row_lo:row_hi`` (whole episodes):
    per taken action ``j``, ``Phi_j' [Phi_j, cont * pi(.|s') (x) phi(s'), r_j]``."""
    k, p = d.k, d.p
    out = np.zeros((k, p, p + k * p + 1))
    a = d.action[row_lo:row_hi]
    order = np.argsort(a, kind="stable") + row_lo
    bounds = np.searchsorted(a[order - row_lo], np.arange(k + 1))
    for j in range(k):
        rows = order[bounds[j]:bounds[j + 1]]
        if rows.size == 0:
            continue
        x = d.phi[rows]
        nx = d.nxt[rows]
        cpi = d.pi[nx] * d.cont[rows][:, None]
        y = (cpi[:, :, None] * d.phi[nx][:, None, :]).reshape(rows.size, k * p)
        out[j] = x.T @ np.hstack([x, y, d.reward[rows][:, None]])
    return out


def _fqe_refit(d: _FQEData, group_starts: np.ndarray, weights: np.ndarray,
               progress: bool) -> FQERefit:
    """Refit FQE under weights on groups of consecutive episodes (``group_starts``: the first
    episode of each group; ``weights`` ``(B, n_groups)``): sums the groups' statistics with
    the weights (one matrix product per chunk of groups), then solves each replicate."""
    from tqdm.auto import tqdm

    k, p = d.k, d.p
    nb, ng = weights.shape
    n_ep = d.first.shape[0]
    n = d.phi.shape[0]
    row_bounds = np.append(d.first[group_starts], n)
    ep_bounds = np.append(group_starts, n_ep)
    width = p + k * p + 1
    # the estimate: the weighted mean of V(s_0) = sum_a pi(a|s_0) phi(s_0) . theta_a
    h = (d.pi[d.first][:, :, None] * d.phi[d.first][:, None, :]).reshape(n_ep, k * p)
    h_groups = np.add.reduceat(h, group_starts, axis=0)
    ep_counts = np.diff(ep_bounds).astype(np.float64)
    num = weights @ h_groups                                   # (B, K p)
    den = weights @ ep_counts                                  # (B,)
    theta = np.zeros((nb, k, p))
    iters = np.zeros(nb, dtype=np.int64)
    conv = np.zeros(nb, dtype=bool)
    # replicates per pass: the weighted statistics of a pass must fit _FQE_ACC_BYTES (more
    # passes recompute the groups' statistics)
    per_pass = max(1, min(nb, _FQE_ACC_BYTES // (8 * k * p * width)))
    passes = [(b0, min(b0 + per_pass, nb)) for b0 in range(0, nb, per_pass)]
    bar = tqdm(total=len(passes) * (-(-ng // _FQE_GROUP_CHUNK)) + nb, desc="FQE refit",
               disable=not progress, unit="step", leave=False)
    for r0, r1 in passes:
        acc = np.zeros((r1 - r0, k * p * width))
        for c0 in range(0, ng, _FQE_GROUP_CHUNK):
            c1 = min(c0 + _FQE_GROUP_CHUNK, ng)
            stats = np.stack([_fqe_group_stats(d, int(row_bounds[g]), int(row_bounds[g + 1]))
                              .reshape(-1) for g in range(c0, c1)])
            acc += weights[r0:r1, c0:c1] @ stats
            bar.update()
        acc = acc.reshape(r1 - r0, k, p, width)
        for b0 in range(r0, r1, _FQE_REFIT_CHUNK):
            b1 = min(b0 + _FQE_REFIT_CHUNK, r1)
            s = acc[b0 - r0:b1 - r0]
            grams = s[..., :p]
            cross = s[..., p:p + k * p].reshape(b1 - b0, k, p, k, p).transpose(0, 1, 3, 2, 4)
            lhs, feed, const, to_theta = _fqe_system(d, grams, s[..., -1], cross)
            theta[b0:b1], iters[b0:b1], conv[b0:b1] = _fqe_iterate(d, lhs, feed, const,
                                                                   to_theta)
            bar.update(b1 - b0)
        del acc
    bar.close()
    estimates = np.einsum("bi,bi->b", num, theta.reshape(nb, k * p)) / den
    return FQERefit(theta, estimates, iters, conv)


def fit_fqe(obs: Any, reward: Any, action: Any, action_dist: Any, episode: Any, *,
            terminated: Any = None, gamma: float = 1.0, ridge: float = 1.0,
            iterations: int = 200, tol: float = 1e-4, horizon: int | None = None,
            action_ridge: float | None = 10.0,
            features: Callable[[np.ndarray, np.ndarray], np.ndarray] = default_fqe_features,
            ) -> FQEModel:
    """Fitted Q evaluation with a ridge-regression Q model per action (numpy only).

    Repeats: for each action ``a``, regress the target ``y_t = r_t + gamma * V(s_{t+1})`` on
    ``phi(s_t, t)`` over the decisions that took ``a`` (ridge penalty ``ridge``, intercept not
    penalised), where ``V(s) = sum_a pi(a|s) Q(s, a)`` uses the previous iterate, and ``V = 0``
    after an episode's last logged step (termination, or the end of the horizon: the value
    estimated is the return over the logged horizon). Stops when the fitted values move less
    than ``tol`` (relative to their scale) or after ``iterations``.

    The time feature is ``steps_left = horizon - t`` with ``t`` the step within the episode:
    a property of the state that the evaluation policy would also meet. (Counting the steps
    the *logged* episode had left instead -- the earlier version -- leaks the future: an
    episode that ends early by opt-out then looks "near the end of the horizon" from its first
    step, its large negative terminal reward is learned as an end-of-horizon effect, and the
    value of every initial state is wrong; on 2-day PushSchedule logs that bias alone gave
    relative errors of 3-23.)

    Every iteration is the same linear map of the coefficients, so its pieces -- the per-action
    Gram matrices ``Phi_a' Phi_a``, ``Phi_a' r_a`` and the cross moments ``Phi_a' diag(gamma
    * cont * pi(b | s')) Phi'_a`` of each action pair ``(a, b)`` -- are computed once
    (``O(n p^2 K)``), and an iteration costs ``O(K^2 p^2)``, independent of ``n``; the
    iterates are those of the plain algorithm (fitting the regressions on the targets
    ``y``). Convergence is judged on a bound of the change
    of any fitted value (the coefficients' change times the largest feature norm), against
    ``tol`` times the largest fitted value (at least 1; watched on the first 2,000 decisions
    of each action).

    Those pieces are sums over episodes of per-episode statistics, which is what makes the
    model cheap to *refit* under episode weights (:meth:`FQEModel.refit`, the bootstrap of
    :func:`estimate_sequential`): a weighted fit sums the weighted statistics and runs the
    same iteration, without touching the rows again.

    Parameters
    ----------
    obs : array_like, (n, d)
        Observations of the logged decisions (contiguous per episode, in time order).
    reward, action, action_dist, episode :
        As in :func:`check_inputs`.
    terminated : array_like of bool, (n,), optional
        Unused beyond validation (every episode end is treated as the end of the horizon);
        kept for logs that record it.
    gamma : float
        Discount in [0, 1].
    ridge : float
        L2 penalty (> 0).
    iterations : int
        Maximum number of iterations (>= 1); a horizon of ``T`` steps needs up to ``T`` for an
        exact fit with ``gamma = 1``.
    tol : float
        Convergence tolerance.
    horizon : int, optional
        Steps of a full episode (default: the longest logged episode), >= that length.
    action_ridge : float or None
        The per-action models are ``theta_a = theta_0 + delta_a``, one joint regression with
        the deviations ``delta_a`` penalised by ``action_ridge`` (> 0; default 10): actions the
        logging policy rarely took borrow from the shared part instead of extrapolating from a
        few rows (with few episodes, separate models made the iteration diverge). ``None``:
        separate ridge regressions per action (the earlier behaviour).
    features : callable
        ``features(obs, steps_left) -> (n, p)``; default :func:`default_fqe_features`.
    """
    x = _array(obs, "obs", 2)
    r, a, _, pi, _, ep = check_inputs(reward, action, np.ones(len(np.asarray(reward))),
                                      action_dist, None, episode)
    if ep is None:
        raise ValueError("FQE needs `episode` ids.")
    if x.shape[0] != r.shape[0]:
        raise ValueError(f"`obs` must have one row per decision ({r.shape[0]}), got "
                         f"{x.shape[0]}.")
    if terminated is not None and np.asarray(terminated).shape != r.shape:
        raise ValueError(f"`terminated` must have shape {r.shape}, got "
                         f"{np.asarray(terminated).shape}.")
    g = _check_gamma(gamma)
    check_number(ridge, "ridge", lo=0, lo_open=True, allow_inf=True)
    check_int(iterations, "iterations")
    if action_ridge is not None:
        check_number(action_ridge, "action_ridge", lo=0, lo_open=True, allow_inf=True)
    check_number(tol, "tol", lo=0, allow_inf=True)
    n = r.shape[0]
    unit, n_ep = _unit_index(ep)
    first = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]])
    last = np.r_[unit[1:] != unit[:-1], True]
    step = np.arange(n) - first[unit]
    longest = int(step.max()) + 1
    if horizon is None:
        horizon = longest
    if check_int(horizon, "horizon") < longest:
        raise ValueError(f"`horizon` must be >= the longest logged episode ({longest} steps), "
                         f"got {horizon!r}.")
    phi = np.asarray(features(x, int(horizon) - step), dtype=np.float64)
    if phi.ndim != 2 or phi.shape[0] != n or not np.all(np.isfinite(phi)):
        raise ValueError(f"`features` must return finite (n={n}, p) arrays, got shape "
                         f"{phi.shape}.")
    k, p = pi.shape[1], phi.shape[1]
    nxt = np.minimum(np.arange(n) + 1, n - 1)
    cont = (~last).astype(np.float64) * g
    intercept = bool(np.allclose(phi[:, 0], 1.0))
    pen = np.full(p, float(ridge))
    pen[0] = 0.0 if intercept else float(ridge)
    d = _FQEData(phi=phi, reward=r, action=a, pi=pi, nxt=nxt, cont=cont, first=first, pen=pen,
                 action_ridge=None if action_ridge is None else float(action_ridge),
                 iterations=int(iterations), tol=float(tol),
                 phi_norm=float(np.sqrt(np.max(np.einsum("ij,ij->i", phi, phi)))),
                 sample=[phi[np.flatnonzero(a == j)[:_FQE_SCALE_ROWS]] for j in range(k)])
    # fixed pieces: per action the Gram matrix, Phi_a' r_a and the cross moments
    grams, rhs, cross = np.zeros((k, p, p)), np.zeros((k, p)), np.zeros((k, k, p, p))
    for j in range(k):
        rows = np.flatnonzero(a == j)
        if rows.size == 0:
            continue
        ph = phi[rows]
        grams[j] = ph.T @ ph
        rhs[j] = ph.T @ r[rows]
        live = cont[rows] > 0
        if live.any():
            ph_l = ph[live]
            nx = nxt[rows[live]]
            phn = phi[nx] * cont[rows[live]][:, None]
            for b in range(k):
                cross[j, b] = ph_l.T @ (phn * pi[nx, b][:, None])
    lhs, feed, const, to_theta = _fqe_system(d, grams[None], rhs[None], cross[None])
    theta, iters, conv = _fqe_iterate(d, lhs, feed, const, to_theta)
    return FQEModel(theta[0], phi, pi, int(iters[0]), bool(conv[0]), d)


def fqe(obs: Any, reward: Any, action: Any, pscore: Any, action_dist: Any, episode: Any, *,
        gamma: float = 1.0, fqe_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any) -> OPEResult:
    """Fit :func:`fit_fqe` and return its estimate with the refit-bootstrap interval.

    Keywords (``ci``, ``confidence``, ``n_bootstrap``, ``n_blocks``, ``rng``, ``progress``)
    as in :func:`estimate_sequential`; ``fqe_kwargs`` go to :func:`fit_fqe`.
    """
    model = fit_fqe(obs, reward, action, action_dist, episode, gamma=gamma,
                    **dict(fqe_kwargs or {}))
    return estimate_sequential(reward, action, pscore, action_dist, episode, gamma=gamma,
                               estimators=("FQE",), fqe_model=model, **kwargs)["FQE"]
