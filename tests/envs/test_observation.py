"""The observation builder: layout, a reference implementation, the one-user fast path."""

from __future__ import annotations

import math

import numpy as np
import pytest

from covercast.covers.procedural import default_bank
from covercast.envs.observation import (
    LOG_HOURS_CAP,
    OBS_DIM,
    OBS_INDEX,
    OBS_NAMES,
    ObservationBuilder,
    UserObservation,
    observation_bounds,
)
from covercast.simulators.params import default_params
from covercast.simulators.population import Population


def reference_row(obs: dict, i: int, counts: np.ndarray, elapsed: float) -> np.ndarray:
    """Feature by feature, from the table in observation.py's docstring."""
    hour = obs["hour"][i] + obs["minute"][i] / 60
    wd = obs["weekday"][i]
    tot = counts.sum()
    share = counts / tot if tot > 0 else np.full(24, 1 / 24)
    row = [math.sin(2 * math.pi * hour / 24), math.cos(2 * math.pi * hour / 24),
           math.sin(2 * math.pi * wd / 7), math.cos(2 * math.pi * wd / 7), float(wd >= 5),
           min(math.log1p(obs["hours_since_push"][i]), LOG_HOURS_CAP),
           min(math.log1p(obs["hours_since_open"][i]), LOG_HOURS_CAP),
           obs["pushes_24h"][i], obs["opens_24h"][i], obs["dwell_24h"][i] / 60,
           obs["pushes_7d"][i], obs["opens_7d"][i], obs["dwell_7d"][i] / 60,
           obs["sessions_24h"][i], share[obs["hour"][i]],
           tot * 24 / elapsed if elapsed > 0 else 0.0]
    return np.array(row + list(share))


def run(n: int, steps: int, seed: int):
    pop = Population(default_params(), n, bank=default_bank(), seed=seed)
    builder = ObservationBuilder(n)
    rng = np.random.default_rng(seed)
    counts = np.zeros((n, 24))
    for _ in range(steps):
        hour = int(pop.observe()["hour"][0])
        out = pop.step(push=rng.random(n) < 0.2, style=rng.integers(0, 5, n))
        builder.record_sessions(hour, out.session_user, out.session_count, pop.slot_hours)
        counts[out.session_user, hour] += out.session_count
    return pop, builder, counts


def test_layout():
    assert OBS_DIM == len(OBS_NAMES) == 40
    assert OBS_INDEX["profile_h00"] == 16 and OBS_INDEX["profile_h23"] == 39
    low, high = observation_bounds()
    assert low.dtype == high.dtype == np.float32 and np.all(low <= high)


def test_build_matches_the_documented_features():
    pop, builder, counts = run(60, 80, 0)
    obs = pop.observe()
    built = builder.build(obs)
    assert built.shape == (60, OBS_DIM) and built.dtype == np.float32
    for i in range(60):
        np.testing.assert_allclose(built[i], reference_row(obs, i, counts[i], 80.0),
                                   rtol=1e-6, atol=1e-6)
    assert np.all(built >= observation_bounds()[0])
    assert np.all(built <= observation_bounds()[1])


def test_incremental_profile_equals_a_full_recomputation():
    pop, builder, _ = run(200, 60, 1)
    obs = pop.observe()
    fast = builder.build(obs).copy()
    builder._share_stale = True              # force the full recomputation
    assert np.array_equal(builder.build(obs), fast)


def test_one_user_fast_path_equals_build_bit_for_bit():
    pop = Population(default_params(), 1, bank=default_bank(), seed=3)
    fast, slow = UserObservation(), ObservationBuilder(1)
    rng = np.random.default_rng(0)
    for t in range(24 * 20):
        hour = int(pop.observe()["hour"][0])
        out = pop.step(push=np.zeros(1, np.int64), style=1) if rng.random() < 0.3 \
            else pop.step()
        n = int(out.session_count.sum())
        fast.record(hour, n, pop.slot_hours)
        slow.record_sessions(hour, out.session_user, out.session_count, pop.slot_hours)
        a = fast.build(pop.observe_user(0))
        b = slow.build(pop.observe())[0]
        assert a.dtype == np.float32 and np.array_equal(a, b), t
        assert not np.shares_memory(a, fast.build(pop.observe_user(0)))    # a new array
    fast.reset()
    assert np.array_equal(fast.build(pop.observe_user(0)),
                          ObservationBuilder(1).build(pop.observe())[0])


def test_record_slots_equals_slot_by_slot():
    a, b = UserObservation(), UserObservation()
    sessions = [k % 3 for k in range(30)]
    a.record_slots(5 * 60 + 50, 5, sessions, 1 / 12)
    for k, c in enumerate(sessions):
        b.record((5 * 60 + 50 + 5 * k) // 60 % 24, c, 1 / 12)
    assert a.profile_counts == b.profile_counts and a.profile_counts[6] > 0
    assert a.elapsed_h == b.elapsed_h and a.total_sessions == b.total_sessions


def test_reset_users_forgets_only_them():
    _, builder, _ = run(10, 30, 2)
    before = builder.profile_counts.copy()
    builder.reset_users(np.array([1, 4]))
    assert np.all(builder.profile_counts[[1, 4]] == 0) and np.all(builder.elapsed_h[[1, 4]] == 0)
    keep = [0, 2, 3, 5, 6, 7, 8, 9]
    assert np.array_equal(builder.profile_counts[keep], before[keep])


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_bad_size(n):
    with pytest.raises(ValueError, match="n_users"):
        ObservationBuilder(n)


def test_user_observation_beyond_float32_is_inf_as_in_numpy():
    values = (3, 0, 1, 5.0, 2.0, 1, 1, 1, 1, 1e45, 30.0, 0, False)
    with np.errstate(over="ignore"):
        row = UserObservation().build(values)
    assert row.dtype == np.float32 and row.flags.writeable
    assert np.isinf(row[OBS_INDEX["dwell_min_24h"]])
    assert row[OBS_INDEX["dwell_min_7d"]] == np.float32(0.5)
