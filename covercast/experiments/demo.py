"""``covercast demo``: the population simulator end to end, in one report.

1. simulate the documented default population under two logging policies -- the static
   scheduler of the source paper (everyone at 08:00 and 20:00, one style) and a uniformly
   random push policy -- and summarise opens, dwell, engagement, opt-outs and sessions per
   segment;
2. fit a population back from the random-policy log and set the fitted numbers beside the
   true ones (parameter recovery);
3. calibrate against the real Open Bandit Dataset sample (held-out last day);
4. write ``report.md`` with tables and PNG figures made from the saved results.

Results are saved as CSV/JSON beside ``config.json`` first; figures are drawn from the saved
files, never from live objects.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from covercast.simulators.params import PopulationParams, atomic_write_text, default_params

HOURS_STATIC = (8, 20)


def _wilson(k: np.ndarray, n: np.ndarray, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    """95 % Wilson score interval for k successes out of n."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        den = 1 + z**2 / n
        mid = (p + z**2 / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    return mid - half, mid + half


def summarise_log(log: pd.DataFrame, days: float) -> pd.DataFrame:
    """Per-segment summary of a simulated log: users, pushes, opens, CTR with CI, dwell..."""
    rows = []
    groups = [("all", log)] + list(log.groupby("segment", sort=False))
    for seg, g in groups:
        users = g["user_id"].nunique()
        ev = g["event"].value_counts()
        pushes, opens = int(ev.get("push", 0)), int(ev.get("open", 0))
        lo, hi = _wilson(np.array([opens]), np.array([max(pushes, 1)]))
        dwell = g.loc[g["event"] == "open", "dwell_s"]
        surveys = g.loc[g["event"] == "survey", "satisfaction"]
        rows.append({
            "segment": seg, "users": users,
            "sessions_per_user_day": ev.get("session", 0) / users / days,
            "pushes_per_user_day": pushes / users / days,
            "ctr": opens / pushes if pushes else np.nan, "ctr_lo": lo[0], "ctr_hi": hi[0],
            "dwell_min_per_open": dwell.mean() / 60 if len(dwell) else np.nan,
            "likes_per_open": ev.get("like", 0) / opens if opens else np.nan,
            "shares_per_open": ev.get("share", 0) / opens if opens else np.nan,
            "comments_per_open": ev.get("comment", 0) / opens if opens else np.nan,
            "opt_out_rate": ev.get("opt_out", 0) / users,
            "satisfaction": surveys.mean() if len(surveys) else np.nan,
        })
    return pd.DataFrame(rows)


def hourly_table(log: pd.DataFrame) -> pd.DataFrame:
    """Organic sessions, pushes and opens by hour of day (by push hour for opens)."""
    hour = log["timestamp"].dt.hour
    out = pd.DataFrame({"hour": np.arange(24)})
    for seg, g in log[log["event"] == "session"].groupby("segment", sort=False):
        out[f"sessions:{seg}"] = np.bincount(hour[g.index], minlength=24)
    pushes = log[log["event"] == "push"]
    out["pushes"] = np.bincount(hour[pushes.index], minlength=24)
    opened = set(log.loc[log["event"] == "open", "push_id"].dropna().astype(int))
    push_opened = pushes["push_id"].astype(int).isin(opened).to_numpy()
    out["opens_by_push_hour"] = np.bincount(hour[pushes.index][push_opened], minlength=24)
    return out


def recovery_table(truth: PopulationParams, report) -> pd.DataFrame:
    """Fitted vs true parameters with standard errors and z-scores.

    ``report`` is a :class:`covercast.simulators.fit.FitReport`; fitted segments are matched to
    true ones by their activity profiles (Hungarian matching). Open intercepts are compared in
    the fitter's identified convention (:func:`~covercast.simulators.fit.identified_open_intercepts`).
    """
    from scipy.optimize import linear_sum_assignment

    from covercast.simulators.fit import identified_open_intercepts

    fitted = report.params
    true_icpt = identified_open_intercepts(truth)
    ta, fa = truth.activity_matrix(), fitted.activity_matrix()
    cost = np.array([[np.abs(t / t.sum() - f / f.sum()).sum() for f in fa] for t in ta])
    ti, fi = linear_sum_assignment(cost)
    est = report.estimates.set_index("name")
    rows = []

    def add(label: str, name: str, true_value: float) -> None:
        if name not in est.index:
            return
        e, se = float(est.at[name, "estimate"]), float(est.at[name, "se"])
        rows.append({"parameter": label, "true": float(true_value), "fitted": e, "se": se,
                     "z": (e - true_value) / se if se > 0 else np.nan})

    for i, j in zip(ti, fi):
        ts = truth.segments[i]
        add(f"{ts.name}.weight", f"segments[{j}].weight", ts.weight)
        add(f"{ts.name}.sessions_per_week", f"segments[{j}].sessions_per_week",
            float(np.sum(ts.activity)))
        add(f"{ts.name}.open_intercept*", f"segments[{j}].open_intercept", true_icpt[i])
        add(f"{ts.name}.dwell_mu", f"segments[{j}].dwell_mu", ts.dwell_mu)
        add(f"{ts.name}.dwell_sigma", f"segments[{j}].dwell_sigma", ts.dwell_sigma)
    for name in ("open.beta_activity", "open.beta_fatigue", "open.stale_tau_h",
                 "fatigue.half_life_h", "opt_out.base_hazard", "opt_out.fatigue_coef",
                 "dwell.relevance_coef", "engagement.like_intercept",
                 "engagement.share_intercept", "satisfaction.survey_rate"):
        part, field_ = name.split(".")
        add(name, name, getattr(getattr(truth, part), field_))
    return pd.DataFrame(rows)


def _plots(out: Path) -> list[str]:
    """Draw the figures from the saved CSVs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    hourly = pd.read_csv(out / "hourly_random.csv")
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    for c in [c for c in hourly.columns if c.startswith("sessions:")]:
        ax[0].plot(hourly["hour"], hourly[c] / hourly[c].sum(), label=c.split(":", 1)[1])
    for h in HOURS_STATIC:
        ax[0].axvline(h, color="k", ls=":", lw=1)
    ax[0].set(title="Organic sessions by hour of day (dotted: static push hours)",
              xlabel="hour of day (UTC)", ylabel="share of the segment's sessions")
    ax[0].legend(fontsize=8)
    k, n = hourly["opens_by_push_hour"].to_numpy(), hourly["pushes"].to_numpy()
    lo, hi = _wilson(k, np.maximum(n, 1))
    ax[1].plot(hourly["hour"], 100 * k / np.maximum(n, 1), color="C3")
    ax[1].fill_between(hourly["hour"], 100 * lo, 100 * hi, color="C3", alpha=0.2)
    ax[1].set(title="Open rate by push hour (random policy, 95 % CI)", xlabel="hour of day (UTC)",
              ylabel="opens / pushes (%)")
    fig.tight_layout()
    fig.savefig(out / "activity_and_open_rate.png", dpi=110)
    plt.close(fig)
    names.append("activity_and_open_rate.png")

    summ = pd.read_csv(out / "summary.csv")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    segs = [s for s in summ["segment"].unique()]
    x = np.arange(len(segs))
    for i, (pol, g) in enumerate(summ.groupby("policy", sort=False)):
        g = g.set_index("segment").loc[segs]
        ax.bar(x + 0.4 * i, 100 * g["ctr"], width=0.4, label=pol,
               yerr=[100 * (g["ctr"] - g["ctr_lo"]), 100 * (g["ctr_hi"] - g["ctr"])], capsize=3)
    ax.set_xticks(x + 0.2, segs)
    ax.set(ylabel="open rate (%)", title="Open rate by segment and logging policy (95 % CI)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "ctr_by_segment.png", dpi=110)
    plt.close(fig)
    names.append("ctr_by_segment.png")
    return names


def _md_table(df: pd.DataFrame, floatfmt: str = ".3g") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, (float, np.floating)) else str(v)
                 for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_demo(out_dir: str | Path = "runs/demo", *, n_users: int = 20_000, days: int = 14,
             seed: int = 0, fast: bool = False, progress: bool = True) -> Path:
    """Run the population demo and return the path of ``report.md``."""
    from covercast.generators.procedural import default_bank
    from covercast.simulators.calibrate import calibrate_obd
    from covercast.simulators.fit import fit_population_report
    from covercast.simulators.policies import StaticSchedulePolicy, UniformRandomPolicy
    from covercast.simulators.population import simulate_log

    if n_users < 1 or days < 1:
        raise ValueError(f"`users` and `days` must be >= 1, got {n_users} and {days}.")
    if fast:
        n_users, days = min(n_users, 600), min(days, 7)
    fit_users = min(n_users, 600 if fast else 4000)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(seed).generate_state(4)
    params = default_params()
    config = {"n_users": n_users, "days": days, "seed": seed, "fast": fast,
              "fit_users": fit_users, "static_hours": list(HOURS_STATIC),
              "random_push_prob": 2 / 24}
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    params.save(out / "params_true.json")
    t0 = time.perf_counter()

    policies = {
        "static": StaticSchedulePolicy(hours=HOURS_STATIC, style=0),
        "random": UniformRandomPolicy(push_prob=config["random_push_prob"],
                                      n_styles=len(params.styles)),
    }
    summaries, logs = [], {}
    for i, (name, pol) in enumerate(policies.items()):
        log = simulate_log(params, pol, days=days, n_users=n_users, seed=int(seeds[i]),
                           progress=progress)
        logs[name] = log
        s = summarise_log(log, days)
        s.insert(0, "policy", name)
        summaries.append(s)
    summary = pd.concat(summaries, ignore_index=True)
    summary.to_csv(out / ".summary.csv.tmp", index=False)
    (out / ".summary.csv.tmp").replace(out / "summary.csv")
    hourly = hourly_table(logs["random"])
    hourly.to_csv(out / ".hourly.tmp", index=False)
    (out / ".hourly.tmp").replace(out / "hourly_random.csv")
    t_sim = time.perf_counter() - t0

    # Parameter recovery on a smaller log of the random policy (pushes at every hour).
    fit_log = simulate_log(params, policies["random"], days=days, n_users=fit_users,
                           seed=int(seeds[2]), progress=progress)
    fit_report = fit_population_report(fit_log, n_segments=len(params.segments),
                                       bank=default_bank(), seed=seed, progress=progress)
    fit_report.params.save(out / "params_fitted.json")
    rec = recovery_table(params, fit_report)
    rec.to_csv(out / ".recovery.tmp", index=False)
    (out / ".recovery.tmp").replace(out / "recovery.csv")
    t_fit = time.perf_counter() - t0 - t_sim

    cal_dir = out / "calibration"
    try:
        cal = calibrate_obd(cal_dir, seed=seed, progress=progress)
        cal_text = (f"Fitted on the first six days of the real Open Bandit Dataset sample "
                    f"(ZOZOTOWN, random policy, all campaign) and compared with the held-out "
                    f"seventh day: Jensen-Shannon divergence of hourly traffic "
                    f"**{cal['jsd']['sim_vs_real']:.4f}** bits (a flat profile: "
                    f"{cal['jsd']['flat_vs_real']:.4f}; a real training day vs the other "
                    f"training days: {cal['jsd']['train_day_vs_other_train_days']['mean']:.4f}). "
                    f"Full report: "
                    f"[calibration/report.md](calibration/report.md).\n\n"
                    f"![calibration](calibration/calibration.png)")
    except ImportError as e:
        cal_text = f"Skipped: {e}"

    figs = _plots(out)
    t_all = time.perf_counter() - t0
    show = summary[["policy", "segment", "users", "sessions_per_user_day", "pushes_per_user_day",
                    "ctr", "ctr_lo", "ctr_hi", "dwell_min_per_open", "likes_per_open",
                    "opt_out_rate", "satisfaction"]]
    report = f"""# covercast demo: the default population

Simulated **{n_users:,} users for {days} days** (hourly slots) of the documented default
population (`params_true.json`) under two logging policies: the static scheduler of the source
paper (everyone at {HOURS_STATIC[0]:02d}:00 and {HOURS_STATIC[1]:02d}:00 UTC with style
`{params.styles[0]}`) and a uniformly random policy (push with probability
{config['random_push_prob']:.3f} per hour, random style). Seed {seed}. Wall time: simulation
{t_sim:.1f} s, fitting {t_fit:.1f} s, everything {t_all:.1f} s.

## Outcomes by segment

CTR = opens / delivered pushes with a 95 % Wilson interval; dwell in minutes per open;
opt-out rate = share of users who turned notifications off during the run.

{_md_table(show)}

Published push open rates for comparison: about 3.5 % Android / 1.8 % iOS (Leanplum 2016),
6.1 % / 2.0 % direct opens (Braze 2016). The source paper's static scheduler has a CTR of 5.3 %
(its Table 2); ours is a simulated number from the default population, not a reproduction.

![activity](activity_and_open_rate.png)

![ctr](ctr_by_segment.png)

## Parameter recovery

A population fitted (`covercast fit`) to a {fit_users:,}-user log of the random policy, beside
the parameters that generated it, with the fit's standard errors and z = (fitted - true) / SE
(`recovery.csv`, `params_fitted.json`). Starred intercepts are compared in the fitter's
identified convention (style and topic weights centred, their means folded in).

{_md_table(rec)}

## Calibration against real data

{cal_text}

Files: {', '.join(['config.json', 'summary.csv', 'hourly_random.csv', 'recovery.csv'] + figs)}.
"""
    atomic_write_text(out / "report.md", report)
    return out / "report.md"
