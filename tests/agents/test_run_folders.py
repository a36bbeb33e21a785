"""Commands that write a run folder never mix two runs, and untrusted pickles are not loaded
(issue 18, items 2 and 6)."""

from __future__ import annotations

import json

import pytest

from covercast._io import prepare_output_dir

TINY = ["--env", "covercast/PushTiming-v0", "--steps", "96", "--num-envs", "4",
        "--horizon-days", "1", "--quiet"]


def test_prepare_output_dir_refuses_a_folder_with_files_unless_told(tmp_path):
    assert prepare_output_dir(tmp_path / "new").is_dir()            # missing: created
    (tmp_path / "empty").mkdir()
    prepare_output_dir(tmp_path / "empty")                           # empty: accepted
    run = tmp_path / "run"
    run.mkdir()
    (run / "progress.csv").write_text("old\n")
    with pytest.raises(FileExistsError, match="progress.csv.*--resume.*--overwrite"):
        prepare_output_dir(run)
    assert (run / "progress.csv").read_text() == "old\n"             # nothing touched
    prepare_output_dir(run, resume=True)
    assert (run / "progress.csv").exists()
    prepare_output_dir(run, overwrite=True)
    assert list(run.iterdir()) == []
    with pytest.raises(ValueError, match="contradict"):
        prepare_output_dir(run, resume=True, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        prepare_output_dir(tmp_path / "file", overwrite=True)
    (run / "a").write_text("x")
    with pytest.raises(FileExistsError, match="pass --overwrite") as e:
        prepare_output_dir(run, resume_flag=None)
    assert "--resume" not in str(e.value)


def test_train_onto_a_run_needs_resume_or_overwrite(tmp_path, capsys):
    pytest.importorskip("torch")
    from covercast.experiments.cli import main

    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    ckpt = (run / "checkpoint" / "model.safetensors").read_bytes()
    stale = run / "eval" / "stale.csv"
    stale.parent.mkdir()
    stale.write_text("from an older run\n")
    capsys.readouterr()
    # without a flag: refused, with the flags named, and nothing written
    assert main(["train", *TINY, "--seed", "1", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "already holds a run folder" in err and "--resume" in err and "--overwrite" in err
    assert (run / "checkpoint" / "model.safetensors").read_bytes() == ckpt
    assert main(["train", *TINY, "--resume", "--overwrite", "--out", str(run)]) == 2
    assert "contradict" in capsys.readouterr().err
    # --overwrite starts again: the stale results are gone, a fresh run is there
    assert main(["train", *TINY, "--seed", "1", "--overwrite", "--out", str(run)]) == 0
    assert not stale.exists()
    assert json.loads((run / "checkpoint" / "config.json").read_text())["seed"] == 1
    # --resume on a folder without a run says so
    assert main(["train", *TINY, "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "no GRU-PPO run to continue" in capsys.readouterr().err


def test_evaluate_onto_results_needs_overwrite(tmp_path, capsys):
    from covercast.experiments.cli import main

    ev = tmp_path / "ev"
    args = ["evaluate", "--agent", "static", "--env", "covercast/PushTiming-v0", "--episodes",
            "2", "--horizon-days", "1", "--quiet", "--out", str(ev)]
    assert main(args) == 0
    first = (ev / "episodes.csv").read_text()
    capsys.readouterr()
    assert main([*args, "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "already holds a results folder" in err and "--overwrite" in err
    assert "--resume" not in err
    assert (ev / "episodes.csv").read_text() == first
    assert main([*args, "--seed", "3", "--overwrite"]) == 0
    assert json.loads((ev / "config.json").read_text())["seed"] == 3


def test_an_sb3_run_folder_loads_only_when_trusted(tmp_path, capsys):
    pytest.importorskip("stable_baselines3")
    from covercast.experiments.cli import main

    run = tmp_path / "sb3"
    assert main(["train", "--agent", "ppo", *TINY, "--out", str(run)]) == 0
    args = ["evaluate", "--agent", str(run), "--env", "covercast/PushTiming-v0", "--episodes",
            "2", "--horizon-days", "1", "--quiet"]
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "cloudpickle" in err and "--trust-pickle" in err
    assert not (tmp_path / "a").exists()             # refused before anything was written
    assert main([*args, "--trust-pickle", "--out", str(tmp_path / "b")]) == 0


def test_unknown_env_id_and_bad_log_suffix_fail_at_once_with_a_clear_error(tmp_path, capsys,
                                                                          monkeypatch):
    from covercast.experiments.cli import main

    assert main(["evaluate", "--agent", "static", "--env", "covercast/Nope-v0", "--quiet",
                 "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert "--env: unknown environment id 'covercast/Nope-v0'" in err
    assert "covercast/PushSchedule-v0" in err
    assert not (tmp_path / "ev").exists()
    assert main(["train", *TINY[2:], "--env", "Nope-v0", "--out", str(tmp_path / "r")]) == 2
    assert "unknown environment id" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()

    import covercast.simulators.population as population

    def never(*a, **k):
        raise AssertionError("simulated before checking --out")

    monkeypatch.setattr(population, "simulate_log", never)
    assert main(["simulate-log", "--days", "1", "--users", "5", "--quiet",
                 "--out", str(tmp_path / "log.txt")]) == 2
    assert "suffixes" in capsys.readouterr().err


def test_a_corrupted_checkpoint_is_named_with_what_is_wrong(tmp_path, capsys):
    """A truncated weights file or a broken JSON file of a GRU-PPO run gives an error naming
    the file (issue 18, item 5), from the Python API and the CLI."""
    pytest.importorskip("torch")
    from covercast.agents.gru_ppo import GRUPPOAgent, GRUPPOTrainer
    from covercast.experiments.cli import main

    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    ck = run / "checkpoint"
    weights = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(weights[:100])            # truncated
    with pytest.raises(ValueError, match=r"model\.safetensors cannot be read.*truncated"):
        GRUPPOAgent.load(ck)
    with pytest.raises(ValueError, match=r"model\.safetensors cannot be read"):
        GRUPPOTrainer.load(ck, progress=False)
    capsys.readouterr()
    assert main(["evaluate", "--agent", str(run), "--env", "covercast/PushTiming-v0",
                 "--episodes", "1", "--horizon-days", "1", "--quiet",
                 "--out", str(tmp_path / "ev")]) == 2
    assert "model.safetensors cannot be read" in capsys.readouterr().err
    (ck / "model.safetensors").write_bytes(weights)
    (ck / "state.json").write_text('{"iteration": 1,')                 # cut JSON
    with pytest.raises(ValueError, match=r"state\.json is not valid JSON"):
        GRUPPOAgent.load(ck)
    (ck / "state.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"state\.json is missing"):
        GRUPPOAgent.load(ck)


def test_a_run_folder_without_weights_says_so(tmp_path):
    from covercast.experiments.agents_cli import load_agent

    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "progress.csv").write_text("global_step\n")
    with pytest.raises(FileNotFoundError, match="holds no model.safetensors"):
        load_agent(str(run), "covercast/PushTiming-v0")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="not a run folder.*notes.txt"):
        load_agent(str(other), "covercast/PushTiming-v0")
