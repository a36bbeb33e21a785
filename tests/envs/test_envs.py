"""The single-user environments: checkers, determinism, pickling, errors, episode ends."""

from __future__ import annotations

import dataclasses
import math
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env as gym_check_env

import covercast
from covercast.envs import (
    ENV_IDS,
    OBS_INDEX,
    CoverStyleEnv,
    PushScheduleEnv,
    PushTimingEnv,
    episode_steps,
    make,
)
from covercast.envs.rewards import OpenDwellReward
from covercast.simulators.params import default_params
from covercast.testing import check_env

stable_baselines3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.env_checker import check_env as sb3_check_env  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*Box observation space maximum.*")


def rollout(env: gym.Env, seed: int, actions: list[int]) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    out = [obs.copy()]
    for a in actions:
        obs, r, te, tr, info = env.step(a)
        out.append((obs.copy(), r, te, tr, sorted(info.items())))
        if te or tr:
            obs, _ = env.reset()
            out.append(obs.copy())
    return out


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


# ------------------------------------------------------------------ registration & checkers
def test_import_registers_every_id_with_its_horizon():
    assert set(ENV_IDS) <= set(gym.registry)
    # no registered TimeLimit: the envs truncate at their horizon_days and report the steps
    assert all(gym.spec(i).max_episode_steps is None for i in ENV_IDS)
    assert gym.make("covercast/PushSchedule-v0").spec.max_episode_steps == 336
    assert gym.make("covercast/PushTiming-v0").spec.max_episode_steps == 336
    assert gym.make("covercast/CoverStyle-v0").spec.max_episode_steps == 28


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_id_passes_gymnasium_sb3_and_covercast_checkers(env_id):
    env = gym.make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env, warn=False)
    check_env(env, n_steps=150)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_rollout_other_seed_other_rollout(env_id):
    env = gym.make(env_id)
    actions = list(np.random.default_rng(0).integers(env.action_space.n, size=120))
    a = rollout(env, 11, actions)
    b = rollout(gym.make(env_id), 11, actions)
    c = rollout(env, 12, actions)
    assert same(a, b)
    assert not same(a, c)


def test_spaces_and_action_meaning():
    n_styles = len(default_params().styles)
    assert gym.make("covercast/PushSchedule-v0").action_space == gym.spaces.Discrete(1 + n_styles)
    assert gym.make("covercast/PushTiming-v0").action_space == gym.spaces.Discrete(2)
    assert gym.make("covercast/CoverStyle-v0").action_space == gym.spaces.Discrete(n_styles)
    for env_id in ENV_IDS:
        space = gym.make(env_id).observation_space
        assert space.shape == (40,) and space.dtype == np.float32


# ------------------------------------------------------------------ pickling
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_mid_episode_continues_identically(env_id):
    env = gym.make(env_id)
    env.reset(seed=3)
    rng = np.random.default_rng(1)
    for _ in range(20):
        _, _, te, _, _ = env.step(int(rng.integers(env.action_space.n)))
        if te:
            env.reset()
    clone = pickle.loads(pickle.dumps(env))
    actions = list(rng.integers(env.action_space.n, size=80))

    def go(e):
        out = []
        for a in actions:
            obs, r, te, tr, info = e.step(a)
            out.append((obs.copy(), r, te, tr, sorted(info.items())))
            if te or tr:
                out.append(e.reset()[0].copy())
        return out

    assert same(go(env), go(clone))


# ------------------------------------------------------------------ responses and rewards
def test_info_carries_the_raw_responses_and_reward_is_their_function():
    env = gym.make("covercast/PushSchedule-v0", w_dwell=0.5, w_optout=2.0)
    env.reset(seed=0)
    seen_open = False
    for t in range(336):
        obs, r, te, tr, info = env.step(1 + t % 5 if t % 7 == 0 else 0)
        assert set(info) >= {"pushed", "opened", "dwell_s", "likes", "shares", "comments",
                             "surveys", "opted_out", "sessions", "style", "cover", "blocked"}
        assert r == pytest.approx(info["opened"] + 0.5 * info["dwell_s"] / 60
                                  - 2.0 * info["opted_out"])
        if info["pushed"]:
            assert info["style"] == (t % 5) and info["cover"] >= 0
        else:
            assert info["style"] == -1 and info["cover"] == -1
        seen_open |= info["opened"] > 0
        if info["surveys"]:
            assert 1 <= info["satisfaction"] <= 5
        else:
            assert "satisfaction" not in info
        if te or tr:
            env.reset()
    assert seen_open


def test_custom_reward_fn_is_called_with_the_responses():
    calls = []

    def reward(r):
        calls.append(dict(r))
        return 10.0 * r["sessions"]

    env = PushScheduleEnv(reward_fn=reward)
    env.reset(seed=1)
    total = sum(env.step(0)[1] for _ in range(48))
    assert len(calls) == 48
    assert total == 10.0 * sum(c["sessions"] for c in calls) and total > 0


def test_cover_style_step_spans_the_slots_until_the_next_push_hour():
    env = CoverStyleEnv(push_hours=(8, 20))
    obs, _ = env.reset(seed=0)
    assert env.population.now == 8.0
    assert obs[OBS_INDEX["hour_sin"]] == pytest.approx(math.sin(2 * math.pi * 8 / 24), abs=1e-6)
    assert obs[OBS_INDEX["sessions_per_day"]] >= 0
    _, _, _, _, info = env.step(2)
    assert env.population.now == 20.0 and info["slots"] == 12 and info["pushed"] == 1
    assert info["style"] == 2
    _, _, _, _, info = env.step(0)
    assert env.population.now == 32.0 and info["slots"] == 12


def test_push_timing_fixed_and_random_style():
    fixed = PushTimingEnv(style="noir")
    fixed.reset(seed=0)
    styles = {fixed.step(1)[4]["style"] for _ in range(30)}
    assert styles == {default_params().styles.index("noir")}
    rand = PushTimingEnv(style="random")
    rand.reset(seed=0)
    styles = set()
    for _ in range(60):
        _, _, te, _, info = rand.step(1)
        styles.add(info["style"])
        if te:
            rand.reset()
    assert len(styles) >= 3
    waited = PushTimingEnv()
    waited.reset(seed=0)
    assert all(waited.step(0)[4]["pushed"] == 0 for _ in range(24))


# ------------------------------------------------------------------ episode end
def certain_opt_out_params():
    p = default_params()
    return dataclasses.replace(p, opt_out=dataclasses.replace(p.opt_out, base_hazard=50.0))


@pytest.mark.parametrize("env_cls,push", [(PushScheduleEnv, 3), (PushTimingEnv, 1),
                                          (CoverStyleEnv, 0)])
def test_opt_out_terminates_and_no_push_follows(env_cls, push):
    env = env_cls(params=certain_opt_out_params())
    env.reset(seed=0)
    if env_cls is not CoverStyleEnv:
        for _ in range(30):              # waiting never ends the episode
            assert not env.step(0)[2]
    obs, r, te, tr, info = env.step(push)
    assert te and not tr and info["opted_out"] and info["pushed"] == 1
    assert r == pytest.approx(info["opened"] + 0.1 * info["dwell_s"] / 60 - 5.0)
    with pytest.raises(ResetNeeded, match="opted out"):
        env.step(push)
    env.reset(seed=1)                    # a new user
    assert env.population.hidden_state()["opted_out"].sum() == 0


def test_truncation_by_time_limit_after_the_horizon():
    env = gym.make("covercast/PushSchedule-v0")
    env.reset(seed=0)
    for t in range(336):
        _, _, te, tr, _ = env.step(0)
        assert not te
        assert tr == (t == 335)


def test_five_minute_slots():
    env = make("covercast/PushSchedule-v0", horizon_days=1, slot_minutes=5)
    assert env.spec.max_episode_steps == 288
    obs, _ = env.reset(seed=0)
    hours = []
    for t in range(288):
        hours.append(math.atan2(obs[0], obs[1]) * 24 / (2 * math.pi) % 24)
        obs, _, te, tr, _ = env.step(1 if t % 72 == 0 else 0)
        assert not te
    assert tr
    assert np.allclose(np.diff(hours), 5 / 60, atol=1e-4)
    check_env(make("covercast/PushTiming-v0", slot_minutes=5, horizon_days=0.5), n_steps=200)
    cs = make("covercast/CoverStyle-v0", slot_minutes=5, push_hours=(8.25, 20), horizon_days=2)
    assert cs.spec.max_episode_steps == 4
    cs.reset(seed=0)
    assert cs.unwrapped.population.now == pytest.approx(8.25)


def test_episode_steps_and_make():
    assert episode_steps("covercast/PushSchedule-v0", 14, 5) == 4032
    assert episode_steps("covercast/CoverStyle-v0", 7, push_hours=(8, 12, 20)) == 21
    assert make("covercast/CoverStyle-v0", horizon_days=3,
                push_hours=(9,)).spec.max_episode_steps == 3
    with pytest.raises(ValueError, match="max_episode_steps"):
        make("covercast/PushSchedule-v0", max_episode_steps=10)
    with pytest.raises(ValueError, match="Unknown covercast environment id"):
        make("covercast/Nope-v0")
    with pytest.raises(ValueError, match="whole number of 60-minute slots"):
        episode_steps("covercast/PushSchedule-v0", 0.01)
    # a TimeLimit given to gym.make still applies
    assert gym.make("covercast/PushSchedule-v0", slot_minutes=5,
                    max_episode_steps=12).spec.max_episode_steps == 12


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("action", [6, -1, 1.5, "push", np.array([1, 2]), True, None])
def test_invalid_actions_raise_clear_errors(action):
    env = gym.make("covercast/PushSchedule-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"Invalid action .* expected an integer in \[0, 5\]"):
        env.unwrapped.step(action)


def test_numpy_actions_are_accepted():
    env = PushScheduleEnv()
    env.reset(seed=0)
    for a in (np.int64(2), np.array(3), np.array([0]), np.int32(1)):
        env.step(a)


def test_step_before_reset():
    with pytest.raises(ResetNeeded, match="reset"):
        PushScheduleEnv().step(0)


@pytest.mark.parametrize("kwargs,match", [
    ({"slot_minutes": 7}, "slot_minutes"),
    ({"slot_minutes": 0}, "slot_minutes"),
    ({"w_dwell": -1.0}, "w_dwell"),
    ({"w_optout": float("nan")}, "w_optout"),
    ({"reward_fn": lambda r: 0.0, "w_dwell": 1.0}, "either `reward_fn`"),
    ({"reward_fn": 3}, "reward_fn"),
    ({"params": 42}, "params"),
    ({"bank": 42}, "bank"),
    ({"start": "2026-01-05T00:30:00Z"}, "slot grid"),
    ({"render_mode": "human"}, "render_mode"),
])
def test_bad_constructor_arguments_raise_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PushScheduleEnv(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"style": "bogus"}, "style"), ({"style": 9}, "style"), ({"style": True}, "style")])
def test_bad_push_timing_style(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PushTimingEnv(**kwargs)


@pytest.mark.parametrize("hours,match", [
    ((25,), r"\[0, 24\)"), ((), "non-empty"), ("8", "non-empty"), ((8, 8), "distinct"),
    ((8.5,), "slot grid")])
def test_bad_push_hours(hours, match):
    with pytest.raises(ValueError, match=match):
        CoverStyleEnv(push_hours=hours)


def test_reward_fn_must_return_a_finite_number():
    env = PushScheduleEnv(reward_fn=lambda r: float("inf"))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(0)
    env = PushScheduleEnv(reward_fn=lambda r: "high")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="number"):
        env.step(0)


def test_default_reward_is_picklable_and_vectorised():
    f = OpenDwellReward(0.2, 3.0)
    assert pickle.loads(pickle.dumps(f)) == f
    r = f({"opened": np.array([1, 0]), "dwell_s": np.array([60.0, 0.0]),
           "opted_out": np.array([False, True])})
    assert np.allclose(r, [1.2, -3.0])


def test_params_and_bank_from_paths(tmp_path):
    p = default_params()
    path = p.save(tmp_path / "params.json")
    env = PushScheduleEnv(params=str(path))
    assert env.params.to_dict() == p.to_dict()


def test_render_ansi():
    env = gym.make("covercast/PushSchedule-v0", render_mode="ansi")
    env.reset(seed=0)
    assert "episode start" in env.render()
    env.step(2)
    text = env.render()
    assert "push=vivid" in text and "reward=" in text


def test_envs_import_and_run_without_torch():
    code = ("import sys, gymnasium as gym, covercast, covercast.envs, covercast.testing\n"
            "env = gym.make('covercast/PushSchedule-v0'); env.reset(seed=0); env.step(1)\n"
            "v = covercast.envs.make_vec(4); v.reset(seed=0); v.step(v.action_space.sample())\n"
            "heavy = [m for m in ('torch', 'diffusers') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_version_is_kept():
    assert covercast.__version__ == "0.1.0"
