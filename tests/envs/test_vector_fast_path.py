"""The vector env's fast paths (issue 21) give what the plain numpy code gives, and copy=True
still means that a step never changes what an earlier step returned."""

from __future__ import annotations

import numpy as np
import pytest

from covercast.envs import PopulationVectorEnv
from covercast.envs.observation import LOG_HOURS_CAP, OBS_DIM, ObservationBuilder
from covercast.envs.rewards import OpenDwellReward


def columnwise_reference(builder: ObservationBuilder, obs: dict) -> np.ndarray:
    """The observation as the column-by-column numpy code built it before the compiled loop."""
    n = builder.n_users
    o = np.zeros((n, OBS_DIM), dtype=np.float32)
    hour = float(obs["hour"][0]) + float(obs["minute"][0]) / 60.0
    wd = float(obs["weekday"][0])
    o[:, :5] = [np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24),
                np.sin(2 * np.pi * wd / 7), np.cos(2 * np.pi * wd / 7), 1.0 if wd >= 5 else 0.0]
    o[:, 5] = np.minimum(np.log1p(obs["hours_since_push"]), LOG_HOURS_CAP)
    o[:, 6] = np.minimum(np.log1p(obs["hours_since_open"]), LOG_HOURS_CAP)
    o[:, 7] = obs["pushes_24h"]
    o[:, 8] = obs["opens_24h"]
    o[:, 9] = obs["dwell_24h"] / 60.0
    o[:, 10] = obs["pushes_7d"]
    o[:, 11] = obs["opens_7d"]
    o[:, 12] = obs["dwell_7d"] / 60.0
    o[:, 13] = obs["sessions_24h"]
    tot = builder.total_sessions
    share = np.full((n, 24), 1.0 / 24.0)
    np.divide(builder.profile_counts, tot[:, None], out=share, where=(tot > 0)[:, None])
    o[:, 16:] = share
    o[:, 14] = share[:, int(obs["hour"][0])]
    el = builder.elapsed_h
    with np.errstate(invalid="ignore", divide="ignore"):
        o[:, 15] = np.where(el > 0, tot * 24.0 / np.where(el > 0, el, 1.0), 0.0)
    return o


@pytest.mark.parametrize("kwargs", [{}, {"history_days": 2}, {"copy": False}])
def test_observations_equal_the_columnwise_numpy_code_bit_for_bit(kwargs):
    env = PopulationVectorEnv(300, **kwargs)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    replaced = 0
    for t in range(200):
        obs, _, term, trunc, info = env.step(rng.integers(0, 6, 300))
        done = term | trunc
        replaced += int(done.sum())
        ref = columnwise_reference(env._builder, env.population.observe())
        # rows of users replaced in this step are their successors' first observation,
        # also what the builder now holds for them
        assert np.array_equal(obs, ref), f"step {t}: rows {np.flatnonzero((obs != ref).any(1))}"
        # and the state-based path equals the observe() path
        assert np.array_equal(env._builder.build(env.population.observe_state()).copy(),
                              env._builder.build(env.population.observe()))
    assert replaced > 0                     # autoreset happened on the way


def test_default_reward_in_place_equals_the_reward_function():
    env = PopulationVectorEnv(400)
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    fn = OpenDwellReward()
    assert isinstance(env.reward_fn, OpenDwellReward)
    seen_open = seen_optout = False
    for _ in range(100):
        _, r, _, _, info = env.step(rng.integers(0, 6, 400))
        np.testing.assert_array_equal(r, np.asarray(fn(info), dtype=np.float64))
        seen_open |= bool(info["opened"].any())
        seen_optout |= bool(info["opted_out"].any())
    assert seen_open and seen_optout


def test_copy_true_never_changes_what_an_earlier_step_returned():
    env = PopulationVectorEnv(200)
    obs0, _ = env.reset(seed=0)
    kept = [obs0]
    snapshots = [obs0.copy()]
    rng = np.random.default_rng(2)
    for t in range(60):
        obs, *_ = env.step(rng.integers(0, 6, 200))
        if t % 3 == 0:                       # keep some, drop the others
            kept.append(obs)
            snapshots.append(obs.copy())
        row = obs[5]                         # a view keeps the array alive too
    for a, b in zip(kept, snapshots, strict=True):
        assert np.array_equal(a, b)
    assert not np.shares_memory(row, env.step(np.zeros(200, dtype=np.int64))[0])
    assert len({id(a) for a in kept}) == len(kept)


def test_copy_true_reuses_an_array_the_caller_dropped():
    import weakref

    env = PopulationVectorEnv(30)
    obs, _ = env.reset(seed=0)
    zeros = np.zeros(30, dtype=np.int64)
    first = weakref.ref(obs)                # a weak reference does not hold the array
    del obs
    obs, *_ = env.step(zeros)
    assert first() is obs                   # dropped: its memory serves again
    held = obs
    obs, *_ = env.step(zeros)
    assert obs is not held                  # still held: a new array


def test_final_obs_is_zero_outside_the_ended_rows_and_never_changes_later():
    env = PopulationVectorEnv(60, horizon_days=1)           # every user ends at step 24
    env.reset(seed=0)
    rng = np.random.default_rng(3)
    kept = []
    ends = 0
    for _ in range(120):
        _, _, term, trunc, info = env.step(rng.integers(0, 6, 60))
        done = term | trunc
        if done.any():
            ends += 1
            fo = info["final_obs"]
            assert np.all(fo[~done] == 0) and np.array_equal(info["_final_obs"], done)
            if ends % 2:                                     # keep some, drop the others
                kept.append((fo, fo.copy()))
            fo = None
        del info
    assert ends > 5 and len(kept) > 2
    assert len({id(fo) for fo, _ in kept}) == len(kept)
    for fo, snapshot in kept:
        assert np.array_equal(fo, snapshot)


def test_copy_false_returns_one_buffer():
    env = PopulationVectorEnv(50, copy=False)
    obs0, _ = env.reset(seed=0)
    obs1, *_ = env.step(np.zeros(50, dtype=np.int64))
    assert obs1 is obs0


def test_build_refuses_a_wrong_out_buffer():
    b = ObservationBuilder(4)
    with pytest.raises(ValueError, match=r"C-contiguous float32 array of shape \(4, 40\)"):
        b.build({}, out=np.zeros((4, 40)))
