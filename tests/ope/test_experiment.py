"""Smoke tests of the OPE experiment, benchmark, OBD check and CLI wiring (tiny sizes)."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from covercast.experiments.bench_ope import bench_ope
from covercast.experiments.ope_experiment import (
    OPEExperimentConfig,
    parse_sizes,
    run_ope_experiment,
)


def test_experiment_writes_results(tmp_path) -> None:
    cfg = OPEExperimentConfig(sizes=(100,), seeds=1, horizon_days=1, truth_episodes=20,
                              n_bootstrap=20, fqe_iterations=5,
                              pairs=(("eps0.5-static", "random"),))
    report = run_ope_experiment(tmp_path, cfg, progress=False)
    text = report.read_text()
    assert "Mean relative error" in text and "random" in text
    res = pd.read_csv(tmp_path / "results.csv")
    assert set(res["estimator"]) == {"DM", "IPS", "SNIPS", "DR", "SNDR", "SwitchDR", "PDIS",
                                     "WPDIS", "SeqDR", "FQE"}
    assert (tmp_path / "error_vs_size.png").stat().st_size > 0
    with pytest.raises(ValueError, match="Unknown policy"):
        run_ope_experiment(tmp_path, OPEExperimentConfig(pairs=(("nope", "random"),)))


def test_parse_sizes() -> None:
    assert parse_sizes(["1k", "2500", "1M"]) == (1000, 2500, 1_000_000)
    with pytest.raises(ValueError, match="Bad size"):
        parse_sizes(["lots"])


def test_bench_small(tmp_path) -> None:
    res = bench_ope(n=5000, repeats=1, out=tmp_path / "b.json", progress=False)
    assert set(res["seconds"]) == {"bootstrap", "normal"} and (tmp_path / "b.json").exists()
    with pytest.raises(ValueError, match="n"):
        bench_ope(n=0)


def test_cli_registers(tmp_path, capsys) -> None:
    from covercast.experiments.cli import build_parser, main

    p = build_parser()
    args = p.parse_args(["experiment", "ope", "--sizes", "1k", "--seeds", "1"])
    assert args.func.__name__ == "cmd_experiment_ope" and args.sizes == ["1k"]
    assert p.parse_args(["ope-obd-check"]).func.__name__ == "cmd_obd_check"
    assert main(["bench", "ope", "--decisions", "2000", "--repeats", "1", "--quiet",
                 "--json", str(tmp_path / "b.json")]) == 0
    assert (tmp_path / "b.json").exists()


@pytest.mark.skipif(importlib.util.find_spec("obp") is None, reason="obd extra")
def test_obd_check(tmp_path) -> None:
    from covercast.ope.obd_check import bts_action_dist, obd_check
    from covercast.simulators.obd import load_obd

    table = obd_check(tmp_path, n_bootstrap=50)
    assert set(table["estimator"]) == {"DM", "IPS", "SNIPS", "DR", "SNDR"}
    assert (table["truth"] == load_obd("bts")["click"].mean()).all()
    assert "Assumptions" in (tmp_path / "obd_check.md").read_text()
    dist = bts_action_dist(load_obd("bts"), 80)
    assert dist.shape == (3, 80) and abs(dist.sum(axis=1) - 1).max() < 1e-12
    with pytest.raises(ValueError, match="method"):
        bts_action_dist(load_obd("bts"), 80, method="guess")
