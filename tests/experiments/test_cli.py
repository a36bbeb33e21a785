"""The ``covercast`` command line, end to end on tiny sizes."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from covercast.experiments.cli import main
from covercast.simulators.logs import read_log
from covercast.simulators.params import PopulationParams, default_params


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "params", "simulate-log", "fit", "calibrate", "bench"):
        assert cmd in out


def test_console_script_is_installed():
    res = subprocess.run([sys.executable, "-m", "covercast.experiments.cli", "--version"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "covercast" in res.stdout


def test_params_simulate_fit_round_trip(tmp_path, capsys):
    params = tmp_path / "params.json"
    assert main(["params", "--out", str(params)]) == 0
    assert PopulationParams.load(params) == default_params()

    log_path = tmp_path / "log.parquet"
    assert main(["simulate-log", "--params", str(params), "--days", "7", "--users", "300",
                 "--policy", "random", "--push-prob", "0.1", "--out", str(log_path),
                 "--quiet"]) == 0
    log = read_log(log_path)
    assert set(log["event"]) >= {"session", "push", "open"}
    assert log["user_id"].nunique() == 300
    assert (log.loc[log["event"] == "push", "propensity"] > 0).all()

    fitted = tmp_path / "fitted.json"
    assert main(["fit", str(log_path), "--out", str(fitted), "--segments", "3", "--quiet"]) == 0
    p = PopulationParams.load(fitted)
    assert len(p.segments) == 3
    assert "fitted" in capsys.readouterr().out


def test_simulate_log_is_deterministic(tmp_path):
    paths = []
    for name in ("a.csv", "b.csv"):
        path = tmp_path / name
        assert main(["simulate-log", "--days", "2", "--users", "50", "--seed", "7",
                     "--policy", "static", "--out", str(path), "--quiet"]) == 0
        paths.append(path)
    pd.testing.assert_frame_equal(read_log(paths[0]), read_log(paths[1]))


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "p.json"),
                 "--quiet"]) == 2
    assert "error" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"segments": []}))
    assert main(["simulate-log", "--params", str(bad), "--out", str(tmp_path / "x.csv"),
                 "--quiet"]) == 2
    assert "segments" in capsys.readouterr().err


def test_bench_population_runs_tiny(capsys):
    assert main(["bench", "population", "--n", "1", "50", "--days", "1"]) == 0
    out = capsys.readouterr().out
    assert "user" in out.lower()


def test_demo_runs_end_to_end_in_fast_mode(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--fast", "--out", str(out), "--quiet"]) == 0
    assert str(out / "report.md") in capsys.readouterr().out
    report = (out / "report.md").read_text()
    for agent in ("static-tuned (tuned control)", "static (seed paper's control)", "heuristic",
                  "thompson", "linucb", "gru-ppo", "planning oracle (hidden state)"):
        assert f"| {agent} |" in report
    for png in ("push_times.png", "metrics_by_policy.png", "opt_outs.png",
                "activity_and_open_rate.png", "ctr_by_segment.png"):
        assert (out / png).stat().st_size > 1000
    episodes = pd.read_csv(out / "episodes.csv")
    assert set(episodes["agent"]) == {"static-tuned", "static", "random", "heuristic",
                                      "thompson", "linucb", "gru-ppo", "planning-oracle"}
    assert (out / "gru_ppo" / "progress.csv").exists()

    # the tuned control: tuned at two pushes a day on the demo's episodes, named with its
    # schedule in the report
    control = json.loads((out / "control.json").read_text())
    tuning = control["tuning"]
    assert control["name"] == "static-tuned" and len(control["hours"]) == 2
    assert tuning["population"] == default_params().name
    assert tuning["pushes_per_day"] == 2
    assert (tuning["horizon_days"], tuning["history_days"]) == (3, 0)
    assert tuning["seed"] == 0 and tuning["spawn_key"][0] == 2    # not the evaluation's branch
    hours = " and ".join(f"{h:02d}:00" for h in control["hours"])
    assert f"pushes everyone at {hours} UTC with style `{tuning['style_name']}`" in report
    assert (out / "control_tuning.csv").exists()
    tuned = episodes[episodes["agent"] == "static-tuned"]

    # the comparisons: against the tuned control, and against the untuned one beside it
    vs_tuned = pd.read_csv(out / "policy_vs_tuned.csv")
    assert "static-tuned" not in set(vs_tuned["agent"])
    ret = vs_tuned[vs_tuned["metric"] == "return"]
    assert ret["baseline_mean"].to_numpy() == pytest.approx(tuned["return"].mean())
    assert {"opens_per_day", "dwell_min_per_day", "ctr"} <= set(vs_tuned["metric"])
    comp = pd.read_csv(out / "policy_vs_static.csv")
    assert "static" not in set(comp["agent"]) and "static-tuned" in set(comp["agent"])
    assert comp["p"].dropna().between(0, 1).all()
    assert comp.loc[comp["metric"] == "return", "p"].notna().all()
    assert "| policy | return | opens/user/day | dwell min/user/day | CTR |" in report
    assert "against the tuned control" in report
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_bench_envs_runs_tiny(capsys):
    assert main(["bench", "envs", "--steps", "200", "--n-users", "50", "--repeats", "1",
                 "--quiet"]) == 0
    assert "PushSchedule-v0" in capsys.readouterr().out


@pytest.mark.parametrize("agent,flag,mode", [
    ("thompson", None, "continual"),        # a bandit keeps learning across users by default
    ("linucb", "episode", "episode"),       # per-user reset, asked for by name
    ("heuristic", None, "episode"),         # a non-learning agent: reset before every user
    ("heuristic", "continual", "continual"),
])
def test_evaluate_learning_flag(tmp_path, capsys, agent, flag, mode):
    out = tmp_path / "ev"
    argv = ["evaluate", "--agent", agent, "--episodes", "2", "--horizon-days", "1",
            "--out", str(out), "--quiet"]
    if flag is not None:
        argv += ["--learning", flag]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["learning"] == mode
    assert config["learning_requested"] == (flag or "auto")
    assert f"learning: {mode}" in capsys.readouterr().out
    assert len(pd.read_csv(out / "episodes.csv")) == 2


def test_evaluate_learning_flag_rejects_other_values(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--agent", "thompson", "--learning", "forever", "--out",
              str(tmp_path / "ev")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--learning" in err and "invalid choice" in err
    assert all(m in err for m in ("auto", "episode", "continual"))
    assert not (tmp_path / "ev").exists()
