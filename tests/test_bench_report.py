"""`covercast bench all`: the report writer on a tiny run, the verdicts, skipped and failed
benchmarks (figures are not asserted, only what the report says about them)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from covercast.experiments import bench_report as br

TINY = dataclasses.replace(
    br.QUICK, population_ns=(40,), population_days=1, population_repeats=1, env_steps=30,
    recogym_steps=30, vector_users=20, vector_steps=2, env_repeats=1, split_ns=(30,),
    split_steps=3, split_repeats=1, scaling_ns=(30,), scaling_steps=2, ope_n=2000,
    ope_repeats=1, ope_fqe=False)


def test_report_of_a_tiny_run(tmp_path):
    # (bench envs itself: tests/envs/test_bench_envs.py; its verdicts: the next test)
    res = br.bench_all(TINY, sections=("population", "vector", "ope"), out=tmp_path,
                       command="tiny", progress=False)
    report = (tmp_path / "report.md").read_text()
    for heading in ("## Machine", "## Targets", "## Population engine", "## Vector env",
                    "## Off-policy estimators"):
        assert heading in report
    assert "Written by `tiny` (custom sizes)" in report
    assert "- CPU: " in report and "OMP_NUM_THREADS=" in report and "numpy " in report
    assert "**failed**" not in report and "**skipped**" not in report
    # targets set at N = 10,000 / 100,000 or at 1,000,000 decisions: a tiny run does not decide
    # them; the env layer / engine ratio is decided by the split's rows whatever their size
    targets = report.split("## Targets")[1].split("\n## ")[0].splitlines()
    verdicts = {line.split(" | ")[0][2:]: line.rsplit("|", 2)[1].strip()
                for line in targets if line.startswith("| ") and "verdict" not in line}
    assert len(verdicts) == 9
    for start, verdict in verdicts.items():
        if start.startswith(("Vector env >= 10 M", "Issue", "GRU-PPO", "Generators")):
            assert verdict == "not assessed", start
    assert verdicts["Env layer costs at most as much as the engine (env layer / engine <= 1)"] \
        in ("**holds**", "**does not hold**")
    assert verdicts["Every single-user env >= 10x RecoGym's random agent (medians, same run)"] \
        == "not assessed"                                 # bench envs did not run
    # one row per figure, every section present, the CSV is what was returned
    assert set(res["section"]) == {"population", "vector", "ope"}
    assert list(res.columns) == ["section", "item", "metric", "value", "unit", "target",
                                 "target_is", "holds", "note"]
    assert len(pd.read_csv(tmp_path / "results.csv")) == len(res)
    assert (tmp_path / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scaling = pd.read_csv(tmp_path / "scaling.csv")
    assert list(scaling["n_users"]) == [30, 30]
    assert set(scaling["target"]) == {"env", "engine"} and (scaling["peak_rss_mib"] > 0).all()
    split = pd.read_csv(tmp_path / "vector_split.csv")
    assert set(split["workload"]) == {"random", "schedule"}
    assert ((split["engine_ms"] + split["env_layer_ms"] - split["step_ms"]).abs() < 1e-9).all()


def section(name, rows):
    return br.Section(name, name, seconds=1.0, rows=rows)


def test_verdicts_follow_the_figures(tmp_path):
    sections = [
        section("envs", [
            br._row("PopulationVectorEnv (N=10,000)", "user-steps/s (median)", 12e6,
                    "user-steps/s", 10e6),
            br._row("covercast/PushTiming-v0", "x RecoGym random agent (medians, same run)",
                    14.0, "ratio", 10.0),
            br._row("covercast/CoverStyle-v0", "x RecoGym random agent (medians, same run)",
                    8.0, "ratio", 10.0)]),
        section("vector", [
            br._row("vector env N=10,000, random actions", "env layer / engine time", 0.4,
                    "ratio", 1.0, higher_is_better=False)]),
        section("rl", [br._row("GRU-PPO vs recurrent-ppo", "env-steps/s ratio (same run)",
                               13.0, "ratio", 10.0)]),
    ]
    br.write_report(sections, br.machine_info(), tmp_path, command="c", plan_name="quick",
                    started="now")
    lines = (tmp_path / "report.md").read_text().splitlines()

    def verdict(start):
        return next(line for line in lines if line.startswith(f"| {start}")).rsplit("|", 2)[1]

    assert "holds" in verdict("Vector env >= 10 M user-steps/s at N = 10,000 (random")
    assert "**does not hold**" in verdict("Every single-user env >= 10x RecoGym")
    assert "**holds**" in verdict("Env layer costs at most")
    assert "**holds**" in verdict("GRU-PPO >= 10x")
    assert "**holds**" in verdict("Issue 17: vector env >= 3 M")
    assert "not assessed" in verdict("Issue 6")


def test_missing_dependency_skips_and_an_error_fails_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(br, "_missing", lambda *mods: "sb3_contrib" if mods else "")

    def broken(plan, sec, out):
        raise RuntimeError("the engine broke")

    monkeypatch.setitem(br._RUNNERS, "ope", ("OPE", (), broken))
    res = br.bench_all(TINY, sections=("rl", "ope"), out=tmp_path, progress=False)
    report = (tmp_path / "report.md").read_text()
    assert "**skipped**: `sb3_contrib` is not installed" in report
    assert "**failed**: RuntimeError: the engine broke" in report
    assert res.empty


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="`plan` must be 'full', 'quick' or a BenchPlan"):
        br.bench_all("medium", out=tmp_path)
    with pytest.raises(ValueError, match="`sections` must be a non-empty subset"):
        br.bench_all("quick", sections=("population", "gpu"), out=tmp_path)


def test_cli_runs_one_benchmark(tmp_path, capsys):
    from covercast.experiments.cli import main

    assert main(["bench", "all", "--quick", "--only", "ope", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert f"Written by `covercast bench all --quick --only ope --out {tmp_path}`" in report
    assert "(quick sizes)" in report and "wrote" in capsys.readouterr().out
