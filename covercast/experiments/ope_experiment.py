"""``covercast experiment ope``: off-policy estimators scored against the simulator's truth.

For each (logging policy, evaluation policy) pair and each dataset size and seed:

1. the **truth** is the on-policy value of the evaluation policy from
   :func:`covercast.experiments.evaluate.evaluate` on ``truth_episodes`` fresh episodes: the
   mean return per episode (target of the sequential estimators) and the mean reward per
   decision (total reward / total steps; target of the per-decision estimators);
2. a logged dataset of the requested number of decisions (whole episodes) is collected with
   the logging policy (:func:`covercast.ope.data.collect`), the evaluation policy's
   probabilities are computed over the logged histories, FQE is fitted, and every estimator
   is run;
3. each estimate is scored: relative error ``|estimate - truth| / |truth|`` and whether the
   95 % CI covers the truth.

Results: ``results.csv`` (one row per estimate), ``summary.csv`` (mean relative error and
coverage per pair, estimator and size), ``error_vs_size.png`` and ``report.md``, beside
``config.json``. The truth has its own Monte-Carlo error (its standard error is in the
results); coverage is judged against the point truth.

Note: the per-decision estimators treat each slot as a bandit decision, so they estimate the
evaluation policy's mean reward *on the logged state distribution*; in PushSchedule the state
(fatigue, push history) depends on the policy, so they are biased for the on-policy reward
per decision -- the sequential estimators are the right tools, and the experiment shows the gap.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import atomic_write, atomic_write_csv, atomic_write_text

__all__ = ["OPEExperimentConfig", "run_ope_experiment", "default_policies"]


@dataclass
class OPEExperimentConfig:
    """Settings of one OPE experiment."""

    sizes: tuple[int, ...] = (1_000, 5_000, 20_000)
    """Dataset sizes in logged decisions (rounded up to whole episodes)."""
    seeds: int = 3
    """Datasets per size."""
    horizon_days: float = 2.0
    """Days per episode (hourly slots: 24 decisions a day)."""
    truth_episodes: int = 2_000
    """Episodes of on-policy simulation for each evaluation policy's truth."""
    n_bootstrap: int = 500
    """Bootstrap replicates of every CI."""
    fqe_iterations: int = 100
    """Maximum FQE iterations."""
    seed: int = 0
    """Root seed."""
    pairs: tuple[tuple[str, str], ...] = field(default_factory=lambda: (
        ("eps0.5-static", "random"), ("eps0.5-static", "softmax-heuristic"),
        ("softmax-heuristic", "eps0.3-heuristic")))
    """(logging, evaluation) policy names from :func:`default_policies`."""


def default_policies() -> dict[str, Any]:
    """The named policies the experiment can use (fresh agents)."""
    from covercast.agents import ActivityHeuristic, RandomAgent, StaticScheduler
    from covercast.ope.data import EpsilonGreedyAgent, SoftmaxAgent

    return {
        "random": RandomAgent(name="random"),
        "eps0.5-static": EpsilonGreedyAgent(StaticScheduler(), 0.5, name="eps0.5-static"),
        "eps0.3-heuristic": EpsilonGreedyAgent(ActivityHeuristic(), 0.3,
                                               name="eps0.3-heuristic"),
        "softmax-heuristic": SoftmaxAgent(ActivityHeuristic(), 2.0, name="softmax-heuristic"),
    }


def _truth(name: str, cfg: OPEExperimentConfig, env: Any, seed: np.random.SeedSequence
           ) -> dict[str, float]:
    from covercast.experiments.evaluate import evaluate

    agent = default_policies()[name]
    df = evaluate(agent, env, cfg.truth_episodes, seed)
    ret = df["return"].to_numpy(np.float64)
    return {"return": float(ret.mean()), "return_se": float(ret.std(ddof=1) / np.sqrt(ret.size)),
            "per_decision": float(ret.sum() / df["length"].sum())}


def run_ope_experiment(out: str | os.PathLike, config: OPEExperimentConfig | None = None,
                       progress: bool = True) -> Path:
    """Run the experiment, write its files to ``out``; return the report's path."""
    from tqdm.auto import tqdm

    from covercast.envs import make
    from covercast.ope.data import collect, evaluation_probabilities
    from covercast.ope.estimators import estimate_per_decision, estimate_sequential, fit_fqe

    cfg = config or OPEExperimentConfig()
    names = default_policies()
    for lp, ep in cfg.pairs:
        for nm in (lp, ep):
            if nm not in names:
                raise ValueError(f"Unknown policy {nm!r}; choose from {sorted(names)}.")
    if not cfg.sizes or any(int(s) < 1 for s in cfg.sizes) or cfg.seeds < 1:
        raise ValueError(f"`sizes` must be positive and `seeds` >= 1, got {cfg.sizes}, "
                         f"{cfg.seeds}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(asdict(cfg), indent=2))
    env = make("covercast/PushSchedule-v0", horizon_days=cfg.horizon_days)
    steps = int(env.spec.max_episode_steps)
    root = np.random.SeedSequence(cfg.seed)
    truth_ss, data_ss = root.spawn(2)
    eval_names = sorted({e for _, e in cfg.pairs})
    truths = {nm: _truth(nm, cfg, env, ss)
              for nm, ss in zip(eval_names, truth_ss.spawn(len(eval_names)), strict=False)}
    rows: list[dict[str, Any]] = []
    jobs = [(lp, ep, size, s) for lp, ep in cfg.pairs for size in cfg.sizes
            for s in range(cfg.seeds)]
    seeds = data_ss.spawn(len(jobs))
    for (lp, ep, size, s), ss in tqdm(list(zip(jobs, seeds, strict=False)), desc="ope experiment",
                                      disable=not progress):
        episodes = max(1, -(-int(size) // steps))
        data = collect(env, default_policies()[lp], episodes, ss)
        arr = data.arrays()
        pi = evaluation_probabilities(default_policies()[ep], data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = fit_fqe(arr["obs"], arr["reward"], arr["action"], pi, arr["episode"],
                            iterations=cfg.fqe_iterations)
            q = model.predict_q()
            seq = estimate_sequential(arr["reward"], arr["action"], arr["pscore"], pi,
                                      arr["episode"], q, fqe_model=model,
                                      n_bootstrap=cfg.n_bootstrap, rng=s)
            # per-decision: a one-step reward model (FQE with gamma = 0), episodes as units
            q1 = fit_fqe(arr["obs"], arr["reward"], arr["action"], pi, arr["episode"],
                         gamma=0.0, iterations=1).predict_q()
            per = estimate_per_decision(arr["reward"], arr["action"], arr["pscore"], pi, q1,
                                        episode=arr["episode"], n_bootstrap=cfg.n_bootstrap,
                                        rng=s)
        t = truths[ep]
        for kind, res, target in (("sequential", seq, t["return"]),
                                  ("per_decision", per, t["per_decision"])):
            for name, r in res.items():
                rows.append({"logging": lp, "evaluation": ep, "size": int(size), "seed": s,
                             "decisions": len(data), "kind": kind, "estimator": name,
                             "estimate": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high,
                             "ess": r.ess, "extreme_weights": r.extreme_weights,
                             "truth": target, "truth_se": t["return_se"] if kind ==
                             "sequential" else np.nan,
                             "rel_error": abs(r.estimate - target) / max(abs(target), 1e-12),
                             "covered": r.covers(target)})
    results = pd.DataFrame(rows)
    summary = (results.groupby(["logging", "evaluation", "kind", "estimator", "size"])
               .agg(rel_error=("rel_error", "mean"), coverage=("covered", "mean"),
                    ess=("ess", "mean"), truth=("truth", "first"), runs=("seed", "size"))
               .reset_index())
    atomic_write_csv(results, out / "results.csv")
    atomic_write_csv(summary, out / "summary.csv")
    _figure(summary, out / "error_vs_size.png")
    report = out / "report.md"
    atomic_write_text(report, _report(cfg, truths, summary))
    env.close()
    return report


def _figure(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = summary[["logging", "evaluation"]].drop_duplicates().to_numpy().tolist()
    kinds = ["per_decision", "sequential"]
    fig, axes = plt.subplots(len(pairs), 2, figsize=(10, 3.2 * len(pairs)), squeeze=False)
    for i, (lp, ep) in enumerate(pairs):
        for j, kind in enumerate(kinds):
            ax = axes[i][j]
            sub = summary[(summary["logging"] == lp) & (summary["evaluation"] == ep)
                          & (summary["kind"] == kind)]
            for name, g in sub.groupby("estimator"):
                ax.plot(g["size"], g["rel_error"], marker="o", label=name)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("logged decisions")
            ax.set_ylabel("mean relative error")
            ax.set_title(f"{kind}: {ep} from {lp}", fontsize=9)
            ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def _report(cfg: OPEExperimentConfig, truths: dict[str, dict[str, float]],
            summary: pd.DataFrame) -> str:
    lines = ["# Off-policy evaluation against the simulator's truth", "",
             f"PushSchedule-v0, {cfg.horizon_days:g}-day episodes, sizes {list(cfg.sizes)} "
             f"decisions, {cfg.seeds} dataset(s) per size, truth from {cfg.truth_episodes} "
             "on-policy episodes.", "", "## Truth", "",
             "| evaluation policy | return / episode (se) | reward / decision |", "|---|---|---|"]
    for nm, t in truths.items():
        lines.append(f"| {nm} | {t['return']:.4f} ({t['return_se']:.4f}) | "
                     f"{t['per_decision']:.5f} |")
    lines += ["", "## Mean relative error and 95 % CI coverage", "",
              "| logging | evaluation | kind | estimator | size | rel. error | coverage | "
              "mean ESS |", "|---|---|---|---|---|---|---|---|"]
    for r in summary.itertuples():
        lines.append(f"| {r.logging} | {r.evaluation} | {r.kind} | {r.estimator} | {r.size:,} "
                     f"| {r.rel_error:.3f} | {r.coverage:.2f} | {r.ess:,.1f} |")
    lines += ["", "![error vs size](error_vs_size.png)", "",
              "FQE's interval is conditional on the fitted model (it ignores the regression's "
              "error), and DM's likewise; their coverage measures that omission."]
    return "\n".join(lines) + "\n"


def parse_sizes(values: Sequence[str]) -> tuple[int, ...]:
    """``["1k", "10000", "1M"]`` -> ``(1000, 10000, 1000000)``."""
    out = []
    for v in values:
        s = str(v).strip().lower()
        mult = {"k": 1_000, "m": 1_000_000}.get(s[-1:], 1)
        try:
            out.append(int(float(s[:-1] if mult > 1 else s) * mult))
        except ValueError as e:
            raise ValueError(f"Bad size {v!r}; use integers like 1000, 10k or 1M.") from e
    return tuple(out)
