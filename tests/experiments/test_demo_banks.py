"""The demo takes ``--bank``: its policy comparison, tuning and logs use those covers."""

import json

import pandas as pd
import pytest

from covercast.covers.procedural import procedural_bank
from covercast.experiments import demo


def test_the_policy_comparison_uses_the_bank(tmp_path):
    path = str(procedural_bank(1, seed=21).save(tmp_path / "bank.npz"))
    kw = dict(episodes=6, horizon_days=2, seed=3, progress=False)
    for d, bank in (("a", "procedural"), ("b", path)):
        (tmp_path / d).mkdir()
        demo.compare_policies(tmp_path / d, bank=bank, **kw)
    a, b = (pd.read_csv(tmp_path / d / "episodes.csv") for d in "ab")
    assert list(a["agent"]) == list(b["agent"])
    assert not a["return"].equals(b["return"])          # same users, other covers
    assert demo._env_kwargs(2, path)["bank"] == path and "bank" not in demo._env_kwargs(2)


def test_a_fast_demo_with_a_bank_file_says_so(tmp_path):
    path = str(procedural_bank(1, seed=21).save(tmp_path / "bank.npz"))
    report = demo.run_demo(tmp_path / "run", fast=True, progress=False, bank=path,
                           ppo_steps=0, workers=1)
    assert f"covers from the **{path}** bank" in report.read_text()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["bank"] == path


def test_an_unknown_bank_fails_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="Unknown bank 'gan'"):
        demo.run_demo(tmp_path / "run", fast=True, bank="gan")
    assert not (tmp_path / "run").exists()
    from covercast.experiments.cli import main

    assert main(["demo", "--fast", "--bank", "gan", "--out", str(tmp_path / "x")]) == 2
