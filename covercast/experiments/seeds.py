"""``covercast experiment seeds``: the seed papers' experiments reproduced on simulated users.

Writes ``seed_reproduction.md`` (default ``reports/``), with its CSVs and figures in
``seed_reproduction/`` beside it. The seeds' claimed numbers and the published industry
figures are constants below, each with its source; they are shown beside ours, never used as
results.

1. **Seed 000, Table 2** ("User engagement and scheduling effectiveness"): the static scheduler
   against the adaptive (GRU) scheduler on average CTR, engagement duration and satisfaction.
   Ours, on the same simulated users of the default population (``calibrated-v1``; paired,
   14-day episodes), three policies:

   * ``static`` -- :class:`~covercast.agents.StaticScheduler` at 08:00 and 20:00 UTC with the
     first style: **the seed paper's control**, untuned;
   * ``static-tuned`` -- **the tuned control**
     (:class:`~covercast.agents.tuned.TunedStaticScheduler`): the best fixed schedule at the
     same two pushes a day, its hours and style chosen by grid search on *training* users of the
     population, drawn from a seed branch of their own (``SeedSequence([seed, TUNE_BRANCH])``),
     never the evaluation users;
   * ``gru-ppo`` -- a GRU-PPO policy.

   CTR is pooled (opens / pushes) with a 95 % Wilson interval; *engagement duration* -- which
   the seed does not define -- is our dwell minutes per opened push (pooled); *satisfaction* is
   the mean 1-5 survey score of the surveyed users; **opens per user per day** (over the
   whole window: an opted-out user adds zero) is added because it is what a platform counts:
   CTR alone rewards sending less; pushes per user per day are shown to read CTR by.
   :func:`lifts` gives GRU-PPO's lift over **both** controls (and the tuned control's over the
   untuned one) on each metric: the ratio of the two policies' values minus 1, a 95 %
   percentile interval from a paired bootstrap over users (the same resampled users for both
   policies), and a test (paired t of the per-user values; Welch t for satisfaction, whose
   surveyed users differ). The report says, from these numbers, how far each lift is from the
   seed's claimed +18.7 % CTR and from the few percent published production systems report
   (:data:`INDUSTRY_LIFTS`).

   Sources of the episodes: with ``from_run`` a **suite benchmark** folder (``covercast
   experiment scheduling --suite``: its training population's rows -- ``calibrated-v1`` by
   default -- of ``static``, ``static-tuned`` and ``gru-ppo``, all seeds, pairs are (seed,
   user); the control and GRU-PPO policy of its first cell for the A/B) or an **old scheduling
   benchmark** folder (``covercast experiment scheduling``: its ``default`` rows of ``static``
   and ``gru-ppo``; it has no tuned control, so one is tuned here on its saved default
   population and evaluated on the very users of each of its cells -- the cell's evaluation
   seed -- which is checked); without ``from_run`` GRU-PPO is trained and the control tuned
   here, and the three policies are evaluated on ``users`` paired new users.

2. **Seed 001, the A/B design** (section III.B): 40 users randomly split into an experimental
   and a control group; a scale test before, a second one two weeks after the intervention, on
   media comments, retweets, interactions and likes; homogeneity by independent-samples t-tests
   before, within-group comparisons before/after. Ours, on behaviour instead of a Likert scale:
   ``ab_users`` users per group (independent draws of the population, so the split is
   random), one 28-day episode each; **pre** period = days 0-14, both groups under the control;
   **post** period = days 14-28, the experimental group switched to GRU-PPO (fresh recurrent
   state at the switch), the control group kept on the control. Two variants on the same users:
   the seed's design with the **seed's control** (the untuned static scheduler), and the same
   with the **tuned control** in the control group and the pre period. Per user and period:
   comments, shares (the seed's "retweets"), likes, and interactions = likes + shares +
   comments (the seed does not define its "interactions" dimension; this is our definition).
   A third variant makes **generated content the treatment**, as in the seed (its intervention
   is VAE-IAT content): both groups stay under the tuned control -- the same scheduler -- for
   both periods, and in the post period the experimental group's pushes carry covers from the
   ``content_bank`` (default ``"vae-iat"``, the committed VAE-IAT generator's bank) instead of
   the run's ``bank`` (the environments' ``bank_switch``: the same users, their state carried
   over; only the covers change). Users who opt out count zero for the rest of the run
   (intention to treat).

   **Covers.** ``bank`` (``--bank``) gives the covers of every environment here (GRU-PPO's
   training when it is trained here, the control's tuning, Table 2, the A/B); with
   ``from_run`` it is the run's own bank. Tests: Welch
   between groups before (homogeneity) and after, paired t-tests before/after within each
   group, and Welch on the per-user change (difference in differences). The same tests on the
   first 20 users of each group show what the seed's sample size gives.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from covercast._io import (
    atomic_write_csv,
    atomic_write_text,
    check_int,
    md_frame,
    pyplot,
    save_figure,
)
from covercast.agents.base import Agent, SeedLike, as_seed_sequence
from covercast.generators.banks import bank_kwargs

__all__ = ["SEED000_TABLE2", "SEED000_CTR_LIFT", "SEED001_P_VALUES", "SEED001_USERS",
           "INDUSTRY_LIFTS", "INDUSTRY_FEW_PERCENT", "AB_METRICS", "TABLE2_POLICIES",
           "LIFT_METRICS", "COMPARISONS", "SwitchAgent", "lifts", "place_lift", "table2",
           "ab_test", "run_seeds"]

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
#: Published lifts of push timing and creative optimization in production, relative (0.005 =
#: +0.5 %), with the metric each was measured on and its source (the same figures the default
#: population is calibrated to: README, ``covercast/simulators/params.py``).
INDUSTRY_LIFTS: dict[str, dict[str, Any]] = {
    "duolingo": {"lift": 0.005, "metric": "daily active users",
                 "source": "Duolingo, KDD 2020"},
    "linkedin": {"lift": 0.0072, "metric": "sessions",
                 "source": "LinkedIn"},
    "autoco": {"lift": 0.07, "metric": "CTR (about)",
               "source": "Alibaba AutoCO, WWW 2021 (creative optimization)"},
    "yahoo_japan": {"lift": 0.607, "metric": "click rate ('up to', the best case)",
                    "source": "Yahoo! JAPAN, KDD 2019 (send-time optimization)"},
    "morrison": {"lift": 0.0, "metric": "engagement (no difference found)",
                 "source": "Morrison et al., PLOS ONE 2017 (randomized trial of intelligent "
                           "notification timing)"},
}
#: "Industry's few percent": the span of the production lifts above other than the extremes
#: (Yahoo! JAPAN's best case, Morrison et al.'s null).
INDUSTRY_FEW_PERCENT: tuple[float, float] = (
    min(INDUSTRY_LIFTS[k]["lift"] for k in ("duolingo", "linkedin", "autoco")),
    max(INDUSTRY_LIFTS[k]["lift"] for k in ("duolingo", "linkedin", "autoco")))
#: Per-user engagement counts of the A/B comparison.
AB_METRICS: tuple[str, ...] = ("comments", "shares", "interactions", "likes")
#: Policies of our Table 2, in column order.
TABLE2_POLICIES: tuple[str, ...] = ("static", "static-tuned", "gru-ppo")
POLICY_LABELS: dict[str, str] = {
    "static": "seed's control (static 08:00/20:00, first style, untuned)",
    "static-tuned": "tuned control (static, hours and style tuned on training users)",
    "gru-ppo": "GRU-PPO",
}
#: (treatment, control) pairs whose lifts :func:`lifts` reports.
COMPARISONS: tuple[tuple[str, str], ...] = (("gru-ppo", "static"), ("gru-ppo", "static-tuned"),
                                            ("static-tuned", "static"))
#: metric -> (numerator column, denominator column or None for a per-user mean, label). A
#: policy's value is sum(numerator) / sum(denominator) over the users (for ``satisfaction``:
#: the mean over the surveyed users).
LIFT_METRICS: dict[str, tuple[str, str | None, str]] = {
    "ctr": ("opens", "pushes", "CTR (pooled opens / pushes)"),
    "dwell_per_open": ("dwell_min", "opens", "engagement: dwell min per opened push"),
    "satisfaction": ("satisfaction", None, "satisfaction (/5, surveyed users)"),
    "opens_per_user_day": ("opens_per_user_day", None, "opens per user per day"),
    "pushes_per_user_day": ("pushes_per_user_day", None, "pushes per user per day"),
}
#: Seed branch of the tuned control's training users (``SeedSequence([seed, TUNE_BRANCH])``:
#: a stream of its own, so the tuning never meets the evaluation users).
TUNE_BRANCH = 0x74756E65
_BOOT_BRANCH = 0x626F6F74
_HOURS_STATIC = (8, 20)
_PUSHES_PER_DAY = 2


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
        check_int(switch_step, "switch_step", 0)
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


# ================================================================================== sources
def _static(seed: int) -> Agent:
    from covercast.agents import StaticScheduler

    return StaticScheduler(hours=_HOURS_STATIC, style=0, seed=seed, name="static")


def _copy_control(control: Any, name: str = "static-tuned") -> Agent:
    """A fresh copy of a tuned control (nothing carried between evaluations)."""
    from covercast.agents.tuned import TunedStaticScheduler

    c = TunedStaticScheduler.from_dict(control.to_dict())
    c.name = name
    return c


def _read_run(run: Path) -> dict[str, Any]:
    """What a ``from_run`` folder is: ``kind`` ("suite" for ``covercast experiment scheduling
    --suite``, "scheduling" for the old benchmark), its evaluation population (name and
    parameters), and how its users and learners were run (``horizon_days``, ``history_days``,
    ``greedy``)."""
    from covercast.simulators.params import PopulationParams, default_params

    if not (run / "episodes.csv").exists():
        raise FileNotFoundError(f"{run} has no episodes.csv; give a finished `covercast "
                                "experiment scheduling` (or `--suite`) folder.")
    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() \
        else {}
    if "train_population" in cfg and "eval_populations" in cfg:
        from covercast.simulators.suite import load_population, resolve_name

        name = resolve_name(cfg["train_population"])
        return {"kind": "suite", "config": cfg, "population": name,
                "bank": cfg.get("bank", "procedural"),
                "params": load_population(name), "horizon_days": float(cfg["horizon_days"]),
                "history_days": float(cfg.get("history_days", 0.0)), "greedy": True}
    pop_file = run / "populations" / "default.json"
    params = PopulationParams.load(pop_file) if pop_file.exists() else default_params()
    return {"kind": "scheduling", "config": cfg, "population": "default", "params": params,
            "bank": cfg.get("bank", "procedural"),
            "params_source": str(pop_file) if pop_file.exists() else
            "the current default population (the run saved none)",
            "horizon_days": float(cfg.get("horizon_days", 14.0)),
            "history_days": float(cfg.get("history_days", 0.0)),
            "greedy": bool(cfg.get("deterministic_learners", False))}


def _cells(run: Path, kind: str) -> list[tuple[int, Path]]:
    """(seed index, folder) of the run's cells on its evaluation population, by index: the
    suite's ``cells/seed<i>``, the old benchmark's ``cells/seed<i>_default`` (its
    ``seed<i>_fitted`` cells trained elsewhere and are left out)."""
    pat = re.compile(r"seed(\d+)$" if kind == "suite" else r"seed(\d+)_default$")
    found = [(int(m.group(1)), p) for p in (run / "cells").glob("seed*")
             if p.is_dir() and (m := pat.match(p.name))]
    return sorted(found)


def _gru_agent(from_run: Path | None, out: Path, *, steps: int, seed: int, fast: bool,
               progress: bool, bank: str = "procedural") -> tuple[Agent, dict[str, Any]]:
    """A GRU-PPO agent: the policy the run evaluated from its first cell's checkpoint (the
    lowest seed index; its best validated policy when the run validated, else the final one),
    or one trained here with :func:`covercast.experiments.demo.train_gru_ppo`."""
    if from_run is not None:
        from covercast.agents.gru_ppo import GRUPPOAgent

        ckpt = []
        for kind in ("scheduling", "suite"):
            ckpt = [(i, p / "gru_ppo" / "checkpoint") for i, p in _cells(from_run, kind)
                    if (p / "gru_ppo" / "checkpoint" / "state.json").exists()]
            if ckpt:
                break
        if not ckpt:
            raise FileNotFoundError(f"No GRU-PPO checkpoint under {from_run / 'cells'}; give "
                                    "a `covercast experiment scheduling` (or `--suite`) output "
                                    "folder.")
        index, path = ckpt[0]
        state = json.loads((path / "state.json").read_text())
        best = state.get("best")
        which = "final" if best is None else "best"
        steps_used = int(state["global_step"]) if best is None else int(best["global_step"])
        return (GRUPPOAgent.load(path, seed=seed, name="gru-ppo", which=which),
                {"source": str(path), "policy": which, "steps": steps_used,
                 "seed_index": index})
    from covercast.experiments.demo import train_gru_ppo

    ckpt = out / "gru_ppo" / "checkpoint"
    if (ckpt / "state.json").exists() and (ckpt / "config.json").exists():
        cfg = json.loads((ckpt / "config.json").read_text())
        state = json.loads((ckpt / "state.json").read_text())
        if cfg.get("total_steps") == steps and cfg.get("seed") == seed \
                and int(state["global_step"]) >= steps \
                and cfg.get("env_kwargs", {}).get("bank", "procedural") == bank:
            from covercast.agents.gru_ppo import GRUPPOAgent

            return (GRUPPOAgent.load(ckpt, seed=seed, name="gru-ppo"),
                    {"source": str(ckpt), "reused": True,
                     "steps": int(state["global_step"])})
    agent, facts = train_gru_ppo(out, steps=steps, seed=seed, fast=fast, progress=progress,
                                 bank=bank)
    agent.name = "gru-ppo"
    return agent, {"source": str(out / "gru_ppo" / "checkpoint"), **facts}


def _tune_control(params: Any, d: Path, *, users: int, seed: int, horizon_days: float,
                  history_days: float, bank: str = "procedural") -> tuple[Agent, dict[str, Any]]:
    """The tuned control, tuned here on training users of ``params`` (two pushes a day, the
    seed control's volume; the users come from ``SeedSequence([seed, TUNE_BRANCH])``); saved
    as ``control.json`` with its search table ``control_tuning.csv``."""
    from covercast.agents.tuned import TunedStaticScheduler

    ctl = TunedStaticScheduler.tune(params, _PUSHES_PER_DAY, n_users=users,
                                    seed=np.random.SeedSequence([seed, TUNE_BRANCH]),
                                    horizon_days=horizon_days, history_days=history_days,
                                    name="static-tuned",
                                    env_kwargs=bank_kwargs(bank) or None)
    atomic_write_text(d / "control.json", json.dumps(ctl.to_dict(), indent=2) + "\n")
    if ctl.result is not None:
        atomic_write_csv(ctl.result.table, d / "control_tuning.csv")
    return ctl, {"source": f"tuned here on {users} training users per candidate of "
                           f"{params.name} (seed branch SeedSequence([{seed}, TUNE_BRANCH]), not the evaluation users; "
                           f"{ctl.tuning.get('elapsed_s', math.nan):.0f} s)"}


def _suite_control(run: Path, index: int) -> tuple[Agent, dict[str, Any]]:
    """The suite run's tuned control of cell ``index`` (its ``cell.json``)."""
    from covercast.agents.tuned import TunedStaticScheduler

    path = run / "cells" / f"seed{index}" / "cell.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the suite run's tuned control of seed "
                                f"{index} is read from it.")
    facts = json.loads(path.read_text()).get("facts", {})
    if "control" not in facts:
        raise FileNotFoundError(f"{path} has no facts.control (the tuned control).")
    ctl = TunedStaticScheduler.from_dict(facts["control"])
    ctl.name = "static-tuned"
    t = ctl.tuning
    return ctl, {"source": f"the suite run's control of seed {index} ({path}), tuned there on "
                           f"{t.get('n_users', '?')} training users per candidate of "
                           f"{t.get('population', '?')}"}


def _per_user_day(ep: Any, horizon_days: float) -> Any:
    ep = ep.copy()
    ep["opens_per_user_day"] = ep["opens"] / horizon_days
    ep["pushes_per_user_day"] = ep["pushes"] / horizon_days
    return ep


def _table2_episodes(source: dict[str, Any] | None, run: Path | None, agent: Agent,
                     control: Agent, *, users: int, horizon_days: float, seed: int,
                     progress: bool, bank: str = "procedural") -> Any:
    """Per-episode rows of :data:`TABLE2_POLICIES` with a ``pair`` column (the same user under
    every policy) and the per-user-day columns."""
    import pandas as pd

    from covercast.experiments.evaluate import evaluate_agents

    if source is None:
        df = evaluate_agents({"static": _static(seed), "static-tuned": _copy_control(control),
                              "gru-ppo": agent}, "covercast/PushSchedule-v0", users, seed,
                             env_kwargs={"horizon_days": horizon_days, **bank_kwargs(bank)},
                             progress=progress)
        df = df.rename(columns={"agent": "policy"})
        df["pair"] = df["episode"]
        return _per_user_day(df, horizon_days)
    assert run is not None
    ep = pd.read_csv(run / "episodes.csv")
    ep = ep[(ep["population"] == source["population"]) & ep["policy"].isin(TABLE2_POLICIES)]
    need = set(TABLE2_POLICIES) if source["kind"] == "suite" else {"static", "gru-ppo"}
    if ep.empty or not need <= set(ep["policy"]):
        raise FileNotFoundError(f"{run / 'episodes.csv'} has no {source['population']} rows of "
                                f"{sorted(need)} (found {sorted(set(ep['policy']))}).")
    ep = ep.copy()
    if source["kind"] == "scheduling" and "static-tuned" not in set(ep["policy"]):
        ep = pd.concat([ep, _control_on_run_users(source, run, ep, control, progress)],
                       ignore_index=True)
    ep["pair"] = ep["seed_index"].astype(np.int64) * 1_000_000 + ep["episode"]
    return _per_user_day(ep, source["horizon_days"])


def _control_on_run_users(source: dict[str, Any], run: Path, ep: Any, control: Agent,
                          progress: bool) -> Any:
    """The tuned control on the users each cell of an old scheduling run evaluated (its
    evaluation seed, users, days and population), checked against the run's own rows."""
    import pandas as pd

    from covercast.experiments.evaluate import evaluate_agents

    frames = []
    cells = dict(_cells(run, "scheduling"))
    kw: dict[str, Any] = {"horizon_days": source["horizon_days"], "params": source["params"],
                          **bank_kwargs(source.get("bank"))}
    if source["history_days"]:
        kw["history_days"] = source["history_days"]
    for i in sorted(set(ep["seed_index"].astype(int))):
        path = cells.get(i, run / "cells" / f"seed{i}_default") / "cell.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: its evaluation seed is needed to run "
                                    "the tuned control on the run's users.")
        eval_seed = int(json.loads(path.read_text())["eval_seed"])
        ref = ep[(ep["seed_index"] == i) & (ep["policy"] == "static")].sort_values("episode")
        df = evaluate_agents({"static-tuned": _copy_control(control)},
                             "covercast/PushSchedule-v0", len(ref), eval_seed, env_kwargs=kw,
                             learning="continual", progress=progress)
        df = df.rename(columns={"agent": "policy"})
        if "seed" in ref.columns and not np.array_equal(df["seed"].to_numpy(np.int64),
                                                        ref["seed"].to_numpy(np.int64)):
            raise RuntimeError(f"The tuned control did not meet the users of {path.parent}: "
                               "its episodes' environment seeds differ from the run's.")
        if i == min(set(ep["seed_index"].astype(int))):
            # the same seeds are not enough: the population and environment must be the
            # run's too. The seed's control is deterministic, so rerun on the first users it
            # must give the run's own rows.
            k = min(len(ref), 20)
            chk = evaluate_agents({"static": _static(0)}, "covercast/PushSchedule-v0", k,
                                  eval_seed, env_kwargs=kw, learning="continual")
            cols = [c for c in ("pushes", "opens", "sessions", "return") if c in ref.columns]
            if not np.allclose(chk[cols].to_numpy(float), ref[cols].head(k).to_numpy(float),
                               rtol=1e-9, atol=1e-9):
                raise RuntimeError(f"The static scheduler rerun on the users of {path.parent} "
                                   f"({source.get('params_source', '')}) does not reproduce "
                                   "the run's rows: its population or environment differs "
                                   "from the one rebuilt here, so a tuned control run here "
                                   "would not be paired with them.")
        df.insert(0, "population", source["population"])
        if "train_population" in ep.columns:
            df.insert(1, "train_population", "-")
        df.insert(2 if "train_population" in ep.columns else 1, "seed_index", i)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


# ================================================================================== lifts
def _aligned(episodes: Any, policies: tuple[str, ...] = TABLE2_POLICIES) -> dict[str, Any]:
    """``{policy: rows indexed by pair}``, on the pairs every policy has, in one order."""
    missing = [p for p in policies if p not in set(episodes["policy"])]
    if missing:
        raise ValueError(f"The episodes have no rows of {missing}; Table 2 needs "
                         f"{list(policies)}.")
    frames = {p: episodes[episodes["policy"] == p].set_index("pair").sort_index()
              for p in policies}
    common = None
    for f in frames.values():
        if f.index.has_duplicates:
            raise ValueError("Each (policy, pair) must be one episode.")
        common = f.index if common is None else common.intersection(f.index)
    if common is None or len(common) < 2:
        raise ValueError("Fewer than 2 users are under every policy.")
    return {p: f.loc[common] for p, f in frames.items()}


def _num_den(d: Any, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-user numerator and denominator of ``metric`` (a policy's value is
    ``sum(num) / sum(den)``)."""
    num_col, den_col, _ = LIFT_METRICS[metric]
    x = d[num_col].to_numpy(np.float64)
    if den_col is not None:
        return x, d[den_col].to_numpy(np.float64)
    ok = np.isfinite(x)
    return np.where(ok, x, 0.0), ok.astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _test(metric: str, t: Any, c: Any) -> tuple[float, str]:
    """(p, test name) of ``metric``, treatment rows ``t`` against control rows ``c``."""
    from covercast.experiments.stats import paired_test, welch_test

    try:
        if metric == "satisfaction":
            a, b = t["satisfaction"].dropna().to_numpy(), c["satisfaction"].dropna().to_numpy()
            return welch_test(a, b)["p"], "Welch t (surveyed users)"
        if metric == "ctr":
            return (paired_test(t["ctr"].to_numpy(float), c["ctr"].to_numpy(float))["p"],
                    "paired t (per-user CTR)")
        if metric == "dwell_per_open":
            return (paired_test(_ratio(*_num_den(t, metric)), _ratio(*_num_den(c, metric)))["p"],
                    "paired t (per-user dwell per open, users with opens under both)")
        col = LIFT_METRICS[metric][0]
        return (paired_test(t[col].to_numpy(float), c[col].to_numpy(float))["p"],
                "paired t (per user)")
    except ValueError:
        return math.nan, "too few users for a test"


def lifts(episodes: Any, *, comparisons: tuple[tuple[str, str], ...] = COMPARISONS,
          metrics: tuple[str, ...] = tuple(LIFT_METRICS), n_boot: int = 2000,
          seed: SeedLike = 0, confidence: float = 0.95) -> Any:
    """Relative lifts of each ``(treatment, control)`` on each metric, from per-episode rows.

    ``episodes`` has one row per policy and user (``policy``, ``pair`` -- the same user under
    every policy --, and the columns of :data:`LIFT_METRICS`). A policy's value is
    ``sum(numerator) / sum(denominator)`` over the users under every policy (pooled CTR and
    dwell per open; per-user means otherwise; satisfaction over the surveyed users); the lift
    is ``treatment / control - 1``. Its interval: percentiles of ``n_boot`` paired bootstrap
    resamples of the users (one resample for both policies). ``p`` and ``test``: see
    :func:`_test`. Also ``minus_seed_claim_pp`` (lift minus the seed's +18.7 %, in points),
    ``seed_claim_in_ci`` and ``vs_industry`` (:func:`place_lift`'s short verdict).
    """
    import pandas as pd

    pols = tuple(dict.fromkeys(p for pair in comparisons for p in pair))
    al = _aligned(episodes, pols)
    n = len(next(iter(al.values())))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _BOOT_BRANCH])
                                if isinstance(seed, (int, np.integer)) else
                                as_seed_sequence(seed))
    # every numerator and denominator of every (metric, policy) as a column; a bootstrap
    # resample of the users is a row of multinomial counts, so its sums are counts @ columns
    keys = [(m, p) for m in metrics for p in pols]
    cols = np.column_stack([x for m, p in keys for x in _num_den(al[p], m)])
    boot_sums = np.empty((int(n_boot), cols.shape[1]))
    for k in range(0, int(n_boot), 250):
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=min(250, int(n_boot) - k))
        boot_sums[k:k + len(w)] = w @ cols
    full = cols.sum(axis=0)
    alpha = (1 - confidence) / 2
    rows = []
    for metric in metrics:
        volume = metric == "pushes_per_user_day"
        sums: dict[str, tuple[float, float, np.ndarray, np.ndarray]] = {}
        for p in pols:
            j = 2 * keys.index((metric, p))
            sums[p] = (float(full[j]), float(full[j + 1]), boot_sums[:, j], boot_sums[:, j + 1])
        for t, c in comparisons:
            vt = _ratio(np.array(sums[t][0]), np.array(sums[t][1])).item()
            vc = _ratio(np.array(sums[c][0]), np.array(sums[c][1])).item()
            lift = vt / vc - 1 if np.isfinite(vc) and vc != 0 else math.nan
            boot = _ratio(_ratio(sums[t][2], sums[t][3]), _ratio(sums[c][2], sums[c][3])) - 1
            boot = boot[np.isfinite(boot)]
            lo, hi = ((float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha)))
                      if boot.size >= 10 and np.isfinite(lift) else (math.nan, math.nan))
            p, test = _test(metric, al[t], al[c])
            rows.append({"treatment": t, "control": c, "metric": metric,
                         "label": LIFT_METRICS[metric][2], "control_value": vc,
                         "treatment_value": vt, "lift": lift, "ci_low": lo, "ci_high": hi,
                         "p": p, "test": test, "users": n,
                         "minus_seed_claim_pp": (math.nan if volume else
                                                 100 * (lift - SEED000_CTR_LIFT)),
                         "seed_claim_in_ci": bool(not volume and lo <= SEED000_CTR_LIFT <= hi),
                         "vs_industry": ("volume, not an outcome" if volume else
                                         place_lift(lift, lo, hi, short=True))})
    return pd.DataFrame(rows)


def place_lift(lift: float, lo: float = math.nan, hi: float = math.nan, *,
               short: bool = False) -> str:
    """Where a relative lift (with its interval ``lo``-``hi``) sits among the published
    figures: the seed's +18.7 % claim and :data:`INDUSTRY_LIFTS` (``short``: a few words for
    a table cell)."""
    if not np.isfinite(lift):
        return "n/a"
    ind = INDUSTRY_LIFTS
    few_lo, few_hi = INDUSTRY_FEW_PERCENT
    duo, lnk, auto, yahoo = (ind[k]["lift"] for k in ("duolingo", "linkedin", "autoco",
                                                      "yahoo_japan"))
    claim = f"+{100 * SEED000_CTR_LIFT:.1f} %"
    if np.isfinite(lo) and np.isfinite(hi) and lo <= 0 <= hi:
        return ("no effect detected (as Morrison et al.)" if short else
                f"not distinguishable from no effect (interval {100 * lo:+.1f} to "
                f"{100 * hi:+.1f} %), as {ind['morrison']['source']} found")
    if lift < 0:
        return "a loss" if short else f"a loss ({100 * lift:+.1f} %)"
    if lift < few_lo:
        return (f"below industry's few percent (+{100 * few_lo:.1f} % at least)" if short else
                f"below even the smallest production gain quoted ({ind['duolingo']['source']}:"
                f" +{100 * duo:.1f} % {ind['duolingo']['metric']})")
    if lift <= few_hi:
        return (f"within industry's few percent (+{100 * few_lo:.1f} ... +{100 * few_hi:.0f} %)"
                if short else
                f"within industry's few percent, which runs from the whole-system gains of "
                f"Duolingo "
                f"(+{100 * duo:.1f} % {ind['duolingo']['metric']}) and LinkedIn "
                f"(+{100 * lnk:.2f} % {ind['linkedin']['metric']}) to Alibaba AutoCO's about "
                f"+{100 * auto:.0f} % CTR")
    over = (f"{100 * (lift - few_hi):.1f} points above industry's few percent (AutoCO's "
            f"~+{100 * auto:.0f} %)")
    if lift <= SEED000_CTR_LIFT:
        return over if short else f"{over}, and below the seed's claimed {claim}"
    if lift <= yahoo:
        return over if short else (f"{over}, above the seed's claimed {claim}, within Yahoo! "
                                   f"JAPAN's best send-time case (up to +{100 * yahoo:.1f} % "
                                   "click rate)")
    return (f"{over}; above Yahoo! JAPAN's best case (+{100 * yahoo:.1f} %)" if short else
            f"{over}, and above every published figure, Yahoo! JAPAN's best send-time case "
            f"(up to +{100 * yahoo:.1f} % click rate) included")


# ================================================================================== table 2
def _pct(x: float, digits: int = 1) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:+.{digits}f} %"


def _lift_cell(r: Any) -> str:
    if not np.isfinite(r["lift"]):
        return "n/a"
    ci = (f" [{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}]"
          if np.isfinite(r["ci_low"]) else "")
    return f"{100 * r['lift']:+.1f} %{ci}"


def table2(episodes: Any, *, n_boot: int = 2000, seed: SeedLike = 0) -> tuple[Any, dict[str,
                                                                                        Any]]:
    """Seed 000's Table 2 beside ours, from per-episode rows of :data:`TABLE2_POLICIES`
    (columns ``policy``, ``pair`` -- the same user under each policy --, ``opens``,
    ``pushes``, ``ctr``, ``dwell_min``, ``satisfaction``, ``opens_per_user_day``,
    ``pushes_per_user_day``, ``opted_out``).

    Returns the table (one row per metric: the seed's static and adaptive values and change,
    ours for the three policies, and the lifts with 95 % bootstrap intervals of GRU-PPO over
    each control and of the tuned control over the untuned one) and ``extra``: ``users``,
    ``lifts`` (:func:`lifts`) and per-policy facts under ``policies``.
    """
    import pandas as pd

    from covercast.simulators.calibrate import wilson_interval

    al = _aligned(episodes)
    lf = lifts(episodes, n_boot=n_boot, seed=seed)

    def lift(t: str, c: str, m: str) -> Any:
        return lf[(lf["treatment"] == t) & (lf["control"] == c) & (lf["metric"] == m)].iloc[0]

    def value(p: str, m: str) -> str:
        d = al[p]
        if m == "ctr":
            k, n = float(d["opens"].sum()), float(d["pushes"].sum())
            if n <= 0:
                return "n/a (no pushes)"
            lo, hi = wilson_interval(np.array([k]), np.array([n]))
            return f"{100 * k / n:.2f} [{100 * lo[0]:.2f}, {100 * hi[0]:.2f}]"
        v = lift(p if p != "static" else "static-tuned", "static", m)
        x = v["control_value"] if p == "static" else v["treatment_value"]
        if not np.isfinite(x):
            return "n/a"
        if m == "satisfaction":
            return f"{x:.2f} (n={int(d['satisfaction'].notna().sum())})"
        return f"{x:.3f}" if m.endswith("user_day") else f"{x:.2f}"

    seeds = {"ctr": ("Average CTR (%)", *SEED000_TABLE2["ctr_pct"],
                     f"{100 * SEED000_CTR_LIFT:+.1f} % (claimed)"),
             "dwell_per_open": ("Engagement duration (min): ours = dwell min per opened push",
                                *SEED000_TABLE2["engagement_min"], None),
             "satisfaction": ("Satisfaction score (/5)", *SEED000_TABLE2["satisfaction"], None),
             "opens_per_user_day": ("Opens per user per day (a platform's metric)", math.nan,
                                    math.nan, "not reported"),
             "pushes_per_user_day": ("Pushes per user per day (volume; read CTR by it)",
                                     math.nan, math.nan, "not reported")}
    rows = []
    for m, (label, s0, s1, change) in seeds.items():
        if change is None:
            change = f"{100 * (s1 / s0 - 1):+.1f} %"
        rows.append({"metric": label,
                     "seed static": "-" if not np.isfinite(s0) else s0,
                     "seed adaptive": "-" if not np.isfinite(s1) else s1,
                     "seed change": change,
                     "ours: seed's control (static, untuned)": value("static", m),
                     "ours: tuned control (static-tuned)": value("static-tuned", m),
                     "ours: GRU-PPO": value("gru-ppo", m),
                     "GRU-PPO vs seed's control": _lift_cell(lift("gru-ppo", "static", m)),
                     "GRU-PPO vs tuned control": _lift_cell(lift("gru-ppo", "static-tuned", m)),
                     "tuned vs seed's control": _lift_cell(lift("static-tuned", "static", m))})
    facts = {}
    for p, d in al.items():
        k, n = float(d["opens"].sum()), float(d["pushes"].sum())
        facts[p] = {"pushes_per_user_day": float(d["pushes_per_user_day"].mean()),
                    "opens_per_user_day": float(d["opens_per_user_day"].mean()),
                    "opens_per_user": float(d["opens"].mean()),
                    "ctr": k / n if n else math.nan,
                    "dwell_min_per_open": float(d["dwell_min"].sum() / k) if k else math.nan,
                    "opt_out_rate": float(d["opted_out"].astype(float).mean()),
                    "surveyed": int(d["satisfaction"].notna().sum())}
    extra = {"users": int(len(al["static"])), "lifts": lf, "policies": facts}
    return pd.DataFrame(rows), extra


# ================================================================================== A/B
def _ab_group(agent: Agent, users: int, seed: Any, period_steps: int, progress: bool,
              history_days: float = 0.0, deterministic: bool = False,
              params: Any = None, bank: str = "procedural",
              post_bank: str | None = None) -> Any:
    """Per-user, per-period engagement counts of one group (2 periods of ``period_steps``)
    on users of ``params`` (None: the default population), with covers of ``bank`` -- and of
    ``post_bank`` in the post period when given (the content treatment)."""
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
    kw: dict[str, Any] = {"horizon_days": days, **bank_kwargs(bank)}
    if post_bank is not None:
        kw["bank_switch"] = (period_steps, post_bank)
    if history_days:
        kw["history_days"] = history_days
    if params is not None:
        kw["params"] = params
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
_VARIANTS: tuple[str, ...] = ("seed control", "tuned control", "generated covers")


def _figures(d: Path, ab: Any) -> list[str]:
    plt = pyplot()

    variants = [v for v in _VARIANTS if v in set(ab["variant"])]
    fig, axes = plt.subplots(len(variants), len(AB_METRICS), figsize=(13, 3.2 * len(variants)),
                             squeeze=False)
    for row, variant in zip(axes, variants, strict=True):
        v = ab[ab["variant"] == variant]
        for ax, m in zip(row, AB_METRICS, strict=True):
            for k, grp in enumerate(("control", "experimental")):
                g = v[v["group"] == grp]
                means, sems = [], []
                for p in ("pre", "post"):
                    x = g.loc[g["period"] == p, m]
                    means.append(x.mean())
                    sems.append(x.std(ddof=1) / math.sqrt(max(len(x), 1)))
                ax.errorbar([0, 1], means, yerr=[1.96 * s for s in sems], marker="o",
                            capsize=3, label=grp, color=f"C{k}")
            ax.set_xticks([0, 1], ["pre", "post"])
            ax.set(title=f"{m} ({variant})", ylabel="per user per period")
        row[0].legend(fontsize=8)
    fig.suptitle("Seed 001's A/B design on simulated users (95 % CI); rows: the control "
                 "policy", fontsize=10)
    fig.tight_layout()
    return [save_figure(fig, d / "ab_pre_post.png")]


def _lift_table(lf: Any) -> Any:
    import pandas as pd

    names = {"static": "seed's control", "static-tuned": "tuned control", "gru-ppo": "GRU-PPO"}
    rows = []
    for _, r in lf.iterrows():
        rows.append({"comparison": f"{names[r['treatment']]} vs {names[r['control']]}",
                     "metric": r["label"], "control": r["control_value"],
                     "treatment": r["treatment_value"], "lift [95 % CI]": _lift_cell(r),
                     "p": r["p"], "test": r["test"],
                     "lift - seed's +18.7 % (points)": (
                         "" if not np.isfinite(r["minus_seed_claim_pp"])
                         else f"{r['minus_seed_claim_pp']:+.1f}"),
                     "where it sits": r["vs_industry"]})
    return pd.DataFrame(rows)


def _distance_text(lf: Any, population: str, users: int) -> str:
    """The plain-language reading of the lifts against the seed's claim and industry's."""

    def r(t: str, c: str, m: str) -> Any:
        return lf[(lf["treatment"] == t) & (lf["control"] == c) & (lf["metric"] == m)].iloc[0]

    def cell(x: Any) -> str:
        return _lift_cell(x) if np.isfinite(x["lift"]) else "n/a"

    def claim(x: Any) -> str:
        if not np.isfinite(x["lift"]):
            return "not measurable here"
        pp = x["minus_seed_claim_pp"]
        where = "inside" if x["seed_claim_in_ci"] else "outside"
        return (f"{abs(pp):.1f} points {'below' if pp < 0 else 'above'} the paper's claimed "
                f"{claim_pct} (which lies {where} the lift's 95 % interval)")

    claim_pct = f"+{100 * SEED000_CTR_LIFT:.1f} %"
    ctr_s, ctr_t = r("gru-ppo", "static", "ctr"), r("gru-ppo", "static-tuned", "ctr")
    op_s, op_t = (r("gru-ppo", "static", "opens_per_user_day"),
                  r("gru-ppo", "static-tuned", "opens_per_user_day"))
    pu_s, pu_t = (r("gru-ppo", "static", "pushes_per_user_day"),
                  r("gru-ppo", "static-tuned", "pushes_per_user_day"))
    tun_ctr, tun_op = (r("static-tuned", "static", "ctr"),
                       r("static-tuned", "static", "opens_per_user_day"))
    dw_s, dw_t = r("gru-ppo", "static", "dwell_per_open"), r("gru-ppo", "static-tuned",
                                                             "dwell_per_open")
    sa_s, sa_t = r("gru-ppo", "static", "satisfaction"), r("gru-ppo", "static-tuned",
                                                           "satisfaction")
    e0, e1 = SEED000_TABLE2["engagement_min"]
    s0, s1 = SEED000_TABLE2["satisfaction"]
    ind = INDUSTRY_LIFTS
    if np.isfinite(op_s["lift"]) and op_s["lift"] > 0 and np.isfinite(tun_op["lift"]):
        share = tun_op["lift"] / op_s["lift"]
        share_txt = (f"the tuned control alone gains more opens than GRU-PPO does over the "
                     f"seed's control ({cell(tun_op)} against {cell(op_s)})" if share >= 1 else
                     f"{100 * share:.0f} % of GRU-PPO's gain in opens per user-day over the "
                     f"seed's control ({cell(op_s)}) is already available to a fixed schedule "
                     f"tuned on simulated training users ({cell(tun_op)})" if share > 0 else
                     f"the tuned control does not beat the seed's control on opens "
                     f"({cell(tun_op)})")
    else:
        share_txt = (f"the tuned control's change in opens per user-day over the seed's "
                     f"control is {cell(tun_op)}, GRU-PPO's {cell(op_s)}")
    paras = [
        f"**Against the seed paper's own control** (the untuned 08:00/20:00 schedule with one "
        f"style), GRU-PPO's CTR lift is {cell(ctr_s)}, {claim(ctr_s)}. Its opens per user "
        f"per day change by {cell(op_s)}, at "
        f"{_pct(pu_s['lift'])} pushes per user-day. **Against the tuned control** (the best "
        f"fixed schedule at the same two pushes a day, tuned on training users), the CTR lift "
        f"is {cell(ctr_t)}, {claim(ctr_t)}; opens per user per day "
        f"{cell(op_t)}, at {_pct(pu_t['lift'])} pushes per user-day. CTR alone would reward "
        "sending less; opens per user-day are what a platform gains.",
        f"**Industry's figures are a few percent**: {ind['duolingo']['source']}: "
        f"+{100 * ind['duolingo']['lift']:.1f} % {ind['duolingo']['metric']}; "
        f"{ind['linkedin']['source']}: +{100 * ind['linkedin']['lift']:.2f} % "
        f"{ind['linkedin']['metric']}; {ind['autoco']['source']}: about "
        f"+{100 * ind['autoco']['lift']:.0f} % CTR. The largest, "
        f"{ind['yahoo_japan']['source']}, is up to +{100 * ind['yahoo_japan']['lift']:.1f} % "
        f"click rate, and {ind['morrison']['source']} found no effect. Compared like for like "
        "-- our CTR with AutoCO's CTR and Yahoo! JAPAN's click rate, our opens per user-day "
        "with Duolingo's daily actives and LinkedIn's sessions -- GRU-PPO's CTR lift over the "
        f"tuned control is {place_lift(ctr_t['lift'], ctr_t['ci_low'], ctr_t['ci_high'])}. "
        f"Its opens lift over the tuned control is "
        f"{place_lift(op_t['lift'], op_t['ci_low'], op_t['ci_high'])}. Over the seed's "
        f"control, the CTR lift is "
        f"{place_lift(ctr_s['lift'], ctr_s['ci_low'], ctr_s['ci_high'])}. The opens lift over "
        f"the seed's control is {place_lift(op_s['lift'], op_s['ci_low'], op_s['ci_high'])}.",
        f"**How much is the control's fault**: {share_txt}; the tuned control's CTR lift over "
        f"the seed's control is {cell(tun_ctr)}. A lift measured against an untuned control credits the "
        "learner with what any tuned fixed schedule gets.",
        f"**Engagement and satisfaction**: dwell minutes per opened push change by "
        f"{cell(dw_s)} over the seed's control and {cell(dw_t)} over the tuned control (the "
        f"seed's Table 2: {100 * (e1 / e0 - 1):+.1f} %); the satisfaction score by "
        f"{cell(sa_s)} and {cell(sa_t)} (the seed: {100 * (s1 / s0 - 1):+.1f} %).",
        f"These are lifts on simulated users of `{population}` ({users} users under every "
        "policy; the intervals resample users, so the variation between GRU-PPO training "
        "runs is in them only through the seeds the run holds). The population's best hour "
        "and best cover style are calibrated to the published figures above, so lifts far "
        "beyond them over a tuned control would point at the simulator, not at a discovery.",
    ]
    return "\n\n".join(paras)


def _reasons(extra: dict[str, Any], ab: Any, ab_users: int, gru: dict[str, Any],
             population: str) -> str:
    f = extra["policies"]
    s, t, g = f["static"], f["static-tuned"], f["gru-ppo"]
    opens = max(float(ab["opens"].sum()), 1.0)
    rate = {m: 100 * float(ab[m].sum()) / opens for m in ("likes", "shares", "comments")}

    def pct(x: float) -> str:
        return "n/a" if not np.isfinite(x) else f"{100 * x:.2f} %"

    def num(x: float, digits: int = 2) -> str:
        return "n/a" if not np.isfinite(x) else f"{x:.{digits}f}"

    return f"""Why our numbers differ from the seeds' (each difference, with its reason):

- **CTR level** (seed's control here: {pct(s['ctr'])}; the seed's static: 5.3 %). The
  `{population}` population is calibrated so that the static 08:00/20:00 schedule's open rate
  falls in the published 2-8 % range, near the seed's 5.3 % (README: the default population),
  so agreement on the static level is by construction, not a finding.
- **Two controls.** The seed compares its adaptive scheduler with one fixed schedule whose
  hours and content are not said to be tuned. We show that control (08:00/20:00, one style)
  and a tuned one (the best fixed hours and style at the same two pushes a day, found on
  simulated training users): CTR {pct(t['ctr'])}, opens per user-day
  {t['opens_per_user_day']:.3f} against {s['opens_per_user_day']:.3f}. A lift over the untuned
  control mixes what learning adds with what tuning a fixed schedule adds.
- **CTR lift.** Ours comes only from *when* and *with which cover style* GRU-PPO pushes (and
  how often: {s['pushes_per_user_day']:.2f}, {t['pushes_per_user_day']:.2f} and
  {g['pushes_per_user_day']:.2f} pushes per user-day for the seed's control, the tuned control
  and GRU-PPO; opens per user-day {s['opens_per_user_day']:.3f}, {t['opens_per_user_day']:.3f},
  {g['opens_per_user_day']:.3f}; opt-out rate {pct(s['opt_out_rate'])},
  {pct(t['opt_out_rate'])}, {pct(g['opt_out_rate'])}), learned in {gru.get('steps', 0):,}
  env-steps. The seed's lift mixes its scheduler with new generated images and a real
  platform whose users, pushes and horizon are not described; it reports no interval, test
  or sample size for Table 2. A policy can raise CTR by pushing less: read the lift with
  pushes, opens and opt-outs.
- **Engagement duration.** The seed does not say what its minutes measure (per session, per
  user, per day). Ours is dwell minutes per opened push, from the simulator's log-normal dwell
  model, in which the relevance of the cover to the user's taste raises it: a scheduler moves
  it only through the cover style it picks (here {num(s['dwell_min_per_open'])},
  {num(t['dwell_min_per_open'])} and {num(g['dwell_min_per_open'])} min per open).
- **Satisfaction.** Ours is the simulator's 1-5 survey (an ordered logit of relevance, dwell and
  fatigue, asked after a few opens), so few users are surveyed ({s['surveyed']},
  {t['surveyed']}, {g['surveyed']} here) and the interval is wide; the seed's is an
  unspecified survey of its participants.
- **Seed 001's A/B.** The seed measures *perceptions* on a Likert scale (10 questions per
  dimension, 1-5) of 40 people, and its treatment is a content-production path built on its
  VAE-IAT generator; ours counts *behaviour* (comments, shares, likes) of {ab_users} simulated
  users per group, and the treatment is the GRU-PPO scheduler -- or, in the generated-covers
  variant, the learned generator's covers under an unchanged scheduler. Engagement after an open is rare
  in our model (in this run: likes after {rate['likes']:.1f} % of opens, shares
  {rate['shares']:.1f} %, comments {rate['comments']:.1f} %), so per-user counts are small and
  a group of 20 has little power: see the seed-sized rows. The seed calls its
  groups homogeneous because "P<0.05"; homogeneity needs the opposite (no detected difference,
  p > 0.05), which is what we test. Its "interactions" dimension is not defined; ours is likes
  + shares + comments. Its control group's before/after p-values (0.06-0.23) are what a
  stable control gives; ours can move a little because fatigue and opt-outs (counted as zero
  afterwards) evolve between the periods under the control.
- **Randomness and sample sizes.** Ours are simulated, paired where possible, with intervals
  and tests reported; the seeds report point values (000) or p-values without effect sizes
  (001), so neither can be checked against its own uncertainty.
"""


def run_seeds(out_dir: str | os.PathLike = "reports", *, from_run: str | os.PathLike | None = None,
              users: int = 300, horizon_days: float = 14.0, ab_users: int = 200,
              ppo_steps: int = 1_500_000, tune_users: int = 500, n_boot: int = 2000,
              seed: int = 0, fast: bool = False, progress: bool = True,
              bank: str | None = None, content_bank: str | None = "vae-iat") -> Path:
    """Write ``seed_reproduction.md`` in ``out_dir`` (CSVs and figures in
    ``out_dir/seed_reproduction/``) and return its path.

    ``from_run``: a ``covercast experiment scheduling --suite`` folder (its training
    population's episodes of the two controls and GRU-PPO, its first cell's control and GRU-PPO
    policy) or an old ``covercast experiment scheduling`` folder (its default-population
    episodes and first GRU-PPO checkpoint; the tuned control is tuned here and run on its
    users). Otherwise GRU-PPO is trained here for ``ppo_steps`` env-steps, the control tuned
    here on ``tune_users`` training users per candidate, and the three policies evaluated on
    ``users`` paired new users of ``horizon_days`` days. ``ab_users`` users per A/B group (two
    14-day periods). ``n_boot`` bootstrap resamples for the lifts' intervals. ``fast`` shrinks
    everything. ``bank``: the covers of every environment (``None``: the run's with
    ``from_run``, else procedural); ``content_bank``: the post-period covers of the A/B's
    generated-content variant (``None``: no such variant).
    """
    import pandas as pd

    from covercast.envs.base import resolve_bank
    from covercast.generators.banks import check_bank_spec
    from covercast.simulators.params import default_params

    for name, v in (("users", users), ("ab_users", ab_users), ("ppo_steps", ppo_steps),
                    ("tune_users", tune_users)):
        check_int(v, name, 2)
    check_int(n_boot, "n_boot", 0)
    if not (isinstance(horizon_days, (int, float)) and horizon_days > 0):
        raise ValueError(f"`horizon_days` must be > 0, got {horizon_days!r}.")
    run = None if from_run is None else Path(from_run)
    source = None if run is None else _read_run(run)
    check_bank_spec(bank)
    check_bank_spec(content_bank)
    if source is not None and bank is not None and bank != source["bank"]:
        raise ValueError(f"--bank {bank} differs from the run's bank {source['bank']!r}; the "
                         "reused episodes and policy were made with the run's covers.")
    bank = bank or (source["bank"] if source is not None else "procedural")
    # the A/B follows the run: its population, its users (existing users with its
    # `history_days` of seen sessions) and how its learners act (greedily or not); the default
    # population's new users and sampled actions when GRU-PPO is trained here (as the demo)
    params = default_params() if source is None else source["params"]
    history_days = 0.0 if source is None else source["history_days"]
    greedy = False if source is None else source["greedy"]
    period_days = 14
    if fast:
        users, horizon_days, ab_users = min(users, 8), min(horizon_days, 2.0), min(ab_users, 6)
        ppo_steps, period_days = min(ppo_steps, 2_000), 2
        tune_users, n_boot = min(tune_users, 4), min(n_boot, 200)
    out = Path(out_dir)
    d = out / "seed_reproduction"
    d.mkdir(parents=True, exist_ok=True)
    config = {"from_run": None if run is None else str(run),
              "run_kind": None if source is None else source["kind"],
              "population": params.name, "users": users, "horizon_days": horizon_days,
              "ab_users": ab_users, "ppo_steps": ppo_steps, "tune_users": tune_users,
              "n_boot": n_boot, "period_days": period_days, "history_days": history_days,
              "deterministic": greedy, "seed": seed, "fast": fast, "bank": bank,
              "content_bank": content_bank}
    atomic_write_text(d / "config.json", json.dumps(config, indent=2) + "\n")
    t0 = time.perf_counter()
    for b in (bank, content_bank):          # built (or loaded) once, before any evaluation
        if b is not None:
            resolve_bank(b, params)
    ss = np.random.SeedSequence(seed)
    s_eval, s_ctrl, s_exp = (int(x) for x in ss.generate_state(3))
    agent, gru = _gru_agent(run, d, steps=ppo_steps, seed=seed, fast=fast, progress=progress,
                            bank=bank)
    if source is not None and source["kind"] == "suite":
        control, ctl_facts = _suite_control(run, int(gru.get("seed_index", 0)))
    else:
        tune_days = horizon_days if source is None else source["horizon_days"]
        control, ctl_facts = _tune_control(params, d, users=tune_users, seed=seed,
                                           horizon_days=tune_days, history_days=history_days,
                                           bank=bank)

    ep = _table2_episodes(source, run, agent, control, users=users, horizon_days=horizon_days,
                          seed=s_eval, progress=progress, bank=bank)
    atomic_write_csv(ep, d / "table2_episodes.csv")
    t2, extra = table2(ep, n_boot=n_boot, seed=seed)
    atomic_write_csv(t2, d / "table2.csv")
    lf = extra["lifts"]
    atomic_write_csv(lf, d / "lifts.csv")

    steps = period_days * 24
    frames = []
    designs: list[tuple[str, str, Agent, int, str | None]] = []
    for variant, make in (("seed control", _static),
                          ("tuned control", lambda s: _copy_control(control))):
        designs += [(variant, "control", make(s_ctrl), s_ctrl, None),
                    (variant, "experimental", SwitchAgent(make(s_exp), agent, steps,
                                                          name="control->gru-ppo"), s_exp, None)]
    if content_bank is not None:
        # the same scheduler in both groups; the treatment is the post period's covers
        designs += [("generated covers", "control", _copy_control(control), s_ctrl, None),
                    ("generated covers", "experimental", _copy_control(control), s_exp,
                     content_bank)]
    for variant, grp, a, s, post in designs:
        g = _ab_group(a, ab_users, s, steps, progress, history_days, greedy, params, bank,
                      post)
        g.insert(0, "group", grp)
        g.insert(0, "variant", variant)
        frames.append(g)
    ab = pd.concat(frames, ignore_index=True)
    atomic_write_csv(ab, d / "ab_users.csv")
    n_small = min(SEED001_USERS // 2, ab_users)
    tests = {}
    for label, first in (("full", None), ("seed_sized", n_small)):
        parts = []
        for variant in [v for v in _VARIANTS if v in set(ab["variant"])]:
            t = ab_test(ab[ab["variant"] == variant], first=first)
            t.insert(0, "variant", variant)
            parts.append(t)
        tests[label] = pd.concat(parts, ignore_index=True)
    atomic_write_csv(tests["full"], d / "ab_tests.csv")
    atomic_write_csv(tests["seed_sized"], d / "ab_tests_seed_sized.csv")
    figs = _figures(d, ab)

    seed_rows = []
    for m in AB_METRICS:
        row: dict[str, Any] = {"metric": m}
        for grp in ("experimental", "control"):
            row[f"seed {grp} pre/post p"] = SEED001_P_VALUES[grp][m]
            for variant in [v for v in _VARIANTS if v in set(ab["variant"])]:
                t = tests["full"]
                v = t[(t["variant"] == variant) & (t["metric"] == m)].iloc[0]
                row[f"ours {grp} pre/post p ({variant})"] = float(
                    v[f"p {grp} pre/post (paired)"])
        seed_rows.append(row)
    seed_p = pd.DataFrame(seed_rows)
    atomic_write_csv(seed_p, d / "ab_vs_seed.csv")

    pop = params.name
    if source is not None:
        src = (f"the GRU-PPO policy `{gru['source']}` ({gru['steps']:,} env-steps, its "
               f"{gru.get('policy', 'final')} policy) and the `{source['population']}` "
               f"episodes of `{run}` ({source['kind']} benchmark, all its seeds; pairs are "
               "(seed, user))")
    elif "seconds" in gru:
        src = (f"GRU-PPO trained here for {gru['steps']:,} env-steps ({gru['seconds']:.0f} s), "
               f"evaluated on {users} paired new users x {horizon_days:g} days")
    else:
        src = (f"the GRU-PPO checkpoint `{gru['source']}` ({gru['steps']:,} env-steps"
               f"{'; reused: trained earlier with the same steps and seed' if gru.get('reused') else ''}"
               f"), evaluated on {users} paired new users x {horizon_days:g} days")
    if source is not None and source["kind"] == "scheduling" and "static-tuned" not in set(
            pd.read_csv(run / "episodes.csv", usecols=["policy"])["policy"]):
        src += ("; the run has no tuned control, so it was tuned here and run on the same "
                "users of each of its cells (their evaluation seeds, checked)")
    ctl_txt = (f"hours {list(control.hours)} UTC, style {control.style} "
               f"({control.tuning.get('style_name', '?')}); {ctl_facts['source']}")
    ab_ctl = ("the suite run's seed-"
              f"{gru.get('seed_index', 0)} control" if source is not None
              and source["kind"] == "suite" else "the same tuned control")
    content_txt = ("" if content_bank is None else
                   f"; and **generated covers**, seed 001's own treatment: both groups on "
                   f"{ab_ctl} in both periods (the same scheduler), the experimental group's "
                   f"post-period pushes carrying covers from the **{content_bank}** bank instead "
                   f"of the {bank} bank (same users, their state carried over)")
    report = f"""# Seed reproductions

Seed {seed}{' (fast mode: tiny sizes, numbers not meaningful)' if fast else ''}; wall time
{time.perf_counter() - t0:.0f} s; population `{pop}`; covers from the `{bank}` bank. Configuration and every table:
`seed_reproduction/`. Claimed numbers are the seeds' (quoted with their section/table) and
published industry figures (with their sources); ours come from the covercast simulator. Design:
the module docstring of `covercast.experiments.seeds`.

## Seed 000, Table 2: static vs adaptive scheduling

Ours: {src}; {extra['users']} users under all three policies. Policies: the **seed's control**
(static 08:00/20:00 UTC, first style, untuned: the seed paper's), the **tuned control**
(`static-tuned`: {ctl_txt}) and **GRU-PPO**. CTR with 95 % Wilson intervals; lifts with 95 %
intervals from a paired bootstrap over users ({n_boot} resamples).

{md_frame(t2)}

### Lifts of GRU-PPO over both controls (and of the tuned control over the seed's)

{md_frame(_lift_table(lf))}

### How far from the paper's +{100 * SEED000_CTR_LIFT:.1f} % and from industry's few percent

{_distance_text(lf, pop, extra['users'])}

## Seed 001: A/B design (experimental vs control, pre/post)

{ab_users} users per group, {period_days}-day pre period (both groups on the control) and
{period_days}-day post period (experimental group on GRU-PPO). Variants on the same users:
**seed control** (the seed's design: the untuned static scheduler as the control and in the pre
period) and **tuned control** ({ab_ctl} instead){content_txt}. Covers: the **{bank}** bank.
Means per user per period.

{md_frame(tests['full'])}

The same tests on the first {n_small} users of each group (the seed's sample size):

{md_frame(tests['seed_sized'])}

Within-group before/after p-values, the seed's (section III.B.3) beside ours:

{md_frame(seed_p)}

{chr(10).join(f'![{f}](seed_reproduction/{f})' for f in figs)}

## Differences and their reasons

{_reasons(extra, ab, ab_users, gru, pop)}
"""
    path = out / "seed_reproduction.md"
    atomic_write_text(path, report)
    return path


def cmd_experiment_seeds(args: Any) -> int:
    """``covercast experiment seeds``."""
    path = run_seeds(args.out, from_run=args.from_run, users=args.users,
                     horizon_days=args.horizon_days, ab_users=args.ab_users,
                     ppo_steps=args.ppo_steps, tune_users=args.tune_users,
                     n_boot=args.n_boot, seed=args.seed, fast=args.fast,
                     progress=not args.quiet, bank=args.bank,
                     content_bank=None if args.content_bank == "none" else args.content_bank)
    print(f"report: {path}")
    return 0


def add_experiment(experiments: Any) -> None:
    """Register ``seeds`` on the CLI's ``experiment`` sub-parsers."""
    e = experiments.add_parser(
        "seeds", help="the seed papers' experiments beside ours (reports/seed_reproduction.md)",
        description="Reproduce seed 000's Table 2 (static vs adaptive scheduler, with the "
                    "seed's untuned control and a tuned control) and seed 001's A/B design "
                    "(pre/post, experimental vs control) on simulated users; write "
                    "seed_reproduction.md with the seeds' claimed numbers and published "
                    "industry lifts beside ours. Reuses a suite benchmark or scheduling run "
                    "(--from-run) or trains GRU-PPO for --ppo-steps (1.5 M: 12 minutes "
                    "measured on 2 CPU cores shared with other jobs, a few minutes on free "
                    "cores; a checkpoint of the same steps and seed in OUT/seed_reproduction "
                    "is reused) and tunes the control (about 20 s); evaluation takes a few "
                    "minutes; --fast: seconds.")
    e.set_defaults(func=cmd_experiment_seeds)
    e.add_argument("--out", default="reports", help="folder of seed_reproduction.md")
    e.add_argument("--from-run", default=None,
                   help="a `covercast experiment scheduling --suite` (or older `scheduling`) "
                        "folder to reuse (default: train GRU-PPO here)")
    e.add_argument("--users", type=int, default=300, help="paired users for Table 2")
    e.add_argument("--horizon-days", type=float, default=14.0, help="days per user (Table 2)")
    e.add_argument("--ab-users", type=int, default=200, help="users per A/B group")
    e.add_argument("--ppo-steps", type=int, default=1_500_000,
                   help="GRU-PPO training env-steps when no --from-run")
    e.add_argument("--tune-users", type=int, default=500,
                   help="training users per candidate schedule when the control is tuned here")
    e.add_argument("--n-boot", type=int, default=2000,
                   help="bootstrap resamples of the lifts' intervals")
    e.add_argument("--seed", type=int, default=0, help="master seed")
    e.add_argument("--fast", action="store_true", help="tiny sizes, for smoke tests")
    from covercast.generators.banks import BANK_HELP

    e.add_argument("--bank", default=None,
                   help=BANK_HELP + " (default: the --from-run run's, else procedural)")
    e.add_argument("--content-bank", default="vae-iat",
                   help="the generated covers of the A/B's content treatment (a bank as "
                        "--bank takes it; default vae-iat, seed 001's generator; 'none' "
                        "drops that variant)")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
