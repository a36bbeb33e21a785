"""``covercast experiment seeds``: the switching agent, the lifts over both controls, the tables,
the report in --fast mode, and --from-run on a suite benchmark and an old scheduling folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from covercast.agents import RandomAgent, StaticScheduler
from covercast.experiments.evaluate import evaluate
from covercast.experiments.seeds import (
    AB_METRICS,
    INDUSTRY_LIFTS,
    SEED000_CTR_LIFT,
    SEED000_TABLE2,
    SEED001_P_VALUES,
    SwitchAgent,
    ab_test,
    lifts,
    place_lift,
    table2,
)


def test_switch_agent_follows_before_then_after():
    switch = 30
    agent = SwitchAgent(StaticScheduler(hours=(8, 20), seed=0),
                        RandomAgent(push_prob=1.0, seed=1), switch)
    pushed: dict[int, list[bool]] = {}

    def record(label, episode, obs, action, reward, info):
        pushed.setdefault(episode, []).append(bool(info["pushed"]))

    evaluate(agent, "covercast/PushSchedule-v0", 2, seed=3, env_kwargs={"horizon_days": 3},
             on_step=record)
    for steps in pushed.values():
        before, after = np.array(steps[:switch]), np.array(steps[switch:])
        assert before.sum() <= 4               # static: two pushes a day at most
        assert after.all()                     # push_prob = 1: every slot until an opt-out
    with pytest.raises(ValueError, match="switch_step"):
        SwitchAgent(StaticScheduler(), RandomAgent(), -1)
    with pytest.raises(ValueError, match="layout"):
        SwitchAgent(StaticScheduler(), RandomAgent(mode="timing"), 3)


def _known_episodes(users: int = 12, days: float = 14.0) -> pd.DataFrame:
    """Episodes whose lifts are known exactly: per user ``a`` = 1, 2 or 3;
    static: 28 pushes, ``a`` opens, 2 dwell min per open, satisfaction ``s``;
    tuned: 28 pushes, ``2a`` opens, 2.5 min per open, ``1.25 s``;
    GRU-PPO: 14 pushes (sends less), ``1.5a`` opens, 3 min per open, ``1.5 s``.
    Satisfaction only on even users (the surveyed)."""
    rows = []
    spec = {"static": (28, 1.0, 2.0, 1.0), "static-tuned": (28, 2.0, 2.5, 1.25),
            "gru-ppo": (14, 1.5, 3.0, 1.5)}
    for u in range(users):
        a = 1 + u % 3
        s = 3.0 + 0.2 * (u % 4 == 0) if u % 2 == 0 else np.nan
        for pol, (pushes, k_open, k_dwell, k_sat) in spec.items():
            opens = k_open * a
            rows.append({"policy": pol, "pair": u, "pushes": pushes, "opens": opens,
                         "ctr": opens / pushes, "dwell_min": k_dwell * opens,
                         "satisfaction": k_sat * s, "opted_out": u == 0 and pol == "static",
                         "opens_per_user_day": opens / days,
                         "pushes_per_user_day": pushes / days})
    return pd.DataFrame(rows)


# (treatment, control, metric) -> the lift _known_episodes was built with
KNOWN = {("gru-ppo", "static", "ctr"): 2.0, ("gru-ppo", "static-tuned", "ctr"): 0.5,
         ("static-tuned", "static", "ctr"): 1.0,
         ("gru-ppo", "static", "opens_per_user_day"): 0.5,
         ("gru-ppo", "static-tuned", "opens_per_user_day"): -0.25,
         ("static-tuned", "static", "opens_per_user_day"): 1.0,
         ("gru-ppo", "static", "pushes_per_user_day"): -0.5,
         ("gru-ppo", "static-tuned", "pushes_per_user_day"): -0.5,
         ("static-tuned", "static", "pushes_per_user_day"): 0.0,
         ("gru-ppo", "static", "dwell_per_open"): 0.5,
         ("gru-ppo", "static-tuned", "dwell_per_open"): 0.2,
         ("static-tuned", "static", "dwell_per_open"): 0.25,
         ("gru-ppo", "static", "satisfaction"): 0.5,
         ("gru-ppo", "static-tuned", "satisfaction"): 0.2,
         ("static-tuned", "static", "satisfaction"): 0.25}


def test_lifts_over_both_controls_are_computed_from_the_data():
    lf = lifts(_known_episodes(), n_boot=300, seed=1)
    assert len(lf) == len(KNOWN)
    for _, r in lf.iterrows():
        want = KNOWN[(r["treatment"], r["control"], r["metric"])]
        assert r["lift"] == pytest.approx(want, abs=1e-12), (r["treatment"], r["control"],
                                                               r["metric"])
        # every resample keeps the exact ratios: the interval is the lift itself
        assert r["ci_low"] == pytest.approx(want, abs=1e-9)
        assert r["ci_high"] == pytest.approx(want, abs=1e-9)
        assert r["users"] == 12
    ctr = lf[(lf["metric"] == "ctr") & (lf["control"] == "static-tuned")].iloc[0]
    assert ctr["minus_seed_claim_pp"] == pytest.approx(100 * (0.5 - SEED000_CTR_LIFT))
    assert not ctr["seed_claim_in_ci"]
    # CTR rises over the tuned control while opens fall: the policy sends half as much
    opens = lf[(lf["metric"] == "opens_per_user_day") & (lf["control"] == "static-tuned")
               & (lf["treatment"] == "gru-ppo")].iloc[0]
    assert ctr["lift"] > 0 > opens["lift"] and opens["vs_industry"] == "a loss"


def test_lift_intervals_cover_the_true_lift_on_noisy_users():
    rng = np.random.default_rng(5)
    n, rows = 5000, []
    base = rng.gamma(2.0, 0.5, size=n)          # each user's own rate, under every policy
    lam = {"static": 1.0, "static-tuned": 1.1, "gru-ppo": 1.3}
    for pol, m in lam.items():
        opens = rng.poisson(m * base)
        rows.append(pd.DataFrame({"policy": pol, "pair": np.arange(n), "pushes": 28,
                                  "opens": opens, "ctr": opens / 28, "dwell_min": 2.0 * opens,
                                  "satisfaction": np.nan, "opted_out": False,
                                  "opens_per_user_day": opens / 14,
                                  "pushes_per_user_day": 2.0}))
    lf = lifts(pd.concat(rows), metrics=("opens_per_user_day",), n_boot=1000, seed=0)
    lf = lf.set_index(["treatment", "control"])
    for (t, c), r in lf.iterrows():
        true = lam[t] / lam[c] - 1
        assert r["ci_low"] < true < r["ci_high"], (t, c)
        assert r["ci_low"] > 0 and r["p"] < 1e-3                  # a real effect
    assert lf.loc[("gru-ppo", "static"), "ci_low"] > SEED000_CTR_LIFT      # true: +30 %
    assert not lf.loc[("gru-ppo", "static"), "seed_claim_in_ci"]
    assert lf.loc[("gru-ppo", "static-tuned"), "seed_claim_in_ci"]        # true: +18.2 %


def test_table2_shows_both_controls_and_quotes_the_seed():
    ep = _known_episodes()
    t, extra = table2(ep, n_boot=100)
    t = t.set_index(t["metric"].str.split(" ").str[0])
    static_ctr = 100 * ep.loc[ep["policy"] == "static", "opens"].sum() / (28 * 12)
    assert t.loc["Average", "ours: seed's control (static, untuned)"].startswith(
        f"{static_ctr:.2f} [")
    assert t.loc["Average", "ours: tuned control (static-tuned)"].startswith(
        f"{2 * static_ctr:.2f} [")
    assert t.loc["Average", "ours: GRU-PPO"].startswith(f"{3 * static_ctr:.2f} [")
    assert t.loc["Average", "GRU-PPO vs seed's control"].startswith("+200.0 %")
    assert t.loc["Average", "GRU-PPO vs tuned control"].startswith("+50.0 %")
    assert t.loc["Average", "tuned vs seed's control"].startswith("+100.0 %")
    assert t.loc["Opens", "GRU-PPO vs tuned control"].startswith("-25.0 %")
    assert t.loc["Engagement", "ours: GRU-PPO"] == "3.00"
    assert t.loc["Satisfaction", "GRU-PPO vs tuned control"].startswith("+20.0 %")
    assert t.loc["Average", "seed static"] == SEED000_TABLE2["ctr_pct"][0]
    assert extra["users"] == 12
    assert extra["policies"]["gru-ppo"]["pushes_per_user_day"] == pytest.approx(1.0)
    assert extra["policies"]["static"]["opt_out_rate"] == pytest.approx(1 / 12)
    with pytest.raises(ValueError, match="static-tuned"):
        table2(ep[ep["policy"] != "static-tuned"])


def test_place_lift_against_the_published_figures():
    assert "Morrison" in place_lift(0.05, -0.01, 0.1)
    assert "loss" in place_lift(-0.1, -0.2, -0.05)
    assert "Duolingo" in place_lift(0.002, 0.001, 0.003)
    assert "within industry's few percent" in place_lift(0.03, 0.01, 0.05)
    assert "below the seed's claimed +18.7 %" in place_lift(0.12, 0.1, 0.14)
    assert "within Yahoo! JAPAN's best" in place_lift(0.3, 0.2, 0.4)
    assert "above every published figure" in place_lift(0.9, 0.8, 1.0)
    assert place_lift(float("nan")) == "n/a"
    assert INDUSTRY_LIFTS["linkedin"]["lift"] == 0.0072


def test_ab_test_detects_a_treatment_effect_and_not_a_null_one():
    rng = np.random.default_rng(0)
    rows = []
    for grp, effect in (("experimental", 3.0), ("control", 0.0)):
        for u in range(40):
            base = rng.poisson(2.0, size=4).astype(float)
            for period, add in (("pre", 0.0), ("post", effect)):
                v = base + add + rng.normal(0, 0.5, size=4)
                rows.append({"group": grp, "user": u, "period": period,
                             **dict(zip(AB_METRICS, v, strict=True)), "opens": v.sum()})
    res = ab_test(pd.DataFrame(rows)).set_index("metric")
    assert (res["p experimental pre/post (paired)"] < 1e-6).all()
    assert (res.loc[list(AB_METRICS), "p control pre/post (paired)"] > 1e-3).all()
    assert (res["p diff-in-diff (Welch)"] < 1e-6).all()
    small = ab_test(pd.DataFrame(rows), first=5)
    assert (small["n per group"] == 5).all()


def _check_report(out, *, tuned_here: bool) -> tuple[str, pd.DataFrame]:
    text = (out / "seed_reproduction.md").read_text()
    assert "Seed 000, Table 2" in text and "Seed 001" in text
    assert "Differences and their reasons" in text
    assert "tuned control" in text and "static-tuned" in text
    assert "Lifts of GRU-PPO over both controls" in text
    assert "+18.7 %" in text and "Duolingo" in text and "60.7" in text and "Morrison" in text
    for v in SEED001_P_VALUES["experimental"].values():
        assert f"{v:g}" in text
    d = out / "seed_reproduction"
    for name in ("table2.csv", "table2_episodes.csv", "lifts.csv", "ab_tests.csv",
                 "ab_tests_seed_sized.csv", "ab_users.csv", "ab_vs_seed.csv",
                 "ab_pre_post.png", "config.json"):
        assert (d / name).exists(), name
    assert (d / "control.json").exists() == tuned_here
    assert (d / "control_tuning.csv").exists() == tuned_here
    t2 = pd.read_csv(d / "table2.csv")
    assert "ours: tuned control (static-tuned)" in t2.columns
    assert "GRU-PPO vs tuned control" in t2.columns
    # the report's lifts are the episodes' numbers
    ep = pd.read_csv(d / "table2_episodes.csv")
    lf = pd.read_csv(d / "lifts.csv")
    assert {(a, b) for a, b in zip(lf["treatment"], lf["control"], strict=True)} == {
        ("gru-ppo", "static"), ("gru-ppo", "static-tuned"), ("static-tuned", "static")}
    row = lf[(lf["metric"] == "opens_per_user_day") & (lf["treatment"] == "static-tuned")]
    means = ep.groupby("policy")["opens_per_user_day"].mean()
    assert row["control_value"].iloc[0] == pytest.approx(means["static"])
    assert row["treatment_value"].iloc[0] == pytest.approx(means["static-tuned"])
    ab = pd.read_csv(d / "ab_users.csv")
    assert set(ab["group"]) == {"experimental", "control"}
    assert set(ab["variant"]) == {"seed control", "tuned control", "generated covers"}
    assert (ab["interactions"] == ab["likes"] + ab["shares"] + ab["comments"]).all()
    return text, ep


def test_fast_report_end_to_end(tmp_path):
    pytest.importorskip("torch")
    from covercast.experiments.seeds import run_seeds

    run_seeds(tmp_path, fast=True, progress=False)
    _, ep = _check_report(tmp_path, tuned_here=True)
    assert set(ep["policy"]) == {"static", "static-tuned", "gru-ppo"}
    ctl = json.loads((tmp_path / "seed_reproduction" / "control.json").read_text())
    assert ctl["tuning"]["population"] == "calibrated-v1"
    assert ctl["tuning"]["pushes_per_day"] == 2
    # the tuned control pushes at its own hours, two a day, on the evaluation users
    tuned = ep[ep["policy"] == "static-tuned"]
    assert (tuned["pushes"] <= 2 * 2).all()
    # the generated-covers A/B: the same scheduler in both groups, the same users as the tuned
    # variant; only the experimental group's post-period covers differ
    ab = pd.read_csv(tmp_path / "seed_reproduction" / "ab_users.csv")
    cols = ["user", "period", "likes", "shares", "comments", "opens", "pushes"]

    def rows(variant, group, period=None):
        g = ab[(ab["variant"] == variant) & (ab["group"] == group)]
        if period is not None:
            g = g[g["period"] == period]
        return g[cols].reset_index(drop=True)

    pd.testing.assert_frame_equal(rows("generated covers", "control"),
                                  rows("tuned control", "control"))
    pd.testing.assert_frame_equal(rows("generated covers", "experimental", "pre"),
                                  rows("tuned control", "experimental", "pre"))
    cfg = json.loads((tmp_path / "seed_reproduction" / "config.json").read_text())
    assert cfg["bank"] == "procedural" and cfg["content_bank"] == "vae-iat"
    assert "generated covers" in (tmp_path / "seed_reproduction.md").read_text()


def test_run_seeds_rejects_bad_input(tmp_path):
    from covercast.experiments.seeds import run_seeds

    with pytest.raises(ValueError, match="ab_users"):
        run_seeds(tmp_path, ab_users=1, fast=True, progress=False)
    with pytest.raises(ValueError, match="tune_users"):
        run_seeds(tmp_path, tune_users=1, fast=True, progress=False)
    with pytest.raises(FileNotFoundError, match="episodes.csv"):
        run_seeds(tmp_path, from_run=tmp_path / "nothing", fast=True, progress=False)


def test_from_run_uses_the_policy_the_run_evaluated(tmp_path):
    torch = pytest.importorskip("torch")
    from covercast.agents.gru_ppo import GRUPPOConfig, GRUPPOTrainer
    from covercast.experiments.seeds import _gru_agent

    cfg = GRUPPOConfig(env_id="covercast/PopulationVector-v0", num_envs=4, horizon_days=1,
                       total_steps=4 * 24 * 3, num_minibatches=2, embed_size=8, hidden_size=8,
                       tensorboard=False, eval_every=1, eval_users=8, eval_horizon_days=2.0,
                       eval_deterministic=False, initial_push_prob=0.3, learning_rate=0.02)
    for validated in (True, False):
        run = tmp_path / f"run{int(validated)}"
        c = cfg if validated else GRUPPOConfig(**{**cfg.to_dict(), "eval_every": 0})
        tr = GRUPPOTrainer(c, out=run / "cells" / "seed0_default" / "gru_ppo", progress=False)
        tr.train()
        agent, facts = _gru_agent(run, tmp_path / "out", steps=1, seed=0, fast=True,
                                  progress=False)
        which = "best" if validated else "final"
        assert facts["policy"] == which
        assert facts["steps"] == (int(tr.best["global_step"]) if validated else tr.global_step)
        for a, b in zip(agent.policy.parameters(), tr.agent(which=which).policy.parameters(),
                        strict=True):
            assert torch.equal(a, b)


# ------------------------------------------------------------------ --from-run on real folders
@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    """A tiny suite benchmark folder (two seeds, the three policies Table 2 reads)."""
    pytest.importorskip("torch")
    from covercast.experiments.suite_benchmark import SuiteConfig, run_suite

    out = tmp_path_factory.mktemp("suite")
    cfg = SuiteConfig.fast_config(policies=["static", "static-tuned", "gru-ppo"],
                                  eval_populations=["calibrated-v1"], pareto_volumes=[2],
                                  sensitivity=False)
    run_suite(out, cfg, backend="sequential", progress=False)
    return out


@pytest.fixture(scope="module")
def scheduling_run(tmp_path_factory):
    """A tiny old-style scheduling benchmark folder (one seed, static and GRU-PPO: no tuned
    control)."""
    pytest.importorskip("torch")
    from covercast.experiments.scheduling import SchedulingConfig, run_scheduling

    out = tmp_path_factory.mktemp("scheduling")
    cfg = SchedulingConfig.fast_config(workers=1, seeds=1, policies=["static", "gru-ppo"],
                                       fitted_learners=[])
    run_scheduling(out, cfg, backend="sequential", progress=False)
    return out


def test_from_suite_run_reads_its_controls_and_gru_ppo(suite_run, tmp_path):
    from covercast.experiments.seeds import run_seeds

    run_seeds(tmp_path, from_run=suite_run, fast=True, progress=False)
    text, ep = _check_report(tmp_path, tuned_here=False)
    cfg = json.loads((tmp_path / "seed_reproduction" / "config.json").read_text())
    assert cfg["run_kind"] == "suite" and cfg["population"] == "calibrated-v1"
    assert cfg["deterministic"] is True and cfg["history_days"] == 2.0
    # Table 2 holds the run's calibrated-v1 rows of the three policies, every seed, unchanged
    run_ep = pd.read_csv(suite_run / "episodes.csv")
    run_ep = run_ep[run_ep["population"] == "calibrated-v1"]
    assert len(ep) == len(run_ep) == 3 * 2 * 12
    key = ["seed_index", "policy", "episode"]
    m = ep.merge(run_ep, on=key, suffixes=("", "_run"))
    assert len(m) == len(ep)
    np.testing.assert_allclose(m["return"], m["return_run"])
    # the control is the suite's seed-0 control, and GRU-PPO its seed-0 policy
    cell = json.loads((suite_run / "cells" / "seed0" / "cell.json").read_text())
    hours = cell["facts"]["control"]["hours"]
    assert f"hours {hours} UTC" in text
    assert "cells/seed0/gru_ppo/checkpoint" in text
    ab = pd.read_csv(tmp_path / "seed_reproduction" / "ab_users.csv")
    tuned_ctl = ab[(ab["variant"] == "tuned control") & (ab["group"] == "control")]
    assert (tuned_ctl["pushes"] <= 2 * 2).all()          # 2 a day over 2-day periods


def test_from_old_scheduling_run_tunes_a_control_on_its_users(scheduling_run, tmp_path):
    from covercast.experiments.seeds import run_seeds

    run_seeds(tmp_path / "out", from_run=scheduling_run, fast=True, progress=False)
    text, ep = _check_report(tmp_path / "out", tuned_here=True)
    assert "tuned here" in text
    cfg = json.loads((tmp_path / "out" / "seed_reproduction" / "config.json").read_text())
    assert cfg["run_kind"] == "scheduling"
    # the tuned control met the very users of the run's cell: the same environment seeds
    s = ep[ep["policy"] == "static"].sort_values("episode")
    t = ep[ep["policy"] == "static-tuned"].sort_values("episode")
    assert len(t) == len(s) > 0
    np.testing.assert_array_equal(t["seed"].to_numpy(), s["seed"].to_numpy())
    # a wrong evaluation seed is caught, not reported as a paired comparison
    bad = tmp_path / "bad"
    shutil.copytree(scheduling_run, bad)
    path = bad / "cells" / "seed0_default" / "cell.json"
    info = json.loads(path.read_text())
    info["eval_seed"] = int(info["eval_seed"]) + 1
    path.write_text(json.dumps(info))
    with pytest.raises(RuntimeError, match="did not meet the users"):
        run_seeds(tmp_path / "out_bad", from_run=bad, fast=True, progress=False)
    # and so is another population under the same seeds (one whose users' sessions differ:
    # a population that differs only in taste is invisible in these short runs without opens)
    from covercast.simulators.suite import load_population

    info["eval_seed"] = int(info["eval_seed"]) - 1
    path.write_text(json.dumps(info))
    load_population("irregular-v1").save(bad / "populations" / "default.json")
    with pytest.raises(RuntimeError, match="does not reproduce"):
        run_seeds(tmp_path / "out_bad2", from_run=bad, fast=True, progress=False)


def test_a_bank_other_than_the_runs_is_refused_and_names_are_checked(tmp_path, suite_run):
    from covercast.experiments.seeds import run_seeds

    with pytest.raises(ValueError, match="differs from the run's bank 'procedural'"):
        run_seeds(tmp_path, from_run=suite_run, bank="dcgan", fast=True, progress=False)
    with pytest.raises(ValueError, match="Unknown bank 'vae'"):
        run_seeds(tmp_path, content_bank="vae", fast=True, progress=False)
