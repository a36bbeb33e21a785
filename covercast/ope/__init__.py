"""Off-policy evaluation: logged datasets and estimators (numpy/pandas only, no torch).

* :mod:`covercast.ope.estimators` -- DM, IPS, SNIPS, DR, SNDR, Switch-DR; PDIS, WPDIS,
  sequential DR, FQE; each returns an :class:`~covercast.ope.estimators.OPEResult` (estimate,
  95 % CI, effective sample size, extreme-weight flag);
* :mod:`covercast.ope.data` -- :func:`collect`, :func:`collect_vector` (the population vector env, for million-decision
  logs), :class:`LoggedDataset` (Parquet + JSON, Minari
  export), the :class:`EpsilonGreedyAgent` / :class:`SoftmaxAgent` logging wrappers,
  :func:`evaluation_probabilities`, and the Open Bandit Dataset in per-decision form;
* :mod:`covercast.ope.obd_check` -- Bernoulli TS's CTR estimated from OBD's random log.

Names are imported on first use.
"""

from __future__ import annotations

from covercast._lazy import lazy_exports

_LAZY = {
    **{n: "covercast.ope.estimators" for n in (
        "OPEResult", "ExtremeWeightWarning", "estimate_per_decision", "estimate_sequential",
        "dm", "ips", "snips", "dr", "sndr", "switch_dr", "pdis", "wpdis", "sequential_dr",
        "fqe", "fit_fqe", "FQEModel", "PER_DECISION_ESTIMATORS", "SEQUENTIAL_ESTIMATORS")},
    **{n: "covercast.ope.data" for n in (
        "LoggedDataset", "EpsilonGreedyAgent", "SoftmaxAgent", "collect", "collect_vector",
        "evaluation_probabilities", "load_dataset", "obd_dataset")},
    "obd_check": "covercast.ope.obd_check",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
