"""evaluate / evaluate_agents / evaluate_vector: determinism, invariants, errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import covercast  # noqa: F401
from covercast.agents import (
    ActivityHeuristic,
    HiddenStateOracle,
    LinUCBStyleAgent,
    RandomAgent,
    StaticScheduler,
    ThompsonStyleAgent,
)
from covercast.agents.evaluate import (
    EPISODE_COLUMNS,
    LEARNING_CHOICES,
    LEARNING_MODES,
    evaluate,
    evaluate_agents,
    evaluate_vector,
    resolve_learning,
)

ENV = "covercast/PushSchedule-v0"
SHORT = {"horizon_days": 3}


def test_same_seed_same_frame_different_seed_different():
    a = evaluate(RandomAgent(push_prob=0.2), ENV, 4, seed=5, env_kwargs=SHORT)
    b = evaluate(RandomAgent(push_prob=0.2), ENV, 4, seed=5, env_kwargs=SHORT)
    pd.testing.assert_frame_equal(a, b)
    c = evaluate(RandomAgent(push_prob=0.2), ENV, 4, seed=6, env_kwargs=SHORT)
    assert not a["seed"].equals(c["seed"])
    assert not a[["pushes", "opens", "return"]].equals(c[["pushes", "opens", "return"]])


def test_same_seed_same_frame_for_a_learning_agent():
    frames = [evaluate(ThompsonStyleAgent(), ENV, 3, seed=1, env_kwargs=SHORT,
                       learning="continual") for _ in range(2)]
    pd.testing.assert_frame_equal(*frames)


def test_columns_dtypes_and_invariants():
    # pushing most hours: some users opt out, so both kinds of episode are checked
    df = evaluate(RandomAgent(push_prob=0.8), ENV, 12, seed=2, env_kwargs=SHORT)
    assert tuple(df.columns) == EPISODE_COLUMNS
    assert len(df) == 12 and df["episode"].tolist() == list(range(12))
    assert df["agent"].eq("random").all() and df["opted_out"].dtype == bool
    full = ~df["opted_out"]
    assert (df.loc[full, "length"] == 72).all() and np.allclose(df.loc[full, "days"], 3.0)
    with_push = df["pushes"] > 0
    np.testing.assert_allclose(df.loc[with_push, "ctr"],
                               df.loc[with_push, "opens"] / df.loc[with_push, "pushes"])
    assert df.loc[~with_push, "ctr"].isna().all()
    np.testing.assert_allclose(df["pushes_per_day"], df["pushes"] / df["days"])
    # the default reward: opens + 0.1 * dwell minutes - 5 * opted out
    np.testing.assert_allclose(df["return"], df["opens"] + 0.1 * df["dwell_min"]
                               - 5.0 * df["opted_out"], atol=1e-9)
    assert (df["opted_out"] == df["hours_to_opt_out"].notna()).all()
    out = df[df["opted_out"]]
    assert (out["hours_to_opt_out"] < out["days"] * 24).all()
    assert (out["length"] < 72).all()
    sat = df["satisfaction"]
    assert (sat.isna() == (df["surveys"] == 0)).all()
    assert sat.dropna().between(1, 5).all()
    assert (df[["likes", "shares", "comments"]].to_numpy() <= df[["opens"]].to_numpy()).all()
    assert df["opted_out"].any() and (~df["opted_out"]).any()


def test_static_agent_pushes_twice_a_day():
    df = evaluate(StaticScheduler(), ENV, 5, seed=3, env_kwargs=SHORT)
    stayed = df[~df["opted_out"]]
    assert len(stayed) > 0 and (stayed["pushes"] == 6).all()
    assert np.allclose(stayed["pushes_per_day"], 2.0)


def test_agents_meet_the_same_users():
    """Same seed: the same users with the same organic sessions, whatever the agent does."""
    df = evaluate_agents([StaticScheduler(), ActivityHeuristic()], ENV, 6, seed=4,
                         env_kwargs=SHORT)
    a = df[df["agent"] == "static"].reset_index(drop=True)
    b = df[df["agent"] == "heuristic"].reset_index(drop=True)
    np.testing.assert_array_equal(a["seed"], b["seed"])
    both = ~(a["opted_out"] | b["opted_out"])
    assert both.sum() >= 3
    np.testing.assert_array_equal(a.loc[both, "sessions"], b.loc[both, "sessions"])


def test_learning_modes():
    env = gym.make(ENV, max_episode_steps=72)
    per_episode = ThompsonStyleAgent(timing=StaticScheduler(hours=tuple(range(0, 24, 3))))
    df = evaluate(per_episode, env, 4, seed=0, learning="episode")
    assert per_episode.n_pushes_learned <= df["pushes"].iloc[-1]
    continual = ThompsonStyleAgent(timing=StaticScheduler(hours=tuple(range(0, 24, 3))))
    df = evaluate(continual, env, 4, seed=0, learning="continual")
    assert continual.n_pushes_learned > df["pushes"].iloc[-1]
    assert continual.n_pushes_learned + continual.n_pending <= df["pushes"].sum()
    with pytest.raises(ValueError, match="learning"):
        evaluate(continual, env, 1, seed=0, learning="forever")
    env.close()


def _bandit(cls=ThompsonStyleAgent):
    return cls(timing=StaticScheduler(hours=tuple(range(0, 24, 3))), seed=0)


@pytest.mark.parametrize("cls", [ThompsonStyleAgent, LinUCBStyleAgent])
def test_a_bandit_keeps_learning_across_users_by_default(cls):
    """learning="auto" (the default) is continual for a bandit: its posterior carries the
    pushes of every episode, as with learning="continual"; learning="episode" still resets."""
    kw = {"horizon_days": 1}
    default = _bandit(cls)
    df = evaluate(default, ENV, 3, seed=0, env_kwargs=kw)
    assert df.attrs["learning"] == "continual"
    assert df.attrs["learning_by_agent"] == {default.name: "continual"}
    assert default.n_pushes_learned > df["pushes"].iloc[-1]
    assert default.n_pushes_learned + default.n_pending <= df["pushes"].sum()
    continual = _bandit(cls)
    dc = evaluate(continual, ENV, 3, seed=0, env_kwargs=kw, learning="continual")
    pd.testing.assert_frame_equal(df, dc)
    assert continual.n_pushes_learned == default.n_pushes_learned
    # what it learned grows with the users it met
    fewer = _bandit(cls)
    evaluate(fewer, ENV, 2, seed=0, env_kwargs=kw)
    assert 0 < fewer.n_pushes_learned < default.n_pushes_learned
    per_user = _bandit(cls)
    de = evaluate(per_user, ENV, 3, seed=0, env_kwargs=kw, learning="episode")
    assert de.attrs["learning"] == "episode"
    assert per_user.n_pushes_learned <= de["pushes"].iloc[-1]
    np.testing.assert_array_equal(de["seed"], df["seed"])   # the same users either way


@pytest.mark.parametrize("make", [lambda: RandomAgent(push_prob=0.2, seed=3),
                                  lambda: ActivityHeuristic(seed=1), lambda: StaticScheduler()],
                         ids=["random", "heuristic", "static"])
def test_auto_leaves_non_learning_agents_per_episode(make):
    """A non-learning agent is still reset before every episode: the same frame as before the
    "auto" default (learning="episode"), and (for a stochastic one) not the continual frame."""
    auto = evaluate(make(), ENV, 3, seed=7, env_kwargs=SHORT)
    episode = evaluate(make(), ENV, 3, seed=7, env_kwargs=SHORT, learning="episode")
    pd.testing.assert_frame_equal(auto, episode, check_exact=True)
    assert auto.attrs["learning"] == "episode"
    if isinstance(make(), RandomAgent):
        continual = evaluate(make(), ENV, 3, seed=7, env_kwargs=SHORT, learning="continual")
        assert continual.attrs["learning"] == "continual"
        assert not auto[["pushes", "return"]].equals(continual[["pushes", "return"]])


def test_evaluate_agents_resolves_auto_per_agent():
    kw = {"horizon_days": 1}
    df = evaluate_agents({"heuristic": ActivityHeuristic(), "bandit": _bandit()}, ENV, 2,
                         seed=1, env_kwargs=kw)
    assert df.attrs["learning"] == "mixed"
    assert df.attrs["learning_by_agent"] == {"heuristic": "episode", "bandit": "continual"}
    alone = evaluate(_bandit(), ENV, 2, seed=1, env_kwargs=kw, learning="continual")
    pd.testing.assert_frame_equal(
        df[df["agent"] == "bandit"].reset_index(drop=True), alone.assign(agent="bandit"))
    same = evaluate_agents([StaticScheduler(), ActivityHeuristic()], ENV, 1, seed=1,
                           env_kwargs=kw, learning="continual")
    assert same.attrs["learning"] == "continual"
    assert same.attrs["learning_by_agent"] == {"static": "continual", "heuristic": "continual"}
    assert tuple(same.columns) == EPISODE_COLUMNS


def test_learning_values_and_errors():
    assert LEARNING_MODES == ("episode", "continual")
    assert LEARNING_CHOICES == ("auto", "episode", "continual")
    assert resolve_learning(_bandit()) == "continual"
    assert resolve_learning(StaticScheduler()) == "episode"
    for mode in LEARNING_MODES:
        assert resolve_learning(_bandit(), mode) == resolve_learning(StaticScheduler(),
                                                                     mode) == mode
    msg = r"`learning` must be one of \['auto', 'episode', 'continual'\].*'forever'"
    for bad in ("forever", "Auto", None):
        with pytest.raises(ValueError, match="`learning` must be one of"):
            evaluate(StaticScheduler(), ENV, 1, seed=0, env_kwargs=SHORT, learning=bad)
    with pytest.raises(ValueError, match=msg):
        evaluate_agents([StaticScheduler()], ENV, 1, seed=0, learning="forever")


def test_env_instance_and_id_agree():
    env = gym.make(ENV)
    a = evaluate(StaticScheduler(), env, 2, seed=9)
    b = evaluate(StaticScheduler(), ENV, 2, seed=9)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="env_kwargs"):
        evaluate(StaticScheduler(), env, 1, seed=0, env_kwargs={"slot_minutes": 30})
    env.close()


@pytest.mark.parametrize("env_id,agent", [
    ("covercast/PushTiming-v0", StaticScheduler(mode="timing")),
    ("covercast/CoverStyle-v0", ThompsonStyleAgent(mode="style")),
    ("covercast/PushTiming-v0", HiddenStateOracle(mode="timing")),
])
def test_other_envs(env_id, agent):
    df = evaluate(agent, env_id, 2, seed=0, env_kwargs={"horizon_days": 2})
    assert len(df) == 2 and (df["days"] <= 2.0 + 1e-9).all() and (df["days"] > 1.0).all()
    assert (df["pushes"] > 0).all()


def test_oracle_is_attached_by_evaluate():
    df = evaluate(HiddenStateOracle(), ENV, 2, seed=0, env_kwargs=SHORT)
    assert df["agent"].eq(HiddenStateOracle.default_name).all() and (df["pushes"] > 0).all()


def test_argument_errors():
    with pytest.raises(ValueError, match="Agent"):
        evaluate(lambda obs: 0, ENV, 1, seed=0)
    with pytest.raises(ValueError, match="episodes"):
        evaluate(StaticScheduler(), ENV, 0, seed=0)
    with pytest.raises(ValueError, match="None"):
        evaluate(StaticScheduler(), ENV, 1, seed=None)
    with pytest.raises(ValueError, match="env_or_id"):
        evaluate(StaticScheduler(), 42, 1, seed=0)
    with pytest.raises(ValueError, match="distinct"):
        evaluate_agents([StaticScheduler(), StaticScheduler()], ENV, 1, seed=0)


def test_evaluate_vector_rows_are_users():
    df = evaluate_vector(RandomAgent(push_prob=0.3), 50, seed=3, env_kwargs=SHORT)
    again = evaluate_vector(RandomAgent(push_prob=0.3), 50, seed=3, env_kwargs=SHORT)
    pd.testing.assert_frame_equal(df, again)
    assert tuple(df.columns) == EPISODE_COLUMNS and len(df) == 50
    assert df.attrs["learning"] == "continual"
    assert df["episode"].tolist() == list(range(50))
    full = ~df["opted_out"]
    assert (df.loc[full, "length"] == 72).all() and np.allclose(df.loc[full, "days"], 3.0)
    assert df["opted_out"].any()
    out = df[df["opted_out"]]
    assert (out["length"] < 72).all() and (out["hours_to_opt_out"] < 72).all()
    np.testing.assert_allclose(df["return"], df["opens"] + 0.1 * df["dwell_min"]
                               - 5.0 * df["opted_out"], atol=1e-9)
    with pytest.raises(ValueError, match="schedule"):
        evaluate_vector(StaticScheduler(mode="timing"), 5, seed=0)


def test_vector_and_single_env_agree_in_distribution():
    """Same agent, same population: the vector env's per-user push count and opt-out rate
    match the single-user env's (the static agent's pushes are deterministic per day)."""
    single = evaluate(StaticScheduler(), ENV, 20, seed=8, env_kwargs=SHORT)
    vec = evaluate_vector(StaticScheduler(), 400, seed=8, env_kwargs=SHORT)
    for df in (single, vec):
        stayed = df[~df["opted_out"]]
        assert (stayed["pushes"] == 6).all()
    assert abs(vec["sessions"].mean() - single["sessions"].mean()) < 4 * (
        single["sessions"].std() / np.sqrt(20) + vec["sessions"].std() / np.sqrt(400))


def test_on_step_sees_every_step_with_the_chosen_action():
    from covercast.agents import StaticScheduler
    from covercast.agents.evaluate import evaluate

    seen = []

    def record(label, episode, obs, action, reward, info):
        seen.append((label, episode, int(action), bool(info["pushed"])))

    df = evaluate(StaticScheduler(hours=(8, 20)), "covercast/PushSchedule-v0", episodes=2,
                  seed=3, env_kwargs={"horizon_days": 2}, on_step=record)
    assert len(seen) == int(df["length"].sum())
    assert {e for _, e, _, _ in seen} == {0, 1}
    assert all(label == df["agent"].iloc[0] for label, *_ in seen)
    # Every delivered push came from a push action.
    assert all(a > 0 for _, _, a, pushed in seen if pushed)
    assert sum(p for *_, p in seen) == int(df["pushes"].sum())
