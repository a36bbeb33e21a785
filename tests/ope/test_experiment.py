"""Smoke tests of the OPE experiment, benchmark, OBD check and CLI wiring (tiny sizes)."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from covercast.experiments.bench_ope import bench_ope
from covercast.experiments.ope_experiment import (
    OPEExperimentConfig,
    fast_config,
    parse_pairs,
    parse_sizes,
    run_ope_experiment,
)


def test_experiment_writes_results(tmp_path) -> None:
    cfg = fast_config(sizes=(100, 400), seq_sizes=(400,), truth_users=300, n_bootstrap=20,
                      fqe_iterations=50)
    report = run_ope_experiment(tmp_path, cfg, progress=False)
    text = report.read_text()
    assert "Main table" in text and "random" in text and "on-policy MC" in text
    res = pd.read_csv(tmp_path / "results.csv")
    assert set(res["estimator"]) == {"DM", "IPS", "SNIPS", "DR", "SNDR", "SwitchDR", "PDIS",
                                     "WPDIS", "SeqDR", "FQE"}
    # the sequential estimators only at seq_sizes; whole episodes of 24 decisions
    assert set(res.loc[res["kind"] == "sequential", "size"]) == {400}
    assert ((res["decisions"] >= res["size"]) & (res["decisions"] < res["size"] + 24)).all()
    assert ((res["rel_error"] - (res["estimate"] - res["truth"]).abs()
             / res["truth"].abs()).abs() < 1e-12).all()
    assert res["covered"].eq((res["ci_low"] <= res["truth"])
                             & (res["truth"] <= res["ci_high"])).all()
    truth = pd.read_csv(tmp_path / "truth.csv")
    assert truth["users"].tolist() == [300]
    assert (truth["return_ci_low"] < truth["return"]).all()
    for name in ("error_vs_size.png", "error_by_pair.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="Unknown policy"):
        run_ope_experiment(tmp_path, OPEExperimentConfig(pairs=(("nope", "random"),)))
    with pytest.raises(ValueError, match="seq_sizes"):
        run_ope_experiment(tmp_path, fast_config(seq_sizes=(7,)))


def test_parse_sizes_and_pairs() -> None:
    assert parse_sizes(["1k", "2500", "1M"]) == (1000, 2500, 1_000_000)
    with pytest.raises(ValueError, match="Bad size"):
        parse_sizes(["lots"])
    assert parse_pairs(["a:b", "c:d"]) == (("a", "b"), ("c", "d"))
    with pytest.raises(ValueError, match="Bad pair"):
        parse_pairs(["a-b"])


def test_bench_small(tmp_path) -> None:
    res = bench_ope(n=5000, repeats=1, out=tmp_path / "b.json", progress=False,
                    collect_decisions=480)
    assert set(res["seconds"]) == {"bootstrap", "normal"} and (tmp_path / "b.json").exists()
    c = res["collect"]
    assert c["vector_decisions"] <= 480 and c["single_decisions"] <= 480
    assert c["ratio"] == pytest.approx(c["vector_rate"] / c["single_rate"])
    with pytest.raises(ValueError, match="n"):
        bench_ope(n=0)


def test_cli_registers(tmp_path, capsys) -> None:
    from covercast.experiments.cli import build_parser, main

    p = build_parser()
    args = p.parse_args(["experiment", "ope", "--sizes", "1k", "--seeds", "1"])
    assert args.func.__name__ == "cmd_experiment_ope" and args.sizes == ["1k"]
    assert main(["experiment", "ope", "--fast", "--quiet", "--truth-users", "200",
                 "--sizes", "480",
                 "--pairs", "softmax-heuristic:eps0.5-heuristic",
                 "--out", str(tmp_path / "exp")]) == 0
    assert "eps0.5-heuristic" in (tmp_path / "exp" / "report.md").read_text()
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


def test_fqe_diagnosis_compares_the_variants(tmp_path) -> None:
    from covercast.experiments.ope_experiment import FQE_VARIANTS, run_fqe_diagnosis

    pd.DataFrame({"evaluation": ["random"], "return": [0.1]}).to_csv(tmp_path / "t.csv")
    cfg = fast_config(sizes=(480,), fqe_iterations=30)
    report = run_fqe_diagnosis(tmp_path, cfg, truth_csv=tmp_path / "t.csv", progress=False)
    res = pd.read_csv(tmp_path / "fqe_diagnosis.csv")
    assert list(res["variant"]) == list(FQE_VARIANTS)
    assert (res["truth"] == 0.1).all() and (res["iterations"] <= 30).all()
    # the variants are different fits of the same data
    assert res["estimate"].nunique() == 3
    assert "fqe_diagnosis.png" in report.read_text()
    with pytest.raises(ValueError, match="no truth"):
        run_fqe_diagnosis(tmp_path, fast_config(pairs=(("random", "static"),)),
                          truth_csv=tmp_path / "t.csv", progress=False)


def test_fqe_refits_show_progress_with_the_time_left(tmp_path, capsys) -> None:
    """The FQE bootstrap refits, the slow part at large sizes, show a progress bar when the
    experiment shows progress (issue 18, item 8)."""
    cfg = fast_config(sizes=(200,), seq_sizes=(200,), truth_users=100, n_bootstrap=10,
                      fqe_iterations=20, seeds=1, pairs=(("random", "static"),))
    run_ope_experiment(tmp_path / "on", cfg, progress=True)
    err = capsys.readouterr().err
    assert "FQE refit" in err
    run_ope_experiment(tmp_path / "off", cfg, progress=False)
    assert "FQE refit" not in capsys.readouterr().err
