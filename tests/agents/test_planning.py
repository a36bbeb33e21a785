"""The planning oracle: labelled as a hidden-state upper reference, plans sensibly, beats the
lookahead oracle and the deployable baselines.

Only relations that hold for any sensible population are asserted (the default population's
numbers are recalibrated from time to time)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import covercast  # noqa: F401
from covercast.agents import (
    ActivityHeuristic,
    HiddenStateOracle,
    LookaheadOracle,
    PlanningOracle,
    RandomAgent,
    StaticScheduler,
    ThompsonStyleAgent,
)
from covercast.agents.evaluate import evaluate, evaluate_vector
from covercast.agents.planning import default_fatigue_grid
from covercast.envs import make, make_vec
from covercast.envs.push_schedule import PushScheduleEnv
from covercast.simulators.params import default_params


def _run(env, agent, seed, steps=None):
    """One single-user episode: per decision (hours since start, action, plan values)."""
    obs, _ = env.reset(seed=seed)
    pop = env.unwrapped.population
    rows, start = [], True
    while True:
        a, _ = agent.predict(obs, episode_start=start)
        start = False
        rows.append((pop.now, a))
        obs, _, term, trunc, _ = env.step(a)
        if term or trunc or (steps is not None and len(rows) >= steps):
            return np.array(rows)


# ------------------------------------------------------------------------------ labels, errors
def test_labelled_as_a_hidden_state_upper_reference():
    agent = PlanningOracle()
    assert agent.name == "planning oracle (hidden state)"
    assert agent.config()["reads_hidden_state"] is True
    doc = PlanningOracle.__doc__.lower()
    assert "not a deployable" in doc or "not deployable" in doc
    assert "upper reference" in doc
    # the lookahead oracle is labelled a heuristic; its old name is the same class
    assert HiddenStateOracle is LookaheadOracle
    assert "heuristic" in LookaheadOracle().name and "hidden" in LookaheadOracle().name


def test_needs_an_environment(obs_factory):
    with pytest.raises(ValueError, match="not attached"):
        PlanningOracle().predict(obs_factory())
    with pytest.raises(ValueError, match="population"):
        PlanningOracle(env=object())


def test_needs_the_episode_length(obs_factory):
    env = PushScheduleEnv()                     # no TimeLimit: the oracle cannot tell the end
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="horizon_h"):
        PlanningOracle(env=env).predict(obs)
    a, _ = PlanningOracle(env=env, horizon_h=48).predict(obs)
    assert 0 <= a < 6


def test_argument_errors():
    with pytest.raises(ValueError, match="mode"):
        PlanningOracle(mode="style")
    with pytest.raises(ValueError, match="horizon_h"):
        PlanningOracle(horizon_h=0)
    with pytest.raises(ValueError, match="seen_horizon_h"):
        PlanningOracle(seen_horizon_h=0)
    with pytest.raises(ValueError, match="fatigue_grid"):
        PlanningOracle(fatigue_grid=[0.5, 1.0])           # must start at 0
    with pytest.raises(ValueError, match="fatigue_grid"):
        PlanningOracle(fatigue_grid=[0.0, 2.0, 1.0])      # increasing
    with pytest.raises(ValueError, match="logit_step"):
        PlanningOracle(logit_step=0.0)
    with pytest.raises(ValueError, match="tray"):
        PlanningOracle(tray="yes")
    with pytest.raises(ValueError, match="timing_style"):
        PlanningOracle(mode="timing", timing_style=9)
    with pytest.raises(ValueError, match="replan_every_h"):
        PlanningOracle(replan_every_h=-1.0)


def test_rows_must_be_the_population_users(obs_factory):
    env = gym.make("covercast/PushSchedule-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="row"):
        PlanningOracle(env=env).predict(np.stack([obs_factory()] * 2))
    env.close()


def test_slots_must_divide_an_hour_or_last_whole_hours():
    env = make("covercast/PushSchedule-v0", horizon_days=3, slot_minutes=90)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="90 minutes"):
        PlanningOracle(env=env).predict(obs)
    env.close()


def test_default_fatigue_grid():
    g = default_fatigue_grid(1.0, 35.1)
    assert g[0] == 0.0 and g[-1] == 35.1 and np.all(np.diff(g) > 0)
    assert np.allclose(g[:9], np.arange(9) * 0.25)


# ------------------------------------------------------------------------------ it is the best
def test_beats_the_lookahead_oracle_and_every_baseline():
    """Same users, same organic sessions (common random numbers): paired per-user differences
    of return, asserted three standard errors above zero."""
    kw = {"horizon_days": 7, "history_days": 14}
    n = 300
    plan = evaluate_vector(PlanningOracle(), n, seed=11, env_kwargs=kw)
    others = [LookaheadOracle(), StaticScheduler(), ActivityHeuristic(), RandomAgent(seed=1),
              ThompsonStyleAgent(seed=1)]
    for agent in others:
        df = evaluate_vector(agent, n, seed=11, env_kwargs=kw)
        d = plan["return"].to_numpy() - df["return"].to_numpy()
        se = d.std(ddof=1) / np.sqrt(n)
        assert d.mean() > 3 * se, (agent.name, d.mean(), se)


def test_single_user_envs_through_evaluate_and_determinism():
    kw = {"horizon_days": 2}
    a = evaluate(PlanningOracle(), "covercast/PushSchedule-v0", episodes=3, seed=4,
                 env_kwargs=kw)
    b = evaluate(PlanningOracle(), "covercast/PushSchedule-v0", episodes=3, seed=4,
                 env_kwargs=kw)
    pd.testing.assert_frame_equal(a, b)
    assert a["pushes"].sum() > 0 and np.all(a["length"] > 0)
    v1 = evaluate_vector(PlanningOracle(), 40, seed=2, env_kwargs={"horizon_days": 2})
    v2 = evaluate_vector(PlanningOracle(), 40, seed=2, env_kwargs={"horizon_days": 2})
    pd.testing.assert_frame_equal(v1, v2)


def test_planned_value_matches_what_it_earns():
    """The plan's value at the start (fatigue 0, empty tray) is, averaged over users, what the
    policy earns: the DP's model of pushes is the simulator's (within sampling error and the
    plan's small approximations)."""
    n = 400
    env = make_vec(n, horizon_days=3, history_days=14)
    agent = PlanningOracle(env=env)
    obs, _ = env.reset(seed=8)
    first = np.ones(n, dtype=bool)
    start = np.ones(n, dtype=bool)
    ret = np.zeros(n)
    predicted = None
    while first.any():
        a, _ = agent.predict(obs, episode_start=start)
        if predicted is None:
            P = agent._P
            predicted = np.array([P["plans"][P["plan"][i]]["ck"][P["pos"][i], 0, 0, 0]
                                  for i in range(n)], dtype=np.float64)
        obs, r, term, trunc, _ = env.step(a)
        ret[first] += r[first]
        done = term | trunc
        first &= ~done
        start = done
    se = ret.std(ddof=1) / np.sqrt(n)
    assert abs(ret.mean() - predicted.mean()) < 4 * se + 0.05 * predicted.mean()
    env.close()


# ------------------------------------------------------------------------------ the DP's logic
def test_pushes_less_when_opting_out_costs_more():
    """The larger the opt-out hazard and the penalty of an opt-out, the fewer the pushes; when
    the penalty dwarfs any open, none at all."""
    risky = default_params().with_parts(opt_out={"base_hazard": 0.05, "fatigue_coef": 0.05})

    def pushes(params, w):
        env = make_vec(60, horizon_days=3, params=params, w_optout=w)
        agent = PlanningOracle(env=env)
        obs, _ = env.reset(seed=3)
        count, start = 0, np.ones(60, dtype=bool)
        for _ in range(72):
            a, _ = agent.predict(obs, episode_start=start)
            count += int((a > 0).sum())
            obs, _, term, trunc, _ = env.step(a)
            start = term | trunc
        env.close()
        return count

    counts = [pushes(risky, w) for w in (0.0, 0.5, 1000.0)]
    assert counts[0] >= counts[1] >= counts[2] == 0 and counts[0] > 0
    assert pushes(default_params(), 5.0) > pushes(risky, 5.0)


def test_without_fatigue_costs_it_pushes_whenever_a_push_is_worth_something():
    """No fatigue effect, no opt-outs and the tray ignored: pushes do not interact, so the plan
    is to push whenever the immediate value is positive -- every hour."""
    params = default_params().with_parts(open={"beta_fatigue": 0.0},
                                         opt_out={"base_hazard": 0.0, "fatigue_coef": 0.0})
    env = make_vec(20, horizon_days=1, params=params)
    agent = PlanningOracle(env=env, tray=False)
    obs, _ = env.reset(seed=0)
    for _ in range(24):
        v = agent.plan_values(20)
        assert np.all(v["decide"])
        np.testing.assert_array_equal(v["push"], v["value_now"].max(axis=1) > 0)
        assert np.all(v["push"])
        a, _ = agent.predict(obs)
        np.testing.assert_array_equal(a, v["style"] + 1)
        obs, *_ = env.step(a)
    env.close()


def test_the_tray_makes_it_wait_for_an_unseen_push():
    """With the tray planned, a push waiting unseen is replaced less often than by the plan
    that ignores it, and the waiting push's remaining value is reported."""
    collapsed, seen_pending = {}, False
    for tray in (True, False):
        env = make_vec(100, horizon_days=2, history_days=14)
        agent = PlanningOracle(env=env, tray=tray)
        obs, _ = env.reset(seed=5)
        total = 0
        for _ in range(48):
            v = agent.plan_values(100)
            pend = env.unwrapped.population.hidden_state()["pending_push"] >= 0
            if tray and pend.any():
                assert np.all(v["pending"][pend] > 0) and np.all(v["pending"][~pend] == 0)
                seen_pending = True
            a, _ = agent.predict(obs)
            obs, *_ = env.step(a)
            total += env.unwrapped.population.last_outcome.collapsed_push_id.size
        collapsed[tray] = total
        env.close()
    assert seen_pending
    assert collapsed[True] < collapsed[False]


def test_replaced_users_are_replanned():
    """In the vector env an opted-out user is replaced; the new user gets a plan of its own,
    starting when it arrives, for a whole episode. (Everybody is pushed every hour here, so
    that users opt out; the oracle is asked each step.)"""
    params = default_params().with_parts(opt_out={"base_hazard": 0.2})
    env = make_vec(30, horizon_days=2, params=params)
    agent = PlanningOracle(env=env)
    obs, _ = env.reset(seed=1)
    start = np.ones(30, dtype=bool)
    replaced = 0
    for _ in range(6):
        agent.predict(obs, episode_start=start)
        assert agent.users_planned == 30 + replaced
        obs, _, term, trunc, _ = env.step(np.ones(30, dtype=np.int64))
        start = term | trunc
        replaced += int(start.sum())
    assert replaced > 0
    now = env.unwrapped.population.now
    agent.predict(obs, episode_start=start)
    P = agent._P
    assert agent.users_planned == 30 + replaced
    assert np.all(P["t0"][start] == now) and np.all(P["H"][start] == 48)
    assert np.all(P["t0"][~start] < now)


def test_timing_layout_and_sub_hour_slots():
    env = gym.make("covercast/PushTiming-v0", style=2)
    obs, _ = env.reset(seed=0)
    agent = PlanningOracle.for_env(env)
    v = agent.plan_values(1)
    assert agent.mode == "timing" and v["value_now"].shape == (1, 1)
    assert agent.predict(obs)[0] in (0, 1)
    env.close()
    # 30-minute slots: decisions on whole hours only
    env = make("covercast/PushSchedule-v0", horizon_days=1, slot_minutes=30)
    agent = PlanningOracle(env=env)
    rows = _run(env, agent, seed=2)
    pushed_at = rows[rows[:, 1] > 0, 0]
    assert pushed_at.size > 0 and np.allclose(pushed_at % 1.0, 0.0)
    env.close()


def test_scores_a_push_as_the_lookahead_oracle_does():
    """One implementation scores pushes for both oracles: the planning oracle's value of a push
    now (from its table of the cover-averaged reward) is the lookahead oracle's."""
    env = make_vec(50, horizon_days=3, history_days=14)
    obs, _ = env.reset(seed=6)
    plan, look = PlanningOracle(env=env), LookaheadOracle(env=env)
    for _ in range(30):
        v, w = plan.plan_values(50), look.push_values(50)
        assert np.all(v["decide"])
        np.testing.assert_allclose(v["value_now"], w["value_now"], rtol=1e-3, atol=1e-5)
        obs, *_ = env.step(plan.predict(obs)[0])
    env.close()


def test_replans_every_so_many_hours():
    env = make("covercast/PushSchedule-v0", horizon_days=2)
    agent = PlanningOracle(env=env, replan_every_h=6)
    rows = _run(env, agent, seed=1)
    assert (rows[:, 1] > 0).sum() > 0
    assert agent.users_planned == 8                  # at hours 0, 6, ..., 42
    env.close()
