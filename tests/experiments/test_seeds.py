"""``covercast experiment seeds``: the switching agent, the tables, the report in --fast mode."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from covercast.agents import RandomAgent, StaticScheduler
from covercast.experiments.evaluate import evaluate
from covercast.experiments.seeds import (
    AB_METRICS,
    SEED000_TABLE2,
    SEED001_P_VALUES,
    SwitchAgent,
    ab_test,
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


def test_table2_pools_ctr_and_quotes_the_seed():
    rows = []
    for u in range(4):
        rows.append({"policy": "static", "pair": u, "opens": 1, "pushes": 20, "ctr": 0.05,
                     "dwell_min": 3.0, "satisfaction": 3.0 + u % 2, "pushes_per_day": 2.0,
                     "opted_out": False})
        rows.append({"policy": "gru-ppo", "pair": u, "opens": 2, "pushes": 20, "ctr": 0.1 + u / 100,
                     "dwell_min": 6.0 + u, "satisfaction": 4.0 + u % 2, "pushes_per_day": 2.0,
                     "opted_out": False})
    t, extra = table2(pd.DataFrame(rows))
    assert t.loc[0, "ours static"].startswith("5.00 ")
    assert t.loc[0, "ours GRU-PPO"].startswith("10.00 ")
    assert t.loc[0, "our change"] == "+100.0 %"
    assert t.loc[0, "seed static"] == SEED000_TABLE2["ctr_pct"][0]
    assert t.loc[1, "ours static"] == "3.00" and t.loc[1, "ours GRU-PPO"] == "3.75"
    assert t.loc[2, "p"] < 0.05
    assert extra["users"] == 4


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


def test_fast_report_end_to_end(tmp_path):
    pytest.importorskip("torch")
    from covercast.experiments.seeds import run_seeds

    path = run_seeds(tmp_path, fast=True, progress=False)
    text = path.read_text()
    assert "Seed 000, Table 2" in text and "Seed 001" in text
    assert "Differences and their reasons" in text
    for v in SEED001_P_VALUES["experimental"].values():
        assert f"{v:g}" in text
    d = tmp_path / "seed_reproduction"
    for name in ("table2.csv", "ab_tests.csv", "ab_tests_seed_sized.csv", "ab_users.csv",
                 "ab_vs_seed.csv", "ab_pre_post.png", "config.json"):
        assert (d / name).exists(), name
    ab = pd.read_csv(d / "ab_users.csv")
    assert set(ab["group"]) == {"experimental", "control"}
    assert (ab["interactions"] == ab["likes"] + ab["shares"] + ab["comments"]).all()


def test_run_seeds_rejects_bad_input(tmp_path):
    from covercast.experiments.seeds import run_seeds

    with pytest.raises(ValueError, match="ab_users"):
        run_seeds(tmp_path, ab_users=1, fast=True, progress=False)
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
