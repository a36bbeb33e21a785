"""Benchmark: all per-decision estimators with confidence intervals on 1,000,000 decisions.

The target of issue 6 is under 10 s on 2 cores for DM, IPS, SNIPS, DR, SNDR and Switch-DR
together, each with its 95 % interval. The data are synthetic (uniform logging over
``n_actions`` actions, a Dirichlet evaluation policy, uniform rewards and reward model): the
cost of the estimators does not depend on the values. Reported: the median wall time over
``repeats`` runs of :func:`covercast.ope.estimators.estimate_per_decision` for each CI method.

With ``fqe`` (default), it also times FQE on ``n`` decisions shaped like PushSchedule-v0 logs
(48-step episodes, 40 observation features, ``n_actions`` actions; synthetic values): the fit
(:func:`covercast.ope.estimators.fit_fqe`) and, separately, its estimate with the 95 % interval
of the refit bootstrap (:func:`~covercast.ope.estimators.estimate_sequential` with
``fqe_model``, ``fqe_bootstrap`` replicates), which refits the model on every replicate.

With ``collect_decisions``, it also times logging that many decisions on PushSchedule-v0
(2-day episodes, an epsilon-greedy static scheduler) with the vector collector
(:func:`covercast.ope.data.collect_vector`) and a small sample with the single-user
:func:`~covercast.ope.data.collect`, and reports both rates and their ratio (measured side by
side in the same run).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from covercast._io import atomic_write_text, check_int

__all__ = ["bench_ope"]


def bench_ope(n: int = 1_000_000, n_actions: int = 6, repeats: int = 3, seed: int = 0,
              ci_methods: tuple[str, ...] = ("bootstrap", "normal"),
              out: str | os.PathLike | None = None, progress: bool = True,
              collect_decisions: int | None = None, fqe: bool = True,
              fqe_bootstrap: int = 200) -> dict[str, Any]:
    """Time the six per-decision estimators with CIs; return (and optionally save) the figures.

    Parameters
    ----------
    n : int
        Logged decisions (default 1,000,000).
    n_actions : int
        Actions (default 6, PushSchedule-v0's).
    repeats : int
        Timed runs per CI method (the median is reported).
    seed : int
        Seed of the synthetic data and of the bootstrap.
    ci_methods : tuple of str
        CI methods to time (``"bootstrap"``, ``"normal"``).
    out : path, optional
        Write the figures as JSON there (atomically).
    progress : bool
        Print each figure as it is measured.
    collect_decisions : int, optional
        Also time collecting this many logged decisions with the vector collector (and
        ``min(collect_decisions, 5000)`` with the single-user one).
    fqe : bool
        Also time FQE's fit and its refit-bootstrap interval (once each: they are long).
    fqe_bootstrap : int
        Bootstrap replicates of the FQE interval (default 200, the OPE experiment's).
    """
    from covercast.ope.estimators import (
        DEFAULT_N_BLOCKS,
        DEFAULT_N_BOOTSTRAP,
        estimate_per_decision,
    )

    for name, v in (("n", n), ("n_actions", n_actions), ("repeats", repeats)):
        check_int(v, name)
    rng = np.random.default_rng(seed)
    action = rng.integers(0, n_actions, n)
    pscore = np.full(n, 1.0 / n_actions)
    action_dist = rng.dirichlet(np.ones(n_actions), n)
    q = rng.random((n, n_actions))
    reward = rng.random(n)
    results: dict[str, Any] = {"n": int(n), "n_actions": int(n_actions), "repeats": int(repeats),
                               "n_bootstrap": DEFAULT_N_BOOTSTRAP, "n_blocks": DEFAULT_N_BLOCKS,
                               "cpu_count": os.cpu_count(), "seconds": {}}
    for ci in ci_methods:
        times = []
        for r in range(int(repeats)):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                estimate_per_decision(reward, action, pscore, action_dist, q, ci=ci, rng=seed + r)
            times.append(time.perf_counter() - t0)
        results["seconds"][ci] = float(np.median(times))
        if progress:
            print(f"6 per-decision estimators, {ci} CI, {n:,} decisions: "
                  f"{results['seconds'][ci]:.2f} s (median of {repeats})")
    if fqe:
        results["fqe"] = _bench_fqe(int(n), int(n_actions), int(fqe_bootstrap), seed, progress)
    if collect_decisions is not None:
        results["collect"] = _bench_collect(int(collect_decisions), seed)
        if progress:
            c = results["collect"]
            print(f"collect {c['vector_decisions']:,} decisions (vector env): "
                  f"{c['vector_s']:.2f} s = {c['vector_rate']:,.0f} decisions/s; single-user "
                  f"env: {c['single_rate']:,.0f} decisions/s; ratio {c['ratio']:.0f}x")
    if out is not None:
        atomic_write_text(Path(out), json.dumps(results, indent=2))
    return results


def _bench_fqe(n: int, n_actions: int, n_bootstrap: int, seed: int,
               progress: bool) -> dict[str, Any]:
    """Seconds of FQE's fit and of its estimate with the refit-bootstrap CI on ``n``
    synthetic decisions in 48-step episodes (40 observation features, like PushSchedule-v0)."""
    from covercast.ope.estimators import estimate_sequential, fit_fqe

    check_int(n_bootstrap, "fqe_bootstrap", 10)
    steps, n_obs = 48, 40
    rng = np.random.default_rng(seed + 1)
    episode = np.arange(n) // steps
    obs = rng.random((n, n_obs))
    action = rng.integers(0, n_actions, n)
    pscore = np.full(n, 1.0 / n_actions)
    action_dist = rng.dirichlet(np.ones(n_actions), n)
    reward = rng.normal(0.0, 0.1, n) + 0.02 * obs[:, 0] * action
    t0 = time.perf_counter()
    model = fit_fqe(obs, reward, action, action_dist, episode, iterations=400, horizon=steps)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = estimate_sequential(reward, action, pscore, action_dist, episode, estimators=("FQE",),
                              fqe_model=model, n_bootstrap=n_bootstrap, rng=seed)["FQE"]
    ci_s = time.perf_counter() - t0
    out = {"decisions": n, "episodes": int(episode[-1]) + 1, "n_bootstrap": n_bootstrap,
           "fit_s": fit_s, "ci_s": ci_s, "iterations": model.iterations,
           "ci_over_fit": ci_s / fit_s, "refit_converged_share":
           res.extra.get("refit_converged_share", float("nan"))}
    if progress:
        print(f"FQE, {n:,} decisions ({out['episodes']:,} episodes, {n_actions} actions, "
              f"{n_obs} features): fit {fit_s:.2f} s ({model.iterations} iterations); "
              f"estimate with the refit-bootstrap CI ({n_bootstrap} replicates) {ci_s:.2f} s "
              f"= {out['ci_over_fit']:.1f}x the fit")
    return out


def _bench_collect(decisions: int, seed: int) -> dict[str, Any]:
    """Decisions per second of the vector and the single-user collectors, side by side."""
    from covercast.agents import StaticScheduler
    from covercast.envs import make, make_vec
    from covercast.envs.registration import episode_steps
    from covercast.ope.data import EpsilonGreedyAgent, collect, collect_vector

    check_int(decisions, "collect_decisions")
    steps = episode_steps("covercast/PushSchedule-v0", 2.0)
    episodes = -(-decisions // steps)
    venv = make_vec(min(episodes, 50_000), horizon_days=2.0)
    t0 = time.perf_counter()
    data = collect_vector(venv, EpsilonGreedyAgent(StaticScheduler(), 0.5), episodes, seed)
    vector_s = time.perf_counter() - t0
    venv.close()
    env = make("covercast/PushSchedule-v0", horizon_days=2.0)
    small = -(-min(decisions, 5000) // steps)
    t0 = time.perf_counter()
    single = collect(env, EpsilonGreedyAgent(StaticScheduler(), 0.5), small, seed)
    single_s = time.perf_counter() - t0
    env.close()
    v_rate, s_rate = len(data) / vector_s, len(single) / single_s
    return {"vector_decisions": len(data), "vector_s": vector_s, "vector_rate": v_rate,
            "single_decisions": len(single), "single_s": single_s, "single_rate": s_rate,
            "ratio": v_rate / s_rate}
