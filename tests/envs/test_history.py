"""``history_days``: the organic sessions a platform has seen of an existing user before hour 0."""

from __future__ import annotations

import numpy as np
import pytest

import covercast  # noqa: F401  (registers the ids)
from covercast.envs import OBS_INDEX, make, make_vec
from covercast.envs.observation import PROFILE_SLICE
from covercast.simulators.params import HOURS_PER_WEEK, default_params
from covercast.simulators.population import Population

ENV_IDS = ("covercast/PushTiming-v0", "covercast/CoverStyle-v0", "covercast/PushSchedule-v0")


def test_draw_history_recovers_the_hourly_rates():
    """Mean counts per hour of day over many users match the segment rates x multipliers."""
    pop = Population(default_params(), 3000, seed=1)
    days = 7
    counts = pop.draw_history(days, np.random.default_rng(0))
    assert counts.shape == (3000, 24) and (counts >= 0).all()
    assert np.array_equal(counts, np.round(counts))
    hidden = pop.hidden_state()
    act = pop.params.activity_matrix()                        # (S, 168)
    by_day = act.reshape(len(act), 7, 24).sum(axis=1)         # one week: each hour of week once
    expected = by_day[hidden["segment"]] * hidden["activity_multiplier"][:, None] * days / 7
    # the sum over users of Poisson counts: within 4 standard deviations hour by hour
    diff = counts.sum(axis=0) - expected.sum(axis=0)
    assert np.all(np.abs(diff) < 4 * np.sqrt(expected.sum(axis=0)) + 1)
    assert HOURS_PER_WEEK == 168


def test_draw_history_is_seeded_and_leaves_the_population_alone():
    a = Population(default_params(), 50, seed=2)
    b = Population(default_params(), 50, seed=2)
    h1 = a.draw_history(14, np.random.default_rng(5))
    h2 = b.draw_history(14, np.random.default_rng(5))
    assert np.array_equal(h1, h2)
    assert not np.array_equal(h1, a.draw_history(14, np.random.default_rng(6)))
    # the population simulates exactly as one that drew nothing
    c = Population(default_params(), 50, seed=2)
    for _ in range(48):
        oa, oc = a.step(push=np.arange(0, 50, 7), style=1), c.step(push=np.arange(0, 50, 7),
                                                                  style=1)
        assert np.array_equal(oa.session_count, oc.session_count)
        assert np.array_equal(oa.open_user, oc.open_user)
    assert a.draw_history(0, np.random.default_rng(0)).shape == (50, 24)
    assert a.draw_history(1, np.random.default_rng(0), users=[3, 4]).shape == (2, 24)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "7", True])
def test_bad_history_days_is_refused(bad):
    with pytest.raises(ValueError, match="history_days"):
        make("covercast/PushSchedule-v0", history_days=bad)
    with pytest.raises(ValueError, match="history_days"):
        make_vec(4, history_days=bad)
    with pytest.raises(ValueError, match="days"):
        Population(default_params(), 2, seed=0).draw_history(bad if bad != "7" else -2,
                                                            np.random.default_rng(0))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_single_env_starts_from_the_seen_profile(env_id):
    env = make(env_id, history_days=28)
    obs, _ = env.reset(seed=4)
    again, _ = env.reset(seed=4)
    assert np.array_equal(obs, again)                      # seeded
    profile = obs[PROFILE_SLICE]
    assert profile.sum() == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(profile, 1 / 24)                # not the new-user prior
    assert obs[OBS_INDEX["sessions_per_day"]] > 0
    # the windows still start at hour 0 (CoverStyle runs to its first push time: the
    # sessions of those slots count, the same as without history)
    cold, _ = make(env_id).reset(seed=4)
    for name in ("pushes_24h", "opens_24h", "sessions_24h", "pushes_7d"):
        assert obs[OBS_INDEX[name]] == cold[OBS_INDEX[name]]
    assert obs[OBS_INDEX["pushes_24h"]] == 0
    if cold[OBS_INDEX["sessions_24h"]] == 0:        # nothing seen yet: the new-user prior
        assert np.allclose(cold[PROFILE_SLICE], 1 / 24)
        assert cold[OBS_INDEX["sessions_per_day"]] == 0


def test_seen_sessions_per_day_predict_the_episode():
    """Users who were seen more active are more active in the episode (same rates)."""
    env = make_vec(400, history_days=14, horizon_days=7)
    obs, _ = env.reset(seed=0)
    seen = obs[:, OBS_INDEX["sessions_per_day"]].astype(float)
    sessions = np.zeros(400)
    for _ in range(7 * 24):
        _, _, _, _, info = env.step(np.zeros(400, dtype=np.int64))
        sessions += info["sessions"]
    assert np.corrcoef(seen, sessions)[0, 1] > 0.8
    assert sessions.mean() / 7 == pytest.approx(seen.mean(), rel=0.1)


def test_vector_env_gives_replaced_users_their_history():
    env = make_vec(64, history_days=14, horizon_days=1, copy=True)
    env.reset(seed=1)
    for _ in range(23):
        env.step(np.zeros(64, dtype=np.int64))
    obs, _, _, truncated, _ = env.step(np.zeros(64, dtype=np.int64))
    assert truncated.all()                                 # everybody replaced at once
    rebuilt = env.unwrapped._builder.build(env.unwrapped.population.observe())
    for name in ("profile_now", "sessions_per_day"):
        assert np.array_equal(obs[:, OBS_INDEX[name]], rebuilt[:, OBS_INDEX[name]])
    assert np.array_equal(obs[:, PROFILE_SLICE], rebuilt[:, PROFILE_SLICE])
    assert (obs[:, OBS_INDEX["sessions_per_day"]] > 0).mean() > 0.9
    # 14 days, not 14 + 1: the finished episode's sessions are forgotten
    assert np.all(env.unwrapped._builder.elapsed_h == 14 * 24)


def test_zero_history_is_the_default_episode():
    a = make("covercast/PushSchedule-v0", history_days=0)
    b = make("covercast/PushSchedule-v0")
    oa, _ = a.reset(seed=9)
    ob, _ = b.reset(seed=9)
    assert np.array_equal(oa, ob)
    rng = np.random.default_rng(0)
    for _ in range(100):
        act = int(rng.integers(0, 6))
        ra, rb = a.step(act), b.step(act)
        assert np.array_equal(ra[0], rb[0]) and ra[1] == rb[1]
