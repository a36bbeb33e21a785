"""The hyperparameter-search runner: deterministic under a seed, resumable, refuses a changed
configuration and the test populations, writes its report."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from covercast.experiments import hpsearch  # noqa: E402
from covercast.experiments.cli import main  # noqa: E402
from covercast.experiments.hpsearch import (  # noqa: E402
    LEARNER_SPACE,
    SHARED_SPACE,
    HPSearchConfig,
    default_settings,
    run_hpsearch,
    sample_settings,
)

# tiny: 4 users x 1-day episodes, one rollout per trial, 8 validation users x 1 day
TINY = dict(trials=2, steps_per_trial=96, num_envs=4, train_horizon_days=1.0,
            horizon_days=1.0, history_days=1.0, val_users=8, quick=True, confirm_seeds=2)
TIMING = ["train_seconds", "seconds", "steps_per_second"]


def _csv(out, learners=None):
    df = pd.read_csv(out / "trials.csv").drop(columns=TIMING)
    if learners is not None:
        df = df[df["learner"].isin(learners)]
    return df.dropna(axis=1, how="all").reset_index(drop=True)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    out = tmp_path_factory.mktemp("hp") / "a"
    report = run_hpsearch(out, HPSearchConfig(**TINY), progress=False)
    return out, report


def test_same_seed_gives_the_same_settings_scores_and_curves(full, tmp_path):
    out, _ = full
    run_hpsearch(tmp_path / "b", HPSearchConfig(**TINY), progress=False)
    a, b = _csv(out), _csv(tmp_path / "b")
    assert len(a) == 6 and list(a["trial"]) == [0, 1] * 3
    pd.testing.assert_frame_equal(a, b)
    # the sampled-action score varies between trials, so the comparison is not of zeros
    assert a["sampled_score"].nunique() > 1
    for f in (out / "trials").glob("*.json"):
        ra, rb = json.loads(f.read_text()), json.loads((tmp_path / "b" / "trials" /
                                                        f.name).read_text())
        assert ra["curve"] == rb["curve"] and ra["settings"] == rb["settings"]
        assert ra["curve"]["global_step"]


def test_trial_0_is_each_learners_default(full):
    from covercast.agents.gru_ppo import GRUPPOConfig
    from covercast.agents.sb3 import train_sb3

    out, _ = full
    d = GRUPPOConfig()
    assert inspect.signature(train_sb3).parameters["n_stack"].default == \
        default_settings("ppo")["n_stack"]
    for learner in ("gru-ppo", "ppo", "recurrent-ppo"):
        rec = json.loads((out / "trials" / f"{learner}-0.json").read_text())
        assert rec["default"] and rec["settings"] == default_settings(learner)
        assert {k: rec["settings"][k] for k in SHARED_SPACE} == {
            k: getattr(d, k) for k in SHARED_SPACE}
        other = json.loads((out / "trials" / f"{learner}-1.json").read_text())
        assert set(other["settings"]) == set(SHARED_SPACE) | set(LEARNER_SPACE[learner])
    assert default_settings("gru-ppo")["hidden_size"] == d.hidden_size


def test_settings_are_seeded_per_trial_and_inside_the_space():
    cfg = HPSearchConfig(**TINY)
    more = dataclasses.replace(cfg, trials=5, learners=["ppo"], workers=3)
    assert more.digest() == cfg.digest()              # mutable fields are not the identity
    for learner in ("gru-ppo", "ppo", "recurrent-ppo"):
        s1 = sample_settings(cfg, learner, 1)
        assert s1 == sample_settings(more, learner, 1)
        assert s1 != sample_settings(cfg, learner, 2)
        for k, spec in {**SHARED_SPACE, **LEARNER_SPACE[learner]}.items():
            v = s1[k]
            assert (spec[1] <= v <= spec[2]) if spec[0] == "log-uniform" else v in spec[1]
    assert sample_settings(dataclasses.replace(cfg, seed=1), "ppo", 1) != \
        sample_settings(cfg, "ppo", 1)


def test_resume_runs_only_the_new_trials_and_equals_a_straight_run(full, tmp_path,
                                                                   monkeypatch):
    out, _ = full
    learners = ["gru-ppo", "ppo"]
    run_hpsearch(tmp_path, HPSearchConfig(**{**TINY, "trials": 1, "learners": learners}),
                 progress=False)
    ran = []
    real = hpsearch.run_trial

    def counting(task):
        ran.append((task["learner"], task["trial"]))
        return real(task)

    monkeypatch.setattr(hpsearch, "run_trial", counting)
    run_hpsearch(tmp_path, HPSearchConfig(**{**TINY, "learners": learners}), progress=False)
    assert sorted(ran) == [("gru-ppo", 1), ("ppo", 1)]
    pd.testing.assert_frame_equal(_csv(tmp_path), _csv(out, learners))
    ran.clear()
    run_hpsearch(tmp_path, HPSearchConfig(**{**TINY, "learners": learners}), progress=False)
    assert ran == []                                   # everything done: nothing runs


def test_a_changed_config_into_the_same_folder_is_refused(full):
    out, _ = full
    before = (out / "search.json").read_text()
    for change in ({"steps_per_trial": 192}, {"seed": 1}, {"val_users": 9}):
        with pytest.raises(ValueError, match="another configuration"):
            run_hpsearch(out, HPSearchConfig(**{**TINY, **change}), progress=False)
    assert (out / "search.json").read_text() == before


@pytest.mark.parametrize("population", ["high-fatigue-v1", "irregular-v1", "fitted-v1",
                                        "obd-timing-v1", "peaked-v0", "no-such-population"])
def test_only_training_populations_are_accepted(population, tmp_path):
    with pytest.raises(ValueError, match="training population"):
        run_hpsearch(tmp_path, HPSearchConfig(**{**TINY, "population": population}),
                     progress=False)
    assert not (tmp_path / "search.json").exists()
    HPSearchConfig(population="weak-taste-v1").validate()
    HPSearchConfig(population="default").validate()     # the alias of calibrated-v1


@pytest.mark.parametrize("change, field", [({"trials": 0}, "trials"),
                                           ({"steps_per_trial": 1.5}, "steps_per_trial"),
                                           ({"learners": ["dqn"]}, "learners"),
                                           ({"learners": []}, "learners"),
                                           ({"learners": ["ppo", "ppo"]}, "learners"),
                                           ({"workers": 0}, "workers"),
                                           ({"val_users": 1}, "val_users"),
                                           ({"confirm_seeds": -1}, "confirm_seeds"),
                                           ({"horizon_days": 0.01}, "horizon_days"),
                                           ({"history_days": -1}, "history_days")])
def test_bad_config_names_the_field(change, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        HPSearchConfig(**{**TINY, **change}).validate()
    with pytest.raises(ValueError, match="Unknown HPSearchConfig fields"):
        HPSearchConfig.from_dict({**TINY, "trails": 3})


def test_report_and_chosen_are_written(full):
    out, report = full
    text = report.read_text()
    chosen = json.loads((out / "chosen.json").read_text())
    assert set(chosen) == {"gru-ppo", "ppo", "recurrent-ppo"}
    table = pd.read_csv(out / "trials.csv")
    for learner, c in chosen.items():
        g = table[table["learner"] == learner]
        # ranked by the sampled return (the default rank_by); the greedy one is kept beside
        assert c["rank_by"] == "sampled" and c["score"] == g["sampled_score"].max()
        assert c["greedy_score"] == g.loc[g["trial"] == c["trial"], "score"].iloc[0]
        assert c["default_score"] == g.loc[g["trial"] == 0, "sampled_score"].iloc[0]
        assert c["settings"] == json.loads(
            (out / "trials" / f"{learner}-{c['trial']}.json").read_text())["settings"]
        assert f"## {learner} (best first)" in text
    assert chosen["ppo"]["train_sb3_kwargs"]["n_stack"] == chosen["ppo"]["settings"]["n_stack"]
    for s in ("## Search spaces", "log-uniform", "0 (default)", "## Throughput",
              "GRU-PPO / RecurrentPPO training throughput", "learning_curves.png",
              "## Chosen settings"):
        assert s in text
    assert (out / "learning_curves.png").stat().st_size > 1000


def test_cli_quick(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["experiment", "hpsearch", "--out", str(out), "--quick", "--quiet",
                 "--learners", "gru-ppo", "--trials", "1"]) == 0
    assert "report:" in capsys.readouterr().out
    cfg = json.loads((out / "search.json").read_text())
    assert cfg["quick"] and cfg["learners"] == ["gru-ppo"] and cfg["trials"] == 1
    assert main(["experiment", "hpsearch", "--out", str(tmp_path / "t"), "--quick",
                 "--quiet", "--population", "high-fatigue-v1"]) == 2


def test_results_do_not_depend_on_the_number_of_workers(full, tmp_path):
    out, _ = full
    learners = ["gru-ppo", "recurrent-ppo"]
    run_hpsearch(tmp_path, HPSearchConfig(**{**TINY, "learners": learners, "workers": 2}),
                 progress=False)
    pd.testing.assert_frame_equal(_csv(tmp_path), _csv(out, learners))


def test_rank_by_greedy_rewrites_the_report_without_training(full, tmp_path):
    """rank_by is not part of the search's identity: a rerun with another ranking reuses every
    trial and ranks by the greedy return."""
    import shutil

    out, _ = full
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = {p.name: p.stat().st_mtime_ns for p in (copy / "trials").iterdir()}
    cfg = HPSearchConfig.from_dict({**json.loads((copy / "search.json").read_text()),
                                    "rank_by": "greedy"})
    run_hpsearch(copy, cfg, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (copy / "trials").iterdir()} == before
    chosen = json.loads((copy / "chosen.json").read_text())
    table = pd.read_csv(copy / "trials.csv")
    for learner, c in chosen.items():
        assert c["rank_by"] == "greedy"
        assert c["score"] == table.loc[table["learner"] == learner, "score"].max()
    assert "by the **greedy** validation return" in (copy / "report.md").read_text()
    with pytest.raises(ValueError, match="rank_by"):
        HPSearchConfig(rank_by="best").validate()


def test_chosen_settings_and_default_are_confirmed_on_paired_fresh_seeds(full):
    """Each learner's chosen trial and trial 0 are retrained on ``confirm_seeds`` seeds that no
    trial used, the same seeds for every learner and settings; chosen.json and the report give
    the per-seed figures and their mean."""
    out, report = full
    config = HPSearchConfig(**TINY)
    seeds = hpsearch.confirm_train_seeds(config)
    assert len(seeds) == 2 == len(set(seeds))
    assert hpsearch.search_seeds(config)["train"] not in seeds
    chosen = json.loads((out / "chosen.json").read_text())
    confirm = pd.read_csv(out / "confirm.csv")
    for learner, c in chosen.items():
        mine = confirm[confirm["learner"] == learner]
        assert set(mine["trial"]) == {0, c["trial"]}
        for _, g in mine.groupby("trial"):
            assert sorted(g["k"]) == [0, 1] and sorted(g["train_seed"]) == sorted(seeds)
        conf = c["confirmation"]
        per_seed = mine[mine["trial"] == c["trial"]].sort_values("k")["sampled_score"]
        assert conf["seeds"] == 2 and conf["sampled_score"]["per_seed"] == list(per_seed)
        assert conf["sampled_score"]["mean"] == pytest.approx(per_seed.mean())
        lo, hi = conf["sampled_score"]["ci_low"], conf["sampled_score"]["ci_high"]
        assert lo <= per_seed.mean() <= hi
        if c["trial"] != 0:
            d = conf["sampled_minus_default"]
            assert d["pairs"] == 2 and d["diff"] == pytest.approx(
                per_seed.mean() - conf["default"]["sampled_score"]["mean"])
    text = report.read_text()
    assert "## Chosen settings over 2 training seeds" in text
    assert text.index("over 2 training seeds") < text.index("## Search spaces")


def test_confirmation_is_resumed_and_can_be_switched_off(full, tmp_path, monkeypatch):
    out, _ = full
    learners = ["gru-ppo"]
    run_hpsearch(tmp_path, HPSearchConfig(**{**TINY, "learners": learners,
                                             "confirm_seeds": 0}), progress=False)
    assert not (tmp_path / "confirm").exists()
    assert "training seeds" not in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "chosen.json").read_text())["gru-ppo"]["confirmation"] is None
    ran = []
    real = hpsearch.run_confirmation

    def counting(task):
        ran.append((task["trial"], task["k"]))
        return real(task)

    monkeypatch.setattr(hpsearch, "run_confirmation", counting)
    # confirm_seeds may be raised on a rerun (not part of the identity); no trial reruns
    run_hpsearch(tmp_path, HPSearchConfig(**{**TINY, "learners": learners}), progress=False)
    trials = sorted({0, json.loads((tmp_path / "chosen.json").read_text())["gru-ppo"]["trial"]})
    assert sorted(ran) == [(t, k) for t in trials for k in (0, 1)]
    a = pd.read_csv(tmp_path / "confirm.csv").drop(columns=["train_seconds"])
    b = pd.read_csv(out / "confirm.csv").drop(columns=["train_seconds"])
    b = b[b["learner"].isin(learners)].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)                 # the same as a straight run
    ran.clear()
    run_hpsearch(tmp_path, HPSearchConfig(**{**TINY, "learners": learners}), progress=False)
    assert ran == []
