"""The tuned static control: grid search over push hours and style on training users."""

from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import covercast  # noqa: F401  (registers the env ids)
import covercast.agents
from covercast.agents import StaticScheduler
from covercast.agents.base import hour_of_day
from covercast.agents.evaluate import evaluate, evaluate_vector
from covercast.agents.tuned import (
    SCHEDULE_COLUMNS,
    TunedStaticScheduler,
    TuneResult,
    evaluate_static_schedules,
    reachable_hours,
    tune_static_schedule,
)
from covercast.covers.attributes import ATTRIBUTE_NAMES
from covercast.simulators.params import default_params, weekly_profile

PEAK_HOUR = 15
BEST_STYLE = 3


def planted_params(peak_hour: int = PEAK_HOUR, best_style: int = BEST_STYLE):
    """One segment, active mostly around ``peak_hour``:00-:59, that loves ``best_style``."""
    base = default_params()
    n_styles = len(base.styles)
    style_taste = [-1.0] * n_styles
    style_taste[best_style] = 3.0
    seg = dataclasses.replace(
        base.segments[0], name="planted", weight=1.0,
        activity=weekly_profile([(peak_hour + 0.5, 0.5, 2.0)], floor=0.02),
        taste_mean=[0.0] * len(ATTRIBUTE_NAMES) + style_taste, taste_sd=0.1,
        open_intercept=-1.0)
    # pushes seen late (in the next session, near the peak) lose most of their appeal
    return dataclasses.replace(base, segments=[seg], name="planted").with_parts(
        open={"stale_tau_h": 1.0})


@pytest.fixture(scope="module")
def planted():
    return planted_params()


@pytest.fixture(scope="module")
def small_result(planted):
    """Two pushes a day, a few users, 2 days: quick."""
    return tune_static_schedule(planted, pushes_per_day=2, n_users=30, horizon_days=2, seed=3,
                                n_final=3)


# ============================================================================ the search
def test_finds_the_planted_optimum(planted):
    for search in ("coordinate", "joint"):
        res = tune_static_schedule(planted, pushes_per_day=1, n_users=150, horizon_days=4,
                                   seed=0, search=search)
        assert res.hours == (PEAK_HOUR,), (search, res.summary())
        assert res.style == BEST_STYLE, (search, res.summary())
        assert res.style_name == planted.styles[BEST_STYLE]
        final = res.table[res.table["stage"] == "final"]
        assert final["chosen"].sum() == 1
        assert tuple(final.loc[final["chosen"], "hours"].item()) == res.hours
        scored = res.table[res.table["stage"] == "score"]     # fresh users, after the pick
        assert len(scored) == 1 and scored["chosen"].all()
        assert scored["score"].item() == res.score and scored["users"].item() == 600
        # the planted schedule beats the seed paper's control clearly
        assert res.score > 2 * evaluate_static_schedules(
            [((8, 20), 0)], planted, n_users=150, horizon_days=4, seed=1)["return"].item()


def test_search_is_deterministic_under_a_seed(planted, small_result):
    again = tune_static_schedule(planted, pushes_per_day=2, n_users=30, horizon_days=2, seed=3,
                                 n_final=3)
    pd.testing.assert_frame_equal(small_result.table, again.table)
    assert (again.hours, again.style, again.score) == (small_result.hours, small_result.style,
                                                       small_result.score)
    other = tune_static_schedule(planted, pushes_per_day=2, n_users=30, horizon_days=2, seed=4,
                                 n_final=3)
    assert len(other.hours) == 2 and 0 <= other.style < len(planted.styles)
    assert not np.allclose(other.table["return"].to_numpy()[:50],
                           small_result.table["return"].to_numpy()[:50])
    # a SeedSequence works the same as its int
    ss = tune_static_schedule(planted, pushes_per_day=2, n_users=30, horizon_days=2,
                              seed=np.random.SeedSequence(3), n_final=3)
    pd.testing.assert_frame_equal(small_result.table, ss.table)


def test_respects_pushes_per_day(planted, small_result):
    res = small_result
    assert len(res.hours) == 2 and len(set(res.hours)) == 2
    assert all(len(h) == 2 for h in res.table["hours"])
    # all 276 pairs at one style in the hours stage
    hours_stage = res.table[(res.table["stage"] == "hours") & (res.table["round"] == 1)]
    assert len(hours_stage) == 276 and hours_stage["hours"].nunique() == 276
    assert (res.table["pushes_per_day"] <= 2 + 1e-9).all()
    assert (res.table["pushes_per_day"] > 1.5).all()
    assert set(res.table["stage"]) <= {"start", "hours", "style", "final", "score"}
    assert res.info["candidates"] == len(res.landscape())
    assert res.info["user_episodes"] == int(res.table["users"].sum())
    assert list(res.table.columns) == ["stage", "round", *SCHEDULE_COLUMNS, "score", "score_se",
                                       "chosen"]


def test_local_search_when_the_hour_sets_are_too_many(planted):
    res = tune_static_schedule(planted, pushes_per_day=3, n_users=8, horizon_days=1, seed=0,
                               max_passes=1, max_rounds=1, styles=[BEST_STYLE], n_final=2)
    assert len(res.hours) == 3 and res.style == BEST_STYLE
    hours_stage = res.table[res.table["stage"] == "hours"]
    assert len(hours_stage) == 1 + 3 * 21          # the set and every one-hour move
    assert "style" not in set(res.table["stage"])    # one style: nothing to choose
    start = res.table[res.table["stage"] == "start"]
    assert len(start) == 8                           # 3 hours 8 apart, 8 rotations


def test_objective_opens_and_slot_grid(planted):
    res = tune_static_schedule(planted, pushes_per_day=1, n_users=20, horizon_days=1, seed=0,
                               objective="opens", env_kwargs={"slot_minutes": 120},
                               n_final=2)
    assert (res.table["score"] == res.table["opens"]).all()
    assert all(h % 2 == 0 for hs in res.table["hours"] for h in hs)
    assert reachable_hours(120) == tuple(range(0, 24, 2))
    assert reachable_hours(30) == tuple(range(24))
    assert res.info["objective"] == "opens"


def test_one_schedule_matches_evaluate_vector(planted):
    df = evaluate_static_schedules([((9, 17), 1)], planted, n_users=40, horizon_days=2, seed=7)
    ev = evaluate_vector(StaticScheduler(hours=(9, 17), style=1), 40, 7,
                         env_kwargs={"params": planted, "horizon_days": 2})
    row = df.iloc[0]
    assert row["users"] == 40
    assert row["return"] == pytest.approx(ev["return"].mean())
    assert row["opens"] == pytest.approx(ev["opens"].mean())
    assert row["opt_out_rate"] == pytest.approx(ev["opted_out"].mean())
    assert row["pushes_per_day"] == pytest.approx(ev["pushes"].mean() / 2)
    assert row["return_se"] == pytest.approx(ev["return"].std(ddof=1) / np.sqrt(40))


# ============================================================================ bad arguments
@pytest.mark.parametrize("kwargs, match", [
    ({"pushes_per_day": 0}, "pushes_per_day"),
    ({"pushes_per_day": 25}, "pushes_per_day"),
    ({"pushes_per_day": True}, "pushes_per_day"),
    ({"pushes_per_day": 13, "env_kwargs": {"slot_minutes": 120}}, "reaches"),
    ({"objective": "ctr"}, "objective"),
    ({"search": "random"}, "search"),
    ({"styles": []}, "styles"),
    ({"styles": [7]}, "style"),
    ({"styles": ["nope"]}, "Unknown style"),
    ({"styles": [1, 1]}, "distinct"),
    ({"n_users": 1}, "n_users"),
    ({"n_final": 0}, "n_final"),
    ({"horizon_days": 0}, "horizon_days"),
    ({"seed": -1}, "seed"),
    ({"env_kwargs": {"daily_budget": 10}}, "daily_budget"),
    ({"env_kwargs": {"params": None}}, "params"),
    ({"search": "joint", "max_joint": 100}, "max_joint"),
])
def test_bad_arguments(planted, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tune_static_schedule(planted, **kwargs)


def test_bad_schedules_and_params():
    with pytest.raises(ValueError, match="params"):
        tune_static_schedule(params=42)
    with pytest.raises(ValueError, match="style"):
        evaluate_static_schedules([((8, 20), 5)], n_users=4)
    with pytest.raises(ValueError, match="slot grid"):
        evaluate_static_schedules([((7,), 0)], n_users=4, env_kwargs={"slot_minutes": 120})
    with pytest.raises(ValueError, match="distinct"):
        evaluate_static_schedules([((8, 8), 0)], n_users=4)
    with pytest.raises(ValueError, match="empty"):
        evaluate_static_schedules([], n_users=4)


def test_agent_argument_errors(small_result):
    with pytest.raises(ValueError, match="style"):
        TunedStaticScheduler(hours=(8, 20), style=5)
    with pytest.raises(ValueError, match="styles"):
        TunedStaticScheduler(n_styles=3, hours=small_result.hours, style=0 if
                             small_result.style != 0 else 1, tuning={"n_styles": 5})
    with pytest.raises(ValueError, match="hours"):
        TunedStaticScheduler(hours=(1, 2), style=small_result.style, tuning=small_result)
    with pytest.raises(ValueError, match="style"):
        TunedStaticScheduler(hours=small_result.hours, style=(small_result.style + 1) % 5,
                             tuning=small_result)
    with pytest.raises(ValueError, match="tuning"):
        TunedStaticScheduler(hours=(8, 20), style=0, tuning=[1, 2])
    with pytest.raises(ValueError, match="format"):
        TunedStaticScheduler.from_dict({"hours": [8], "style": 0})


# ============================================================================ the agent
def test_agent_config_and_round_trip(planted, small_result, random_obs_factory):
    agent = TunedStaticScheduler(hours=small_result.hours, style=small_result.style,
                                 tuning=small_result)
    assert isinstance(agent, StaticScheduler)
    assert agent.name == "static (tuned)" and agent.result is small_result
    cfg = agent.config()
    assert cfg["hours"] == list(small_result.hours) and cfg["style"] == small_result.style
    assert cfg["pushes_per_day"] == 2
    t = cfg["tuning"]
    assert t["population"] == "planted" and t["n_users"] == 30 and t["seed"] == 3
    assert t["objective"] == "return" and t["score"] == pytest.approx(small_result.score)
    d = json.loads(json.dumps(agent.to_dict()))
    back = TunedStaticScheduler.from_dict(d)
    assert back.config() == cfg
    assert back.result is None
    x = random_obs_factory(200, seed=1)
    np.testing.assert_array_equal(back.predict(x)[0], agent.predict(x)[0])
    np.testing.assert_array_equal(back.action_probabilities(x), agent.action_probabilities(x))
    # the untuned control is unchanged
    assert StaticScheduler().config()["hours"] == [8, 20]
    bare = TunedStaticScheduler(hours=(8, 20), style=1, name="mine")
    assert bare.tuning == {} and TunedStaticScheduler.from_dict(bare.to_dict()).name == "mine"


def test_tune_constructor_and_evaluation(planted):
    agent = TunedStaticScheduler.tune(planted, pushes_per_day=1, n_users=20, horizon_days=1,
                                      seed=0, n_final=2)
    assert isinstance(agent.result, TuneResult)
    assert agent.hours == agent.result.hours and agent.style == agent.result.style
    assert agent.n_styles == len(planted.styles)
    # the population vector env
    df = evaluate_vector(agent, 50, 0, env_kwargs={"params": planted, "horizon_days": 2})
    assert len(df) == 50 and (df["agent"] == "static (tuned)").all()
    assert (df["pushes"] <= 2).all() and df["pushes"].sum() > 0
    # the single-user env, through gym.make
    env = gym.make("covercast/PushSchedule-v0", params=planted, max_episode_steps=48)
    pushed_at = []

    def on_step(label, episode, obs, action, reward, info):
        if action:
            h = hour_of_day(np.asarray(obs, dtype=np.float64)[None, :])[0]
            pushed_at.append((int(round(h)) % 24, int(action) - 1))

    df1 = evaluate(agent, env, episodes=2, seed=0, on_step=on_step)
    env.close()
    assert len(df1) == 2 and (df1["pushes"] <= 2).all()
    assert pushed_at and {h for h, _ in pushed_at} <= set(agent.hours)
    assert {s for _, s in pushed_at} == {agent.style}


def test_exported_from_the_package():
    assert covercast.agents.TunedStaticScheduler is TunedStaticScheduler
    assert covercast.agents.tune_static_schedule is tune_static_schedule
    assert {"TunedStaticScheduler", "TuneResult", "tune_static_schedule"} <= set(
        covercast.agents.__all__)
