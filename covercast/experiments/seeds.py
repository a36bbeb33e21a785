"""``covercast experiment seeds``: the seed papers' experiments reproduced on simulated users.

Writes ``seed_reproduction.md`` (default ``reports/``), with its CSVs and figures in
``seed_reproduction/`` beside it. The seeds' claimed numbers are constants below, each with its
section or table; they are shown beside ours, never used as results.

1. **Seed 000, Table 2** ("User engagement and scheduling effectiveness"): the static scheduler
   against the adaptive (GRU) scheduler on average CTR, engagement duration and satisfaction.
   Ours: :class:`~covercast.agents.StaticScheduler` (08:00 and 20:00 UTC, one style) against a
   GRU-PPO policy, on the same simulated users of the default population (paired, 14-day
   episodes). CTR is pooled (opens / pushes) with a 95 % Wilson interval and a paired t-test of
   the per-user CTR; *engagement duration* -- which the seed does not define -- is our dwell
   minutes per opened push (pooled; paired t-test of the per-user dwell minutes);
   *satisfaction* is the mean 1-5 survey score (Welch t-test: the surveyed users differ).
   With ``from_run`` (a ``covercast experiment scheduling`` folder), its default-population
   episodes are used (all seeds; pairs are (seed, user)) instead of training and evaluating here.

2. **Seed 001, the A/B design** (section III.B): 40 users randomly split into an experimental
   and a control group; a scale test before, a second one two weeks after the intervention, on
   media comments, retweets, interactions and likes; homogeneity by independent-samples t-tests
   before, within-group comparisons before/after. Ours, on behaviour instead of a Likert scale:
   ``ab_users`` users per group (independent draws of the default population, so the split is
   random), one 28-day episode each; **pre** period = days 0-14, both groups under the static
   scheduler; **post** period = days 14-28, the experimental group switched to GRU-PPO (fresh
   recurrent state at the switch), the control group kept on static. Per user and period:
   comments, shares (the seed's "retweets"), likes, and interactions = likes + shares + comments
   (the seed does not define its "interactions" dimension; this is our definition). Users who
   opt out count zero for the rest of the run (intention to treat). Tests: Welch between groups
   before (homogeneity) and after, paired t-tests before/after within each group, and Welch on
   the per-user change (difference in differences). The same tests on the first 20 users of each
   group show what the seed's sample size gives.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from covercast._io import atomic_write_csv, atomic_write_text
from covercast.agents.base import Agent, SeedLike, as_seed_sequence

__all__ = ["SEED000_TABLE2", "SEED000_CTR_LIFT", "SEED001_P_VALUES", "SEED001_USERS",
           "AB_METRICS", "SwitchAgent", "table2", "ab_test", "run_seeds"]

# Seed 000 (AIGC image generation + GRU content scheduling), section 5.2, Table 2 "User
# engagement and scheduling effectiveness": (static scheduler, adaptive scheduler).
SEED000_TABLE2: dict[str, tuple[float, float]] = {
    "ctr_pct": (5.3, 6.3),            # "Average CTR (%)"
    "engagement_min": (2.8, 4.2),     # "Engagement Duration (min)"
    "satisfaction": (3.7, 4.5),       # "Satisfaction Score (/5)"
}
# Seed 000, abstract and section 5.2: "the average click-through rate increased by 18.7%".
SEED000_CTR_LIFT = 0.187
# Seed 001 (VAE-IAT, digital media communication), section III.B.3: p-values of the
# before/after comparisons within each group, for media comments, retweets, interactions and
# likes.
SEED001_P_VALUES: dict[str, dict[str, float]] = {
    "experimental": {"comments": 0.002, "shares": 0.007, "interactions": 0.003, "likes": 0.005},
    "control": {"comments": 0.227, "shares": 0.108, "interactions": 0.061, "likes": 0.079},
}
# Seed 001, section III.B.1 (2): "40 digital media users are selected ... divided into two
# groups" (group sizes not stated).
SEED001_USERS = 40
#: Per-user engagement counts of the A/B comparison.
AB_METRICS: tuple[str, ...] = ("comments", "shares", "interactions", "likes")
_HOURS_STATIC = (8, 20)


# ================================================================================== agent
class SwitchAgent(Agent):
    """``before`` for the first ``switch_step`` steps of each episode, then ``after``.

    The switch starts ``after`` afresh (``episode_start`` True, no state), as when a platform
    turns a new policy on for users it already has. ``state`` is ``(step (N,), inner state)``.
    """

    default_name = "switch"

    def __init__(self, before: Agent, after: Agent, switch_step: int, *, seed: SeedLike = None,
                 name: str | None = None) -> None:
        for label, a in (("before", before), ("after", after)):
            if not isinstance(a, Agent):
                raise ValueError(f"`{label}` must be a covercast Agent, got "
                                 f"{type(a).__name__}.")
        if before.layout != after.layout:
            raise ValueError(f"`before` and `after` must share the action layout, got "
                             f"{before.layout} and {after.layout}.")
        if isinstance(switch_step, bool) or not isinstance(switch_step, int) or switch_step < 0:
            raise ValueError(f"`switch_step` must be an integer >= 0, got {switch_step!r}.")
        super().__init__(before.mode, before.n_styles, seed=seed, name=name)
        self.before, self.after, self.switch_step = before, after, switch_step

    def attach(self, env: Any) -> None:
        self.before.attach(env)
        self.after.attach(env)

    def reset(self, seed: SeedLike = None) -> None:
        root = as_seed_sequence(seed)
        super().reset(root)
        a, b = root.spawn(2)
        self.before.reset(a)
        self.after.reset(b)

    def update(self, obs: Any, action: Any, reward: Any, next_obs: Any, terminated: Any,
               info: Any) -> None:
        self.before.update(obs, action, reward, next_obs, terminated, info)

    def _decide(self, x: np.ndarray, state: Any, episode_start: np.ndarray,
                deterministic: bool) -> tuple[np.ndarray, np.ndarray, Any]:
        n = x.shape[0]
        step, inner = (np.zeros(n, dtype=np.int64), None) if state is None else state
        step = np.where(episode_start, 0, step)
        if np.any(step != step[0]):
            raise ValueError("SwitchAgent needs the rows of a batch to be at the same step.")
        if step[0] < self.switch_step:
            a, inner = self.before.predict(x, inner, episode_start, deterministic)
        else:
            first = step[0] == self.switch_step
            a, inner = self.after.predict(x, None if first else inner,
                                          np.full(n, True) if first else episode_start,
                                          deterministic)
        push, style = self.layout.decode(np.asarray(a).reshape(n))
        return push, style, (step + 1, inner)

    def _distribution(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, np.ndarray]:
        step, inner = (0, None) if state is None else (int(np.asarray(state[0])[0]), state[1])
        agent = self.before if step < self.switch_step else self.after
        if agent is self.after and step == self.switch_step:
            inner = None
        return self.layout.split(agent.action_probabilities(x, inner))


# ================================================================================== table 2
def _static(seed: int) -> Agent:
    from covercast.agents import StaticScheduler

    return StaticScheduler(hours=_HOURS_STATIC, style=0, seed=seed, name="static")


def _gru_agent(from_run: Path | None, out: Path, *, steps: int, seed: int, fast: bool,
               progress: bool) -> tuple[Agent, dict[str, Any]]:
    """A GRU-PPO agent: the policy the scheduling run evaluated from its first
    default-population checkpoint (its best validated one when the run validated, else the
    final one), or one trained here with :func:`covercast.experiments.demo.train_gru_ppo`."""
    if from_run is not None:
        from covercast.agents.gru_ppo import GRUPPOAgent

        ckpt = sorted((from_run / "cells").glob("seed*_default/gru_ppo/checkpoint"))
        if not ckpt:
            raise FileNotFoundError(f"No GRU-PPO checkpoint under {from_run / 'cells'}; give "
                                    "a `covercast experiment scheduling` output folder.")
        state = json.loads((ckpt[0] / "state.json").read_text())
        best = state.get("best")
        which = "final" if best is None else "best"
        steps_used = int(state["global_step"]) if best is None else int(best["global_step"])
        return (GRUPPOAgent.load(ckpt[0], seed=seed, name="gru-ppo", which=which),
                {"source": str(ckpt[0]), "policy": which, "steps": steps_used})
    from covercast.experiments.demo import train_gru_ppo

    ckpt = out / "gru_ppo" / "checkpoint"
    if (ckpt / "state.json").exists() and (ckpt / "config.json").exists():
        cfg = json.loads((ckpt / "config.json").read_text())
        state = json.loads((ckpt / "state.json").read_text())
        if cfg.get("total_steps") == steps and cfg.get("seed") == seed \
                and int(state["global_step"]) >= steps:
            from covercast.agents.gru_ppo import GRUPPOAgent

            return (GRUPPOAgent.load(ckpt, seed=seed, name="gru-ppo"),
                    {"source": f"{ckpt} (reused: same steps and seed)",
                     "steps": int(state["global_step"])})
    agent, facts = train_gru_ppo(out, steps=steps, seed=seed, fast=fast, progress=progress)
    agent.name = "gru-ppo"
    return agent, {"source": str(out / "gru_ppo" / "checkpoint"), **facts}


def table2(episodes: Any) -> Any:
    """Seed 000's Table 2 beside ours, from per-episode results of ``static`` and ``gru-ppo``
    (column ``policy``; ``pair`` identifies the same user under both)."""
    import pandas as pd

    from covercast.experiments.demo import _wilson
    from covercast.experiments.stats import paired_test, welch_test

    s = episodes[episodes["policy"] == "static"].set_index("pair").sort_index()
    g = episodes[episodes["policy"] == "gru-ppo"].set_index("pair").sort_index()
    common = s.index.intersection(g.index)
    s, g = s.loc[common], g.loc[common]
    rows = []

    def ctr(d: pd.DataFrame) -> tuple[float, float, float]:
        k, n = d["opens"].sum(), d["pushes"].sum()
        lo, hi = _wilson(np.array([k]), np.array([max(n, 1)]))
        return 100 * k / max(n, 1), 100 * lo[0], 100 * hi[0]

    (cs, cs_lo, cs_hi), (cg, cg_lo, cg_hi) = ctr(s), ctr(g)
    p = paired_test(g["ctr"].to_numpy(float), s["ctr"].to_numpy(float))["p"]
    rows.append({"metric": "Average CTR (%)", "seed static": SEED000_TABLE2["ctr_pct"][0],
                 "seed adaptive": SEED000_TABLE2["ctr_pct"][1],
                 "seed change": f"{100 * SEED000_CTR_LIFT:+.1f} % (claimed)",
                 "ours static": f"{cs:.2f} [{cs_lo:.2f}, {cs_hi:.2f}]",
                 "ours GRU-PPO": f"{cg:.2f} [{cg_lo:.2f}, {cg_hi:.2f}]",
                 "our change": f"{100 * (cg / cs - 1):+.1f} %", "p": p,
                 "test": "paired t (per-user CTR)"})

    def per_open(d: pd.DataFrame) -> float:
        return float(d["dwell_min"].sum() / max(d["opens"].sum(), 1))

    ds, dg = per_open(s), per_open(g)
    p = paired_test(g["dwell_min"].to_numpy(float), s["dwell_min"].to_numpy(float))["p"]
    e0, e1 = SEED000_TABLE2["engagement_min"]
    rows.append({"metric": "Engagement duration (min): ours = dwell min per opened push",
                 "seed static": e0, "seed adaptive": e1,
                 "seed change": f"{100 * (e1 / e0 - 1):+.1f} %",
                 "ours static": f"{ds:.2f}", "ours GRU-PPO": f"{dg:.2f}",
                 "our change": f"{100 * (dg / ds - 1):+.1f} %" if ds else "n/a", "p": p,
                 "test": "paired t (per-user dwell min)"})
    ss, sg = s["satisfaction"].dropna(), g["satisfaction"].dropna()
    if len(ss) >= 2 and len(sg) >= 2:
        w = welch_test(sg.to_numpy(), ss.to_numpy())
        ours_s = f"{ss.mean():.2f} (n={len(ss)})"
        ours_g = f"{sg.mean():.2f} (n={len(sg)})"
        change, p = f"{100 * (sg.mean() / ss.mean() - 1):+.1f} %", w["p"]
    else:
        ours_s = ours_g = f"n/a (surveyed users: {len(ss)}, {len(sg)})"
        change, p = "n/a", math.nan
    s0, s1 = SEED000_TABLE2["satisfaction"]
    rows.append({"metric": "Satisfaction score (/5)", "seed static": s0, "seed adaptive": s1,
                 "seed change": f"{100 * (s1 / s0 - 1):+.1f} %", "ours static": ours_s,
                 "ours GRU-PPO": ours_g, "our change": change, "p": p,
                 "test": "Welch t (surveyed users)"})
    extra = {"users": int(len(common)),
             "pushes_per_day": (float(s["pushes_per_day"].mean()),
                                float(g["pushes_per_day"].mean())),
             "opens_per_user": (float(s["opens"].mean()), float(g["opens"].mean())),
             "dwell_min_per_user": (float(s["dwell_min"].mean()), float(g["dwell_min"].mean())),
             "dwell_min_per_open": (ds, dg),
             "opt_out_rate": (float(s["opted_out"].mean()), float(g["opted_out"].mean()))}
    return pd.DataFrame(rows), extra


def _table2_episodes(from_run: Path | None, agent: Agent, users: int, horizon_days: float,
                     seed: int, progress: bool) -> Any:
    import pandas as pd

    from covercast.experiments.evaluate import evaluate_agents

    if from_run is not None:
        ep = pd.read_csv(from_run / "episodes.csv")
        ep = ep[(ep["population"] == "default") & ep["policy"].isin(["static", "gru-ppo"])]
        if ep.empty or set(ep["policy"]) != {"static", "gru-ppo"}:
            raise FileNotFoundError(f"{from_run / 'episodes.csv'} has no default-population "
                                    "rows of static and gru-ppo.")
        ep = ep.copy()
        ep["pair"] = ep["seed_index"].astype(np.int64) * 1_000_000 + ep["episode"]
        return ep
    df = evaluate_agents({"static": _static(seed), "gru-ppo": agent},
                         "covercast/PushSchedule-v0", users, seed,
                         env_kwargs={"horizon_days": horizon_days}, progress=progress)
    df = df.rename(columns={"agent": "policy"})
    df["pair"] = df["episode"]
    return df


# ================================================================================== A/B
def _ab_group(agent: Agent, users: int, seed: Any, period_steps: int, progress: bool,
              history_days: float = 0.0, deterministic: bool = False) -> Any:
    """Per-user, per-period engagement counts of one group (2 periods of ``period_steps``)."""
    import pandas as pd

    from covercast.experiments.evaluate import evaluate

    n_steps: dict[int, int] = {}
    counts = np.zeros((users, 2, 5))   # likes, shares, comments, opens, pushes

    def record(label: str, episode: int, obs: Any, action: Any, reward: float,
               info: Any) -> None:
        k = n_steps.get(episode, 0)
        n_steps[episode] = k + 1
        period = 0 if k < period_steps else 1
        counts[episode, period] += [info.get("likes", 0), info.get("shares", 0),
                                    info.get("comments", 0), info["opened"], info["pushed"]]

    days = 2 * period_steps / 24.0
    kw: dict[str, Any] = {"horizon_days": days}
    if history_days:
        kw["history_days"] = history_days
    ep = evaluate(agent, "covercast/PushSchedule-v0", users, seed, env_kwargs=kw,
                  progress=progress, on_step=record, deterministic=deterministic)
    rows = []
    for u in range(users):
        for period, name in enumerate(("pre", "post")):
            likes, shares, comments, opens, pushes = counts[u, period]
            rows.append({"user": u, "period": name, "likes": likes, "shares": shares,
                         "comments": comments, "interactions": likes + shares + comments,
                         "opens": opens, "pushes": pushes,
                         "opted_out": bool(ep.loc[u, "opted_out"])})
    return pd.DataFrame(rows)


def ab_test(data: Any, *, first: int | None = None) -> Any:
    """The seed-001 tests on per-user, per-period counts (columns ``group``, ``user``,
    ``period``, :data:`AB_METRICS`); ``first`` keeps the first users of each group."""
    import pandas as pd

    from covercast.experiments.stats import paired_test, welch_test

    if first is not None:
        data = data[data["user"] < first]
    rows = []
    for m in AB_METRICS + ("opens",):
        wide = {}
        for grp in ("experimental", "control"):
            d = data[data["group"] == grp].pivot(index="user", columns="period", values=m)
            wide[grp] = d
        row: dict[str, Any] = {"metric": m, "n per group": int(len(wide["control"]))}
        for grp in ("experimental", "control"):
            d = wide[grp]
            row[f"{grp} pre"] = float(d["pre"].mean())
            row[f"{grp} post"] = float(d["post"].mean())
            row[f"p {grp} pre/post (paired)"] = paired_test(d["post"].to_numpy(),
                                                            d["pre"].to_numpy())["p"]
        e, c = wide["experimental"], wide["control"]
        row["p between, pre (Welch)"] = welch_test(e["pre"].to_numpy(), c["pre"].to_numpy())["p"]
        row["p between, post (Welch)"] = welch_test(e["post"].to_numpy(),
                                                    c["post"].to_numpy())["p"]
        did = welch_test((e["post"] - e["pre"]).to_numpy(), (c["post"] - c["pre"]).to_numpy())
        row["diff-in-diff"] = did["diff"]
        row["p diff-in-diff (Welch)"] = did["p"]
        rows.append(row)
    return pd.DataFrame(rows)


# ================================================================================== report
def _figures(d: Path, ab: Any) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, axes = plt.subplots(1, len(AB_METRICS), figsize=(13, 3.4))
    for ax, m in zip(axes, AB_METRICS, strict=True):
        for k, grp in enumerate(("control", "experimental")):
            g = ab[(ab["group"] == grp)]
            means = [g.loc[g["period"] == p, m].mean() for p in ("pre", "post")]
            sems = [g.loc[g["period"] == p, m].std(ddof=1) / math.sqrt(max((g["period"] == p)
                                                                          .sum(), 1))
                    for p in ("pre", "post")]
            ax.errorbar([0, 1], means, yerr=[1.96 * s for s in sems], marker="o", capsize=3,
                        label=grp, color=f"C{k}")
        ax.set_xticks([0, 1], ["pre", "post"])
        ax.set(title=m, ylabel="per user per 14 days")
    axes[0].legend(fontsize=8)
    fig.suptitle("Seed 001's A/B design on simulated users (95 % CI)", fontsize=10)
    fig.tight_layout()
    fig.savefig(d / "ab_pre_post.png", dpi=110)
    plt.close(fig)
    names.append("ab_pre_post.png")
    return names


def _md(df: Any) -> str:
    from covercast.experiments.demo import _md_table

    return _md_table(df)


def _reasons(extra: dict[str, Any], ab: Any, ab_users: int, gru: dict[str, Any]) -> str:
    ps, pg = extra["pushes_per_day"]
    os_, og = extra["opens_per_user"]
    oo_s, oo_g = extra["opt_out_rate"]
    ds, dg = extra["dwell_min_per_open"]
    opens = max(float(ab["opens"].sum()), 1.0)
    rate = {m: 100 * float(ab[m].sum()) / opens for m in ("likes", "shares", "comments")}
    return f"""Why our numbers differ from the seeds' (each difference, with its reason):

- **CTR level (5.3 % static).** Our default population is calibrated so that the static
  scheduler's push CTR is about 5 % (the segments' open intercepts were chosen for it, near the
  published 3.5-6 % open rates), so the static level agreeing with the seed's 5.3 % is by
  construction, not a finding.
- **CTR lift.** Ours comes only from *when* and *with which cover style* GRU-PPO pushes (and
  how often: {ps:.2f} pushes/day for static, {pg:.2f} for GRU-PPO; opens per user {os_:.2f}
  vs {og:.2f}; opt-out rate {100 * oo_s:.1f} % vs {100 * oo_g:.1f} %), learned in
  {gru.get('steps', 0):,} env-steps. The seed's lift mixes its scheduler with new generated
  images and a real platform whose users, pushes and horizon are not described; it reports no
  interval, test or sample size for Table 2. A policy can raise CTR by pushing less: read the
  lift with pushes, opens and opt-outs.
- **Engagement duration.** The seed does not say what its minutes measure (per session, per
  user, per day). Ours is dwell minutes per opened push, from the simulator's log-normal dwell
  model, in which the relevance of the cover to the user's taste raises it: a scheduler moves
  it only through the cover style it picks (here {ds:.2f} -> {dg:.2f} min per open).
- **Satisfaction.** Ours is the simulator's 1-5 survey (an ordered logit of relevance, dwell and
  fatigue, asked after about 5 % of opens), so few users are surveyed and the interval is wide;
  the seed's is an unspecified survey of its participants.
- **Seed 001's A/B.** The seed measures *perceptions* on a Likert scale (10 questions per
  dimension, 1-5) of 40 people, and its treatment is a content-production path built on its
  VAE-IAT generator; ours counts *behaviour* (comments, shares, likes) of {ab_users} simulated
  users per group, and the treatment is the GRU-PPO scheduler. Engagement after an open is rare
  in our model (in this run: likes after {rate['likes']:.1f} % of opens, shares
  {rate['shares']:.1f} %, comments {rate['comments']:.1f} %), so per-user counts are small and
  a group of 20 has little power: see the seed-sized rows. The seed calls its
  groups homogeneous because "P<0.05"; homogeneity needs the opposite (no detected difference,
  p > 0.05), which is what we test. Its "interactions" dimension is not defined; ours is likes
  + shares + comments. Its control group's before/after p-values (0.06-0.23) are what a
  stable control gives; ours can move a little because fatigue and opt-outs (counted as zero
  afterwards) evolve between the periods under the static scheduler.
- **Randomness and sample sizes.** Ours are simulated, paired where possible, with intervals
  and tests reported; the seeds report point values (000) or p-values without effect sizes
  (001), so neither can be checked against its own uncertainty.
"""


def run_seeds(out_dir: str | os.PathLike = "reports", *, from_run: str | os.PathLike | None = None,
              users: int = 300, horizon_days: float = 14.0, ab_users: int = 200,
              ppo_steps: int = 1_500_000, seed: int = 0, fast: bool = False,
              progress: bool = True) -> Path:
    """Write ``seed_reproduction.md`` in ``out_dir`` (CSVs and figures in
    ``out_dir/seed_reproduction/``) and return its path.

    ``from_run``: a ``covercast experiment scheduling`` folder whose GRU-PPO checkpoint and
    default-population results are reused; otherwise GRU-PPO is trained here for ``ppo_steps``
    env-steps and evaluated on ``users`` paired users of ``horizon_days`` days. ``ab_users``
    users per group in the A/B (two 14-day periods). ``fast`` shrinks everything.
    """
    import pandas as pd

    for name, v in (("users", users), ("ab_users", ab_users), ("ppo_steps", ppo_steps)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
            raise ValueError(f"`{name}` must be an integer >= 2, got {v!r}.")
    if not (isinstance(horizon_days, (int, float)) and horizon_days > 0):
        raise ValueError(f"`horizon_days` must be > 0, got {horizon_days!r}.")
    run = None if from_run is None else Path(from_run)
    if run is not None and not (run / "episodes.csv").exists():
        raise FileNotFoundError(f"{run} has no episodes.csv; give a finished `covercast "
                                "experiment scheduling` folder.")
    # the A/B follows the run: its users (existing users with its `history_days` of seen
    # sessions) and how its learners act (greedily with its `deterministic_learners`); new
    # users and sampled actions when GRU-PPO is trained here (as the demo does)
    history_days, greedy = 0.0, False
    if run is not None and (run / "config.json").exists():
        run_config = json.loads((run / "config.json").read_text())
        history_days = float(run_config.get("history_days", 0.0))
        greedy = bool(run_config.get("deterministic_learners", False))
    period_days = 14
    if fast:
        users, horizon_days, ab_users = min(users, 8), min(horizon_days, 2.0), min(ab_users, 6)
        ppo_steps, period_days = min(ppo_steps, 2_000), 2
    out = Path(out_dir)
    d = out / "seed_reproduction"
    d.mkdir(parents=True, exist_ok=True)
    config = {"from_run": None if run is None else str(run), "users": users,
              "horizon_days": horizon_days, "ab_users": ab_users, "ppo_steps": ppo_steps,
              "period_days": period_days, "history_days": history_days,
              "deterministic": greedy, "seed": seed, "fast": fast}
    atomic_write_text(d / "config.json", json.dumps(config, indent=2) + "\n")
    t0 = time.perf_counter()
    ss = np.random.SeedSequence(seed)
    s_eval, s_ctrl, s_exp = (int(x) for x in ss.generate_state(3))
    agent, gru = _gru_agent(run, d, steps=ppo_steps, seed=seed, fast=fast, progress=progress)

    ep = _table2_episodes(run, agent, users, horizon_days, s_eval, progress)
    atomic_write_csv(ep, d / "table2_episodes.csv")
    t2, extra = table2(ep)
    atomic_write_csv(t2, d / "table2.csv")

    steps = period_days * 24
    frames = []
    for grp, a, s in (("control", _static(s_ctrl), s_ctrl),
                      ("experimental", SwitchAgent(_static(s_exp), agent, steps,
                                                   name="static->gru-ppo"), s_exp)):
        g = _ab_group(a, ab_users, s, steps, progress, history_days, greedy)
        g.insert(0, "group", grp)
        frames.append(g)
    ab = pd.concat(frames, ignore_index=True)
    atomic_write_csv(ab, d / "ab_users.csv")
    ab_full = ab_test(ab)
    ab_small = ab_test(ab, first=min(SEED001_USERS // 2, ab_users))
    atomic_write_csv(ab_full, d / "ab_tests.csv")
    atomic_write_csv(ab_small, d / "ab_tests_seed_sized.csv")
    figs = _figures(d, ab)

    abi = ab_full.set_index("metric")
    seed_p = pd.DataFrame([
        {"metric": m,
         "seed experimental pre/post p": SEED001_P_VALUES["experimental"][m],
         "ours experimental pre/post p": float(abi.at[m, "p experimental pre/post (paired)"]),
         "seed control pre/post p": SEED001_P_VALUES["control"][m],
         "ours control pre/post p": float(abi.at[m, "p control pre/post (paired)"])}
        for m in AB_METRICS])
    atomic_write_csv(seed_p, d / "ab_vs_seed.csv")
    if run is not None:
        src = (f"the GRU-PPO checkpoint `{gru['source']}` ({gru['steps']:,} env-steps) and the "
               f"default-population episodes of `{run}`")
    elif "seconds" in gru:
        src = (f"GRU-PPO trained here for {gru['steps']:,} env-steps ({gru['seconds']:.0f} s), "
               f"evaluated on {users} paired users x {horizon_days:g} days")
    else:
        src = (f"the GRU-PPO checkpoint `{gru['source']}` ({gru['steps']:,} env-steps), "
               f"evaluated on {users} paired users x {horizon_days:g} days")
    report = f"""# Seed reproductions

Seed {seed}{' (fast mode: tiny sizes, numbers not meaningful)' if fast else ''}; wall time
{time.perf_counter() - t0:.0f} s. Configuration and every table: `seed_reproduction/`. Claimed
numbers are the seeds' (quoted with their section/table); ours come from the covercast
simulator's default population. Design: the module docstring of
`covercast.experiments.seeds`.

## Seed 000, Table 2: static vs adaptive scheduling

Ours: {src}; {extra['users']} users under both policies. CTR with 95 % Wilson intervals.

{_md(t2)}

## Seed 001: A/B design (experimental vs control, pre/post)

{ab_users} users per group, {period_days}-day pre period (both groups static) and
{period_days}-day post period (experimental group on GRU-PPO). Means per user per period.

{_md(ab_full)}

The same tests on the first {min(SEED001_USERS // 2, ab_users)} users of each group (the
seed's sample size):

{_md(ab_small)}

Within-group before/after p-values, the seed's (section III.B.3) beside ours:

{_md(seed_p)}

{chr(10).join(f'![{f}](seed_reproduction/{f})' for f in figs)}

## Differences and their reasons

{_reasons(extra, ab, ab_users, gru)}
"""
    path = out / "seed_reproduction.md"
    atomic_write_text(path, report)
    return path


def cmd_experiment_seeds(args: Any) -> int:
    """``covercast experiment seeds``."""
    path = run_seeds(args.out, from_run=args.from_run, users=args.users,
                     horizon_days=args.horizon_days, ab_users=args.ab_users,
                     ppo_steps=args.ppo_steps, seed=args.seed, fast=args.fast,
                     progress=not args.quiet)
    print(f"report: {path}")
    return 0


def add_experiment(experiments: Any) -> None:
    """Register ``seeds`` on the CLI's ``experiment`` sub-parsers."""
    e = experiments.add_parser(
        "seeds", help="the seed papers' experiments beside ours (reports/seed_reproduction.md)",
        description="Reproduce seed 000's Table 2 (static vs adaptive scheduler) and seed "
                    "001's A/B design (pre/post, experimental vs control) on simulated users; "
                    "write seed_reproduction.md with the seeds' claimed numbers beside ours. "
                    "Reuses a scheduling run (--from-run) or trains GRU-PPO for --ppo-steps "
                    "(1.5 M: 12 minutes measured on 2 CPU cores shared with other jobs, a few "
                    "minutes on free cores; a checkpoint of the same steps and seed in "
                    "OUT/seed_reproduction is reused); evaluation takes about a minute; "
                    "--fast: seconds.")
    e.set_defaults(func=cmd_experiment_seeds)
    e.add_argument("--out", default="reports", help="folder of seed_reproduction.md")
    e.add_argument("--from-run", default=None,
                   help="a `covercast experiment scheduling` folder to reuse")
    e.add_argument("--users", type=int, default=300, help="paired users for Table 2")
    e.add_argument("--horizon-days", type=float, default=14.0, help="days per user (Table 2)")
    e.add_argument("--ab-users", type=int, default=200, help="users per A/B group")
    e.add_argument("--ppo-steps", type=int, default=1_500_000,
                   help="GRU-PPO training env-steps when no --from-run")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--fast", action="store_true", help="tiny sizes, for smoke tests")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
