"""Pieces of ``covercast demo`` (the end-to-end run is in ``test_cli.py``)."""

import json

import numpy as np
import pandas as pd

from covercast.experiments import demo
from covercast.experiments.stats import compare, summarize


def test_tuning_users_come_from_a_branch_the_evaluation_never_uses():
    # evaluate(..., seed) draws its users and the agents' seeds from SeedSequence(seed).spawn(2)
    for seed in (0, 7):
        branch = demo.tune_seed(seed)
        assert branch.entropy == seed
        evaluation = [s.spawn_key for s in np.random.SeedSequence(seed).spawn(2)]
        assert branch.spawn_key not in evaluation
        assert all(branch.spawn_key[:len(k)] != k for k in evaluation)


def test_agents_include_both_controls_and_the_planning_oracle():
    from covercast.agents import PlanningOracle, StaticScheduler
    from covercast.agents.tuned import TunedStaticScheduler

    control = TunedStaticScheduler(hours=(10, 19), style=1, name=demo.CONTROL)
    agents = demo.make_agents(0, control=control)
    assert list(agents) == [a for a in demo.AGENT_ORDER if a != "gru-ppo"]
    assert agents[demo.CONTROL] is control
    assert type(agents[demo.UNTUNED]) is StaticScheduler
    assert agents[demo.UNTUNED].hours == demo.HOURS_STATIC and agents[demo.UNTUNED].style == 0
    assert isinstance(agents[demo.ORACLE], PlanningOracle)
    assert agents[demo.ORACLE].name == "planning oracle (hidden state)"
    assert demo.CONTROL not in demo.make_agents(0)


def _frame() -> pd.DataFrame:
    """Paired per-user results of four agents with known means."""
    rng = np.random.default_rng(0)

    def noise(sd: float) -> np.ndarray:
        x = rng.normal(0, sd, 40)
        return x - x.mean()

    user = noise(0.5)
    rows = []
    for agent, ret, opens in (("static-tuned", 2.0, 0.10), ("static", 1.5, 0.08),
                              ("gru-ppo", 2.5, 0.12), ("planning-oracle", 4.0, 0.20)):
        r, o = ret + user + noise(0.1), opens + user / 20 + noise(0.01)
        c, d = 0.05 + noise(0.01), 0.3 + noise(0.01)
        for i in range(40):
            rows.append({"agent": agent, "episode": i, "return": r[i], "opens_per_day": o[i],
                         "dwell_min_per_day": d[i], "ctr": c[i], "pushes_per_day": 2.0,
                         "opted_out": float(i % 10 == 0), "satisfaction": np.nan})
    return pd.DataFrame(rows)


def test_comparison_table_is_against_the_tuned_control():
    df = _frame()
    metrics = ["return", "opens_per_day", "dwell_min_per_day", "ctr", "opted_out"]
    summary = summarize(df, metrics=metrics + ["pushes_per_day", "satisfaction"])
    vs_tuned = compare(df, baseline=demo.CONTROL, paired=True, metrics=metrics)
    vs_static = compare(df, baseline=demo.UNTUNED, paired=True, metrics=metrics)
    t = demo.comparison_table(vs_tuned, vs_static, summary).set_index("policy")
    assert list(t.index) == ["static-tuned (tuned control)", "static (seed paper's control)",
                             "gru-ppo", "planning oracle (hidden state)"]
    # returns 2.5 vs 2.0: +25 %; opens 0.12 vs 0.10: +20 %; no lift of the control over itself
    assert t.at["gru-ppo", "return lift"] == "+25.0 %"
    assert t.at["gru-ppo", "return vs tuned [95 % CI]"].startswith("+0.5 [")
    assert t.at["gru-ppo", "opens/user/day lift"] == "+20.0 %"
    assert t.at["gru-ppo", "opt-out diff"] == "+0.0 pp"
    assert t.at["static (seed paper's control)", "return lift"] == "-25.0 %"
    assert t.at["static-tuned (tuned control)", "return lift"] == ""
    # the oracle gains 2.0 over the control, GRU-PPO 0.5 of it
    assert t.at["gru-ppo", "of oracle gain"] == "25 %"
    # ... and, beside it, the history's comparison with the untuned control
    assert t.at["gru-ppo", "return lift vs static"] == "+66.7 %"
    assert t.at["static-tuned (tuned control)", "return lift vs static"] == "+33.3 %"
    assert t.at["static (seed paper's control)", "return lift vs static"] == ""

    p = demo.policy_table(summary)
    assert list(p.columns) == ["policy", "return", "opens/user/day", "dwell min/user/day", "CTR",
                               "pushes/day", "opt-out", "satisfaction"]
    assert p.iloc[0]["policy"] == "static-tuned (tuned control)"
    assert p.iloc[0]["opens/user/day"].startswith("0.1 [")
    assert p.iloc[0]["CTR"].startswith("5 % [")


def test_offloaded_evaluation_gives_the_same_results(tmp_path):
    """The planning oracle run in a worker process (as the full demo does) gives the very
    rows it gives in process."""
    kw = dict(episodes=2, horizon_days=1, seed=3)
    for d in "ab":
        (tmp_path / d).mkdir()
    pool = demo._offload_pool(2)
    try:
        pending = demo.submit_offloaded(pool, **kw)
        assert list(pending) == [demo.ORACLE]
        demo.compare_policies(tmp_path / "a", pending=pending, progress=False, **kw)
    finally:
        pool.terminate()
        pool.join()
    demo.compare_policies(tmp_path / "b", progress=False, **kw)
    a, b = (pd.read_csv(tmp_path / d / "episodes.csv") for d in "ab")
    assert demo.ORACLE in set(a["agent"])
    pd.testing.assert_frame_equal(a, b)
    for name in ("push_hours.csv", "policy_vs_static.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a" / name),
                                      pd.read_csv(tmp_path / "b" / name))
    sa, sb = (json.loads((tmp_path / d / "policy_seconds.json").read_text()) for d in "ab")
    assert sa["offloaded"] == [demo.ORACLE] and sb["offloaded"] == []
