"""The scheduling benchmarks run with every bank kind (``--bank``): the covers reach training,
tuning and evaluation, the report says which bank, and a bad name fails before any work."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from covercast.experiments.scheduling import SchedulingConfig, run_scheduling
from covercast.experiments.suite_benchmark import SuiteConfig, run_suite
from covercast.generators.banks import bank_kwargs

POLICIES = ["static", "static-tuned", "heuristic", "bandit", "gru-ppo"]


def _suite(out, bank):
    # 96 users (not the fast run's 12): enough pushes that other covers change some outcome
    # (with 12 users, ~50 pushes a policy, identical opens under two banks were likely)
    cfg = SuiteConfig.fast_config(seeds=1, policies=POLICIES, eval_populations=["calibrated-v1"],
                                  sensitivity=False, pareto_volumes=[2], bank=bank,
                                  eval_users=96)
    return run_suite(out, cfg, backend="sequential", progress=False)


@pytest.fixture(scope="module")
def procedural_suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite_procedural")
    _suite(out, "procedural")
    return pd.read_csv(out / "episodes.csv")


@pytest.mark.parametrize("bank", ["diffusion", "vae-iat", "dcgan"])
def test_the_suite_benchmark_runs_with_every_learned_bank(small_named_banks, procedural_suite,
                                                          tmp_path, bank):
    report = _suite(tmp_path, bank)
    assert f"Covers: **{bank}** bank" in report.read_text()
    assert json.loads((tmp_path / "config.json").read_text())["bank"] == bank
    ckpt = json.loads((tmp_path / "cells" / "seed0" / "gru_ppo" / "checkpoint" /
                       "config.json").read_text())
    assert ckpt["env_kwargs"]["bank"] == bank             # GRU-PPO trained on these covers
    ep = pd.read_csv(tmp_path / "episodes.csv")
    assert set(ep["policy"]) == set(POLICIES) and len(ep) == len(procedural_suite)
    # the same users met other covers: the static control's opens differ somewhere
    key = ["policy", "episode"]
    a = ep.set_index(key)["opens"].sort_index()
    b = procedural_suite.set_index(key)["opens"].sort_index()
    assert not a.equals(b)


def test_the_suite_resumes_a_run_from_before_bank(tmp_path):
    """A config.json without ``bank`` (runs before ``--bank``) is the procedural bank."""
    cfg = SuiteConfig.fast_config(seeds=1, policies=["static", "static-tuned"],
                                  eval_populations=["calibrated-v1"], sensitivity=False,
                                  pareto_volumes=[2])
    run_suite(tmp_path, cfg, backend="sequential", progress=False)
    old = json.loads((tmp_path / "config.json").read_text())
    del old["bank"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    run_suite(tmp_path, cfg, backend="sequential", progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        run_suite(tmp_path, SuiteConfig(**{**cfg.to_dict(), "bank": "dcgan"}),
                  backend="sequential", progress=False)


def test_the_scheduling_benchmark_runs_with_a_bank_file(tmp_path):
    """A bank .npz reaches the fitted population's log and fit, training and evaluation."""
    from covercast.covers.procedural import procedural_bank

    path = procedural_bank(1, seed=21).save(tmp_path / "bank.npz")
    cfg = SchedulingConfig.fast_config(workers=1, seeds=1, policies=["static", "gru-ppo"],
                                       fitted_learners=[], bank=str(path))
    report = run_scheduling(tmp_path / "run", cfg, backend="sequential", progress=False)
    assert f"covers from the **{path}** bank" in report.read_text()
    ckpt = json.loads((tmp_path / "run" / "cells" / "seed0_default" / "gru_ppo" / "checkpoint" /
                       "config.json").read_text())
    assert ckpt["env_kwargs"]["bank"] == str(path)


def test_bank_names_are_checked_before_any_work(tmp_path):
    assert bank_kwargs("procedural") == {} and bank_kwargs(None) == {}
    assert bank_kwargs("diffusion") == {"bank": "diffusion"}
    with pytest.raises(ValueError, match="Unknown bank 'difusion'"):
        SchedulingConfig(bank="difusion").validate()
    with pytest.raises(ValueError, match="Unknown bank 'gan'"):
        SuiteConfig(bank="gan").validate()
    from covercast.experiments.cli import main

    assert main(["experiment", "scheduling", "--suite", "--fast", "--bank", "gan",
                 "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_cli_bank_flags_reach_the_configs(tmp_path, monkeypatch):
    from covercast.experiments import scheduling, suite_benchmark
    from covercast.experiments.cli import main

    seen = {}

    def fake(out, config, **kw):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(suite_benchmark, "run_suite", fake)
    monkeypatch.setattr(scheduling, "run_scheduling", fake)
    for extra in (["--suite", "--suite-policies", "static", "static-tuned"], []):
        with pytest.raises(SystemExit):
            main(["experiment", "scheduling", "--fast", "--bank", "vae-iat", *extra,
                  "--out", str(tmp_path / "x")])
        assert seen.pop("config").bank == "vae-iat"


def test_several_banks_run_the_suite_once_each_and_compare_them(tmp_path):
    from covercast.covers.procedural import procedural_bank
    from covercast.experiments.suite_benchmark import bank_comparison, run_suite_banks

    path = str(procedural_bank(1, seed=21).save(tmp_path / "other.npz"))
    cfg = SuiteConfig.fast_config(seeds=2, policies=["static", "static-tuned"],
                                  eval_populations=["calibrated-v1"], sensitivity=False,
                                  pareto_volumes=[2])
    report = run_suite_banks(tmp_path / "out", cfg, ["procedural", path],
                             backend="sequential", progress=False)
    assert (tmp_path / "out" / "bank_procedural" / "benchmark.md").exists()
    assert (tmp_path / "out" / "bank_other" / "benchmark.md").exists()
    text = report.read_text()
    assert "## calibrated-v1" in text and f"| static | {path} |" in text
    t = pd.read_csv(tmp_path / "out" / "banks.csv")
    first = t[t["bank"] == "procedural"]
    assert (first["opens_vs_first"].dropna() == 1.0).all()
    assert (t[t["policy"] == "static-tuned"]["return_vs_control"] == 0).all()
    # runs that differ in more than the bank are refused
    other = tmp_path / "out" / "bank_other" / "config.json"
    c = json.loads(other.read_text())
    other.write_text(json.dumps({**c, "eval_users": 99}))
    with pytest.raises(ValueError, match="differ in more than the bank"):
        bank_comparison({"procedural": tmp_path / "out" / "bank_procedural",
                         "other": tmp_path / "out" / "bank_other"}, tmp_path)
