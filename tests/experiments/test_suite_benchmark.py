"""The population-suite scheduling benchmark: a tiny run writes every output, resumes, and
refuses bad settings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from covercast.experiments.suite_benchmark import (
    SUITE_POLICIES,
    SuiteConfig,
    run_suite,
    upper_bound_check,
)


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    report = run_suite(out, SuiteConfig.fast_config(), backend="sequential", progress=False)
    return out, report


def test_fast_run_writes_every_output(fast_run):
    out, report = fast_run
    text = report.read_text()
    for f in ("episodes.csv", "summary.csv", "vs_control.csv", "paired_vs_control.csv",
              "frontier.csv",
              "pareto.csv", "sensitivity.csv", "upper_bound.csv", "target.json", "pareto.png",
              "opens_by_population.png"):
        assert (out / f).exists(), f
    ep = pd.read_csv(out / "episodes.csv")
    assert set(ep["policy"]) == set(SUITE_POLICIES)
    assert set(ep["population"]) == {"calibrated-v1", "high-fatigue-v1"}
    # every policy of a seed met the same users: one row per (population, policy, seed, user)
    assert ep.groupby(["population", "policy", "seed_index"]).size().eq(12).all()
    assert "high-fatigue-v1 (held out)" in text and "tuned control" in text
    target = json.loads((out / "target.json").read_text())
    assert set(target["checks"]) == {"opens_lift_in_band", "opens_lift_vs_frontier_in_band",
                                      "upper_reference", "gru_return_vs_control"}
    gv = target["checks"]["gru_return_vs_control"]
    rows = {r["population"]: r for r in gv["populations"]}
    assert rows["high-fatigue-v1"]["split"] == "test" and rows["high-fatigue-v1"]["seeds"] == 2
    assert len(rows["high-fatigue-v1"]["per_seed_difference"]) == 2
    # the training runs' table names each run's collapse flag
    assert "## GRU-PPO training runs" in text
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*/cell.json"))]
    flags = [c["facts"]["gru-ppo"]["collapse"] for c in cells]
    assert set(flags) <= {"none", "never-push", "always-push"}
    assert all(f"| {c['index']} |" in text for c in cells)
    fr = pd.read_csv(out / "frontier.csv")
    assert set(fr["policy"]) == set(SUITE_POLICIES)
    # the frontier passes through the tuned control's own point at its volume
    ctl = fr[(fr["policy"] == "static-tuned") & fr["inside"]]
    # (n/a where a 12-user, 2-day fast run's frontier point has no opens to divide by)
    lifts = ctl["frontier_lift"].dropna()
    assert len(lifts) >= len(ctl) - 1 and (lifts.abs() < 0.35).all()
    sens = pd.read_csv(out / "sensitivity.csv")
    assert "none" in set(sens["parameter"]) and len(sens["parameter"].unique()) == 7
    pareto = pd.read_csv(out / "pareto.csv")
    assert set(pareto["volume"]) == {1, 2}
    dec = pd.read_csv(out / "return_decomposition.csv")
    assert len(dec) == 2 * 2                      # 2 populations x 2 seeds
    np.testing.assert_allclose(dec["difference"], dec["volume_effect"]
                               + dec["at_matched_volume"], atol=1e-9)
    assert "## Where GRU-PPO's return differs from the tuned control's" in text
    hours = pd.read_csv(out / "gru_push_by_hour.csv")
    assert hours.groupby(["population", "seed_index"]).size().eq(24).all()
    assert set(hours["population"]) == {"calibrated-v1", "high-fatigue-v1"}
    np.testing.assert_allclose(hours.groupby(["population", "seed_index"])["activity"].mean(),
                               1.0)
    assert (hours["pushes"] >= 0).all() and (out / "gru_push_by_hour.png").exists()
    assert "gru_push_by_hour.png" in text
    assert "trains under constraints set from the **untuned** static scheduler" in text


def test_rerun_resumes_and_refuses_another_config(fast_run):
    out, _ = fast_run
    before = (out / "cells" / "seed0" / "cell.json").stat().st_mtime_ns
    run_suite(out, SuiteConfig.fast_config(), backend="sequential", progress=False)
    assert (out / "cells" / "seed0" / "cell.json").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="another configuration"):
        run_suite(out, SuiteConfig.fast_config(eval_users=13), backend="sequential",
                  progress=False)


def test_frontier_lift_interpolates_the_tuned_control_at_the_same_volume():
    from covercast.experiments.suite_benchmark import frontier_lifts

    pareto = pd.DataFrame({"population": "p", "seed_index": 0, "volume": [1, 2, 3],
                           "pushes_per_day": [1.0, 2.0, 3.0],
                           "opens_per_day": [0.10, 0.16, 0.18]})
    means = pd.DataFrame({"population": "p", "seed_index": 0, "policy": ["a", "b", "c"],
                          "pushes_per_day": [1.5, 2.0, 4.0],
                          "opens_per_day": [0.143, 0.16, 0.18]})
    fr = frontier_lifts(means, pareto).set_index("policy")
    assert fr.loc["a", "frontier_opens_per_day"] == pytest.approx(0.13)
    assert fr.loc["a", "frontier_lift"] == pytest.approx(0.1)
    assert fr.loc["b", "frontier_lift"] == pytest.approx(0.0)
    assert fr.loc["a", "inside"] and not fr.loc["c", "inside"]


def test_return_decomposition_splits_volume_from_matched_volume():
    from covercast.experiments.suite_benchmark import return_decomposition

    pareto = pd.DataFrame({"population": "p", "seed_index": 0, "volume": [1, 2],
                           "pushes_per_day": [1.0, 2.0], "return": [1.2, 1.8]})
    means = pd.DataFrame({"population": "p", "seed_index": 0,
                          "policy": ["gru-ppo", "static-tuned"],
                          "pushes_per_day": [0.5, 2.0], "return": [0.9, 1.8]})
    d = return_decomposition(means, pareto).iloc[0]
    assert d["frontier_return"] == pytest.approx(0.6)        # half-way from (0, 0) to (1, 1.2)
    assert d["volume_effect"] == pytest.approx(0.6 - 1.8)
    assert d["at_matched_volume"] == pytest.approx(0.3)
    assert d["difference"] == pytest.approx(-0.9) and d["inside"]
    means.loc[0, "pushes_per_day"] = 3.0                       # above the largest volume
    d = return_decomposition(means, pareto).iloc[0]
    assert not d["inside"] and d["frontier_return"] == pytest.approx(1.8)
    assert return_decomposition(means[means["policy"] != "gru-ppo"], pareto).empty


def test_upper_bound_check_flags_a_policy_above_the_reference():
    rows = []
    for pol, v in (("planning-oracle", 1.0), ("gru-ppo", 1.2), ("static-tuned", 0.5)):
        rows.append({"population": "p", "policy": pol, "metric": "return", "mean": v})
    ub = upper_bound_check(pd.DataFrame(rows)).set_index("policy")
    assert not ub.loc["gru-ppo", "oracle_at_least_as_good"]
    assert ub.loc["static-tuned", "oracle_at_least_as_good"]


@pytest.mark.parametrize("kw, match", [
    ({"policies": ["static", "gru-ppo"]}, "static-tuned"),
    ({"eval_populations": ["nope"]}, "Unknown population"),
    ({"pareto_volumes": [0]}, "pareto_volumes"),
    ({"seeds": 0}, "seeds"),
])
def test_bad_settings_fail_clearly(kw, match):
    with pytest.raises(ValueError, match=match):
        SuiteConfig(**kw).validate()


def test_cli_refuses_flags_of_the_other_benchmark(tmp_path, capsys):
    from covercast.experiments.cli import main

    rc = main(["experiment", "scheduling", "--suite", "--fast", "--eval-users", "5",
               "--out", str(tmp_path / "x")])
    assert rc == 2
    assert "--eval-users" in capsys.readouterr().err


def test_cli_pareto_volumes_reach_the_config(tmp_path, monkeypatch):
    """``--pareto-volumes`` and ``--suite-populations`` land in the saved config."""
    from covercast.experiments import suite_benchmark
    from covercast.experiments.cli import main

    seen = {}

    def fake_run_suite(out, config, **kw):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(suite_benchmark, "run_suite", fake_run_suite)
    with pytest.raises(SystemExit):
        main(["experiment", "scheduling", "--suite", "--fast", "--pareto-volumes", "2",
              "--suite-populations", "calibrated-v1", "irregular-v1", "--no-sensitivity",
              "--out", str(tmp_path / "x")])
    cfg = seen["config"]
    assert cfg.pareto_volumes == [2] and cfg.eval_populations == ["calibrated-v1",
                                                                  "irregular-v1"]
    assert cfg.sensitivity is False
