"""The scheduling benchmark in --fast mode: outputs, statistics, resume, backends."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from covercast.experiments.cli import main  # noqa: E402
from covercast.experiments.scheduling import (  # noqa: E402
    POLICIES,
    SchedulingConfig,
    gru_constraints,
    run_scheduling,
    shifted_params,
    static_rates,
)
from covercast.simulators.params import default_params  # noqa: E402

# one cell (seed 0, default population) of two policies: the backends are the subject
SMALL = {"policies": ["static", "gru-ppo"], "fitted_learners": [], "seeds": 1}


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sched") / "run"
    report = run_scheduling(out, SchedulingConfig.fast_config(workers=1), backend="sequential",
                            progress=False)
    return out, report


def _rows(out, policies=("static", "gru-ppo")):
    ep = pd.read_csv(out / "episodes.csv")
    ep = ep[(ep["population"] == "default") & ep["policy"].isin(policies)
            & (ep["seed_index"] == 0)]
    return ep.sort_values(["policy", "seed_index", "episode"]).reset_index(drop=True)


def test_shifted_population_changes_what_the_docstring_says():
    base = default_params()
    sh = shifted_params(base, hours_later=2)
    assert [s.weight for s in sh.segments] == [0.20, 0.30, 0.50]
    for a, b in zip(base.segments, sh.segments, strict=True):
        np.testing.assert_allclose(np.roll(a.activity, 2), b.activity)
        assert a.open_intercept == b.open_intercept
    assert sh.fatigue.half_life_h == pytest.approx(1.5 * base.fatigue.half_life_h)
    assert sh.opt_out.fatigue_coef == pytest.approx(1.5 * base.opt_out.fatigue_coef)
    assert base == default_params()          # the default is not modified
    with pytest.raises(ValueError, match="hours_later"):
        shifted_params(base, hours_later=1.5)


@pytest.mark.parametrize("field,value", [("seeds", 0), ("eval_users", 1), ("sb3_budget", "x"),
                                         ("policies", ["nope"]), ("horizon_days", 0),
                                         ("gru_constraints", "lagrange"),
                                         ("min_push_fraction", 0), ("opt_out_fraction", -1),
                                         ("history_days", -1), ("history_days", 400),
                                         ("deterministic_learners", "yes"),
                                         ("gru_eval_every", -1), ("gru_eval_users", 0),
                                         ("sb3_settings", {"a2c": {}}),
                                         ("sb3_settings", {"ppo": {"config": {"nope": 1}}}),
                                         ("sb3_settings", {"ppo": {"kwargs": 3}})])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        SchedulingConfig(**{field: value}).validate()


def test_fast_run_writes_every_output(fast_run):
    out, report = fast_run
    for name in ("episodes.csv", "seed_means.csv", "summary.csv", "vs_static.csv",
                 "paired_vs_static.csv", "curves.csv", "learners.csv", "target.json",
                 "target.md", "ctr_return_by_policy.png", "learning_curves.png", "run.json",
                 "populations/fitted.json", "populations/shifted.json"):
        assert (out / name).exists(), name
    text = report.read_text()
    assert "existing users (`history_days` 14" in text and "act greedily" in text
    summary = pd.read_csv(out / "summary.csv")
    pols = set(summary.loc[summary["population"] == "default", "policy"])
    assert pols == set(POLICIES)
    assert set(summary["population"]) == {"default", "fitted", "shifted"}
    # the fitted population's learners were trained on it; its baselines are default's rows
    fitted = summary[summary["population"] == "fitted"]
    assert set(fitted["policy"]) == {"random", "static", "heuristic", "bandit", "oracle",
                                     "gru-ppo"}
    a = fitted[(fitted["policy"] == "static")].set_index("metric")["mean"]
    b = summary[(summary["population"] == "default") & (summary["policy"] == "static")]\
        .set_index("metric")["mean"]
    pd.testing.assert_series_equal(a, b)
    text = report.read_text()
    assert "Issue 5 target" in text and "Shifted population" in text
    target = json.loads((out / "target.json").read_text())
    assert target["checks"]["significance"]["seeds"] == 2
    assert target["checks"]["significance"]["pass"] is False   # 2 seeds < 5: cannot pass
    # a --fast run is a smoke run: its target is not assessed, and says so instead of FAIL
    assert target["assessed"] is False and "--fast" in target["why_not_assessed"]
    tsection = text[text.index("Issue 5 target"):]
    assert "**Not assessed**" in tsection and "**FAIL**" not in tsection
    assert "nan %" not in text                    # a lift without pushes is n/a, not +nan %
    # GRU-PPO trained under the static scheduler's rates; the report says so
    learners = pd.read_csv(out / "learners.csv")
    g = learners[learners["learner"] == "gru-ppo"]
    np.testing.assert_allclose(g["max_pushes_per_day"], g["static_pushes_per_day"])
    np.testing.assert_allclose(g["min_pushes_per_day"], 0.5 * g["static_pushes_per_day"])
    assert (g["constraints"] == "static").all() and (g["lambda_max_pushes"] >= 0).all()
    assert "GRU-PPO's constraints" in text
    # the evaluated GRU-PPO policy is the best validated one (here: the only validation, at
    # the end of the 8 iterations of the fast config)
    assert (g["selected_step"] == g["steps"]).all()
    assert np.isfinite(g["selected_validation_return"]).all()
    assert "GRU-PPO's policy selection" in text
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves["learner"]) == {"gru-ppo", "ppo", "recurrent-ppo"}
    assert (curves.groupby(["learner", "train_population", "seed_index"])["global_step"]
            .apply(lambda s: s.is_monotonic_increasing)).all()
    v = curves[curves["validation_return"].notna()]
    assert set(v["learner"]) == {"gru-ppo"}
    assert (v.groupby(["train_population", "seed_index"]).size() == 1).all()


def test_static_rates_and_the_constraints_set_from_them():
    r = static_rates(None, users=300, horizon_days=3.0, seed=1)
    # the static scheduler pushes at 08:00 and 20:00: two a day while the user stays (an
    # opted-out user's last day is counted up to the opt-out, hence not exactly 2)
    assert r["pushes_per_day"] == pytest.approx(2.0, abs=0.05)
    assert 0 <= r["opt_outs_per_day"] < 0.05 and r["user_days"] <= 300 * 3.0
    cfg = SchedulingConfig(constraint_users=300, train_horizon_days=3.0, min_push_fraction=0.5,
                           opt_out_fraction=0.8)
    fields, facts = gru_constraints(cfg, None, seed=1)
    assert fields["max_pushes_per_day"] == pytest.approx(r["pushes_per_day"])
    assert fields["min_pushes_per_day"] == pytest.approx(0.5 * r["pushes_per_day"])
    if r["opt_outs_per_day"] > 0:
        assert fields["max_opt_outs_per_day"] == pytest.approx(0.8 * r["opt_outs_per_day"])
    assert facts["static"] == r
    none, facts = gru_constraints(SchedulingConfig(gru_constraints="none"), None, seed=1)
    assert none == {} and facts == {"mode": "none"}


def test_summary_is_the_mean_over_seed_means(fast_run):
    out, _ = fast_run
    ep = pd.read_csv(out / "episodes.csv")
    summary = pd.read_csv(out / "summary.csv")
    g = ep[(ep["population"] == "shifted") & (ep["policy"] == "random")]
    per_seed = g.groupby("seed_index").apply(lambda d: d["opens"].sum() / d["pushes"].sum())
    row = summary[(summary["population"] == "shifted") & (summary["policy"] == "random")
                  & (summary["metric"] == "ctr")].iloc[0]
    assert row["mean"] == pytest.approx(per_seed.mean())
    assert row["n"] == 2


def test_rerun_resumes_and_refuses_another_config(fast_run):
    out, _ = fast_run
    stamp = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*/cell.json")}
    run_scheduling(out, SchedulingConfig.fast_config(workers=1), backend="sequential",
                   progress=False)
    assert {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*/cell.json")} == stamp
    with pytest.raises(ValueError, match="eval_users"):
        run_scheduling(out, SchedulingConfig.fast_config(eval_users=7), progress=False)


def test_process_fallback_without_ray_matches_sequential(fast_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)       # `import ray` raises ImportError
    out = tmp_path / "proc"
    run_scheduling(out, SchedulingConfig.fast_config(workers=2, **SMALL), backend="auto",
                   progress=False)
    assert json.loads((out / "run.json").read_text())["backend"] == "process"
    pd.testing.assert_frame_equal(_rows(out), _rows(fast_run[0]))


def test_ray_backend(fast_run, tmp_path):
    ray = pytest.importorskip("ray")
    out = tmp_path / "ray"
    try:
        run_scheduling(out, SchedulingConfig.fast_config(workers=2, **SMALL), backend="ray",
                       progress=False)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    assert json.loads((out / "run.json").read_text())["backend"] == "ray"
    pd.testing.assert_frame_equal(_rows(out), _rows(fast_run[0]))


def test_cli_registers_the_experiments(capsys):
    for name, words in (("scheduling", ("--address", "minutes")), ("seeds", ("--from-run",))):
        with pytest.raises(SystemExit) as e:
            main(["experiment", name, "--help"])
        assert e.value.code == 0
        text = capsys.readouterr().out
        for w in words:
            assert w in text


def test_learners_are_evaluated_greedily_and_baselines_as_they_are(monkeypatch):
    import covercast.experiments.evaluate as ev
    from covercast.experiments import scheduling as sch

    seen = {}

    def fake(agents, env_id, episodes, seed, *, env_kwargs, learning, deterministic):
        (label,) = agents
        seen[label] = (deterministic, env_kwargs.get("history_days"))
        return pd.DataFrame({"agent": [label]})

    monkeypatch.setattr(ev, "evaluate_agents", fake)
    agents = {"static": None, "bandit": None, "gru-ppo": None, "ppo": None}
    sch._evaluate(agents, default_params(), SchedulingConfig(), 0)
    assert seen == {"static": (False, 14.0), "bandit": (False, 14.0), "gru-ppo": (True, 14.0),
                    "ppo": (True, 14.0)}
    sch._evaluate(agents, default_params(),
                  SchedulingConfig(deterministic_learners=False, history_days=0), 0)
    assert seen == {k: (False, None) for k in agents}


def _capture_config(monkeypatch) -> dict:
    """Replace run_scheduling by a stub that records the config the CLI built."""
    from covercast.experiments import scheduling as sch

    seen: dict = {}

    def fake_run(out, config, **kw):
        seen["config"] = config
        (Path(out)).mkdir(parents=True, exist_ok=True)
        (Path(out) / "target.json").write_text(json.dumps({"all_pass": True, "checks": {}}))
        return Path(out) / "report.md"

    monkeypatch.setattr(sch, "run_scheduling", fake_run)
    return seen


def test_cli_flags_reach_the_config(monkeypatch, tmp_path):
    seen = _capture_config(monkeypatch)
    assert main(["experiment", "scheduling", "--out", str(tmp_path / "r"), "--quiet",
                 "--gru-eval-every", "0", "--gru-eval-users", "64", "--train-horizon-days",
                 "7", "--opt-out-fraction", "0.8"]) == 0
    c = seen["config"]
    assert (c.gru_eval_every, c.gru_eval_users, c.train_horizon_days, c.opt_out_fraction) == \
        (0, 64, 7.0, 0.8)
    assert main(["experiment", "scheduling", "--out", str(tmp_path / "d"), "--quiet"]) == 0
    d = SchedulingConfig()
    c = seen["config"]
    assert (c.gru_eval_every, c.gru_eval_users, c.train_horizon_days, c.opt_out_fraction) == \
        (d.gru_eval_every, d.gru_eval_users, d.train_horizon_days, d.opt_out_fraction)


def test_population_flag_sets_the_base_population(monkeypatch, tmp_path):
    """``--population peaked-v0`` reproduces the runs before the calibrated default: its
    populations (default, shifted from it, fitted to it) come from that population."""
    from covercast.experiments import scheduling as sch
    from covercast.simulators.params import peaked_params

    seen = _capture_config(monkeypatch)
    assert main(["experiment", "scheduling", "--out", str(tmp_path / "r"), "--quiet",
                 "--population", "peaked-v0"]) == 0
    config = seen["config"]
    assert config.population == "peaked-v0"
    monkeypatch.setattr(sch, "fitted_params", lambda *a, truth=None, **k: truth)
    pops = sch.build_populations(tmp_path / "p", config)
    assert pops["default"].to_dict() == peaked_params().to_dict()
    assert pops["fitted"].to_dict() == peaked_params().to_dict()      # fitted to peaked-v0
    assert pops["shifted"].to_dict() == shifted_params(peaked_params()).to_dict()
    assert SchedulingConfig().population == "default"
    with pytest.raises(ValueError, match="population"):
        SchedulingConfig(population="").validate()
    # the suite benchmark has its own populations: --population is refused there
    assert main(["experiment", "scheduling", "--suite", "--population", "peaked-v0",
                 "--out", str(tmp_path / "s")]) == 2


CHOSEN = {"gru-ppo": {"trial": 2, "gruppo_config_fields": {"learning_rate": 0.002},
                      "train_sb3_kwargs": None},
          "ppo": {"trial": 1, "gruppo_config_fields": {"learning_rate": 0.0123, "ent_coef": 0.005,
                                                       "num_steps": 64},
                  "train_sb3_kwargs": {"n_stack": 2, "algo": "ppo"}}}


def test_sb3_settings_from_a_search_train_the_reference(monkeypatch, tmp_path):
    """``--sb3-settings`` reads a search's ``chosen.json``; ``_train_sb3`` trains with them
    (GRU-PPO's entry is not used: the benchmark keeps GRU-PPO's defaults)."""
    from covercast.experiments.hpsearch import load_sb3_settings
    from covercast.experiments.scheduling import _sb3_settings_md, _train_sb3

    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "chosen.json").write_text(json.dumps(CHOSEN))
    settings = load_sb3_settings(tmp_path / "search")
    assert set(settings) == {"ppo"}
    assert settings["ppo"]["kwargs"] == {"n_stack": 2} and settings["ppo"]["trial"] == 1
    seen = _capture_config(monkeypatch)
    assert main(["experiment", "scheduling", "--out", str(tmp_path / "r"), "--quiet",
                 "--sb3-settings", str(tmp_path / "search" / "chosen.json")]) == 0
    config = seen["config"]
    assert config.sb3_settings == settings
    assert "trial 1" in _sb3_settings_md(config.to_dict())
    assert "untuned" in _sb3_settings_md(SchedulingConfig().to_dict())
    fast = SchedulingConfig.fast_config(sb3_settings=settings)
    agent, curve, facts = _train_sb3("ppo", fast, None, 0, tmp_path / "ppo", None, False)
    assert agent.n_stack == 2
    assert agent.model.learning_rate == pytest.approx(0.0123)
    assert agent.model.n_steps == 64
    saved = json.loads((tmp_path / "ppo" / "config.json").read_text())
    assert saved["learning_rate"] == pytest.approx(0.0123) and saved["ent_coef"] == 0.005
    # and the suite benchmark, which trains no SB3 reference, refuses the flag
    assert main(["experiment", "scheduling", "--suite", "--sb3-settings",
                 str(tmp_path / "search"), "--out", str(tmp_path / "s")]) == 2


def test_load_sb3_settings_errors(tmp_path):
    from covercast.experiments.hpsearch import load_sb3_settings

    with pytest.raises(FileNotFoundError, match="chosen.json"):
        load_sb3_settings(tmp_path)
    (tmp_path / "chosen.json").write_text(json.dumps({"gru-ppo": CHOSEN["gru-ppo"]}))
    with pytest.raises(ValueError, match="no settings for `ppo`"):
        load_sb3_settings(tmp_path / "chosen.json")
