"""Logged datasets: collection, exact propensities, save/load, evaluation probabilities."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from covercast.agents import ActivityHeuristic, RandomAgent, StaticScheduler
from covercast.envs import make
from covercast.ope.data import (
    EpsilonGreedyAgent,
    LoggedDataset,
    SoftmaxAgent,
    collect,
    evaluation_probabilities,
    load_dataset,
)


@pytest.fixture(scope="module")
def env():
    e = make("covercast/PushSchedule-v0", horizon_days=2)
    yield e
    e.close()


@pytest.fixture(scope="module")
def logged(env) -> LoggedDataset:
    return collect(env, EpsilonGreedyAgent(StaticScheduler(), 0.3), 12, seed=4)


def test_collect_is_seeded_and_propensities_are_exact(env, logged) -> None:
    again = collect(env, EpsilonGreedyAgent(StaticScheduler(), 0.3), 12, seed=4)
    assert again.frame.equals(logged.frame)
    f = logged.frame
    assert f["episode"].nunique() == 12 and len(f) == 12 * 48 - (48 - f.groupby(
        "episode").size()).sum()
    # static base: off the push hours the mixture gives no-push 0.7 + 0.3/6, others 0.05
    off = f[~f["obs_01"].round(6).isin([round(np.cos(2 * np.pi * h / 24), 6) for h in (8, 20)])]
    expect = np.where(off["action"] == 0, 0.7 + 0.05, 0.05)
    np.testing.assert_allclose(off["pscore"], expect)
    # the logged actions follow the logged probabilities: share of no-push off the hours
    assert abs((off["action"] == 0).mean() - 0.75) < 4 * np.sqrt(0.75 * 0.25 / len(off))
    assert f["truncated"].groupby(f["episode"]).last().sum() + f["terminated"].sum() == 12


def test_wrappers_sum_to_one_and_floor(env) -> None:
    x = np.random.default_rng(0).random((7, 40))
    for agent in (EpsilonGreedyAgent(RandomAgent(), 0.2), SoftmaxAgent(StaticScheduler(), 3.0)):
        p = agent.action_probabilities(x)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        assert (p > 0).all()
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedyAgent(RandomAgent(), 0.0)
    with pytest.raises(ValueError, match="temperature"):
        SoftmaxAgent(RandomAgent(), -1.0)


def test_save_load_roundtrip(tmp_path, logged) -> None:
    path = logged.save(tmp_path / "d.parquet")
    back = load_dataset(path)
    assert back.frame.equals(logged.frame)
    assert back.n_actions == 6 and back.metadata["logging_policy"]["epsilon"] == 0.3
    with pytest.raises(ValueError, match="parquet"):
        logged.save(tmp_path / "d.csv")
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing.parquet")


def test_evaluation_probabilities(logged) -> None:
    arr = logged.arrays()
    # memoryless: equal to a direct batch call
    rnd = RandomAgent(push_prob=0.2)
    np.testing.assert_allclose(evaluation_probabilities(rnd, logged),
                               rnd.action_probabilities(arr["obs"]))
    # with memory: the heuristic run over each episode gives valid distributions and, at the
    # first step of every episode, the fresh-state distribution
    h = ActivityHeuristic()
    p = evaluation_probabilities(h, logged)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    first = logged.frame["step"].to_numpy() == 0
    np.testing.assert_allclose(p[first], h.action_probabilities(arr["obs"][first]))
    with pytest.raises(ValueError, match="Agent"):
        evaluation_probabilities(object(), logged)


def test_empty_and_bad_datasets(logged) -> None:
    with pytest.raises(ValueError, match="empty"):
        LoggedDataset(logged.frame.iloc[:0], 6)
    bad = logged.frame.copy()
    bad.loc[0, "pscore"] = 0.0
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        LoggedDataset(bad, 6)


@pytest.mark.skipif(importlib.util.find_spec("minari") is None, reason="minari extra")
def test_minari_export(tmp_path, logged, monkeypatch) -> None:
    import minari

    # a relative data_path works (minari re-joins its root with joined paths)
    monkeypatch.chdir(tmp_path)
    ds = logged.to_minari("covercast/test-eps-v0", data_path="datasets")
    assert (tmp_path / "datasets" / "covercast" / "test-eps-v0").is_dir()
    assert ds.total_episodes == 12 and ds.total_steps == len(logged)
    ep = next(ds.iterate_episodes())
    g = logged.frame[logged.frame["episode"] == 0]
    np.testing.assert_array_equal(ep.actions, g["action"].to_numpy())
    np.testing.assert_allclose(ep.infos["pscore"][1:, 0], g["pscore"].to_numpy())
    # the recorded env is the logged one: a 2-day (48-step) horizon, not the registered 336
    assert logged.metadata["max_episode_steps"] == 48
    assert ds.env_spec.max_episode_steps == 48
    env = ds.recover_environment()
    assert env.spec.max_episode_steps == 48
    env.close()
    # an existing id is refused before anything is written
    with pytest.raises(FileExistsError, match="already exists"):
        logged.to_minari("covercast/test-eps-v0", data_path="datasets")
    assert ds.total_episodes == 12

    # a failed export leaves nothing behind, so the retry works
    real = minari.create_dataset_from_buffers

    def crash(*args, **kwargs):
        from minari.storage import get_dataset_path

        (get_dataset_path(kwargs["dataset_id"]) / "data").mkdir(parents=True)
        raise OSError("disk full")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", crash)
    with pytest.raises(OSError, match="disk full"):
        logged.to_minari("covercast/test-retry-v0", data_path="datasets")
    assert not (tmp_path / "datasets" / "covercast" / "test-retry-v0").exists()
    monkeypatch.setattr(minari, "create_dataset_from_buffers", real)
    assert logged.to_minari("covercast/test-retry-v0", data_path="datasets").total_episodes == 12


@pytest.mark.skipif(importlib.util.find_spec("obp") is None, reason="obd extra")
def test_obd_dataset() -> None:
    from covercast.ope.data import obd_dataset

    d = obd_dataset("random", "all")
    assert len(d) == 10_000 and d.n_actions == 240
    np.testing.assert_allclose(d.frame["pscore"], 1 / 80)


def test_recovered_env_of_a_log_without_a_recorded_horizon(logged) -> None:
    """An older log records neither its horizon nor `horizon_days`: the recovered env takes
    both from the longest episode (2 days, 48 slots), not the registered 14 days."""
    import gymnasium as gym

    meta = {k: v for k, v in logged.metadata.items() if k != "max_episode_steps"}
    meta["env_kwargs"] = {k: v for k, v in meta.get("env_kwargs", {}).items()
                          if k != "horizon_days"}
    old = LoggedDataset(logged.frame, logged.n_actions, meta)
    spec = old._minari_env_spec("covercast/PushSchedule-v0")
    assert spec.max_episode_steps == 48 and spec.kwargs["horizon_days"] == 2.0
    env = gym.make(spec)
    assert env.unwrapped.horizon_steps == 48
    env.close()
    # and a 30-minute-slot log of 48 steps is one day
    half = LoggedDataset(logged.frame, logged.n_actions,
                         {**meta, "env_kwargs": {"slot_minutes": 30}})
    spec = half._minari_env_spec("covercast/PushTiming-v0")
    assert spec.kwargs["horizon_days"] == 1.0 and spec.max_episode_steps == 48
