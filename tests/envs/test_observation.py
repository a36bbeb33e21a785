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
    observation_bounds,
)
from covercast.simulators.params import default_params
from covercast.simulators.population import Population
from covercast.simulators.user import UserSimulator


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


@pytest.mark.parametrize("slot_minutes", [30, 120])
def test_one_user_stepper_builds_the_documented_features(slot_minutes):
    """The single-user envs' compiled stepper writes the same row as the table says."""
    sim = UserSimulator(default_params(), default_bank(), slot_minutes=slot_minutes)
    sim.reset(3)
    slot_h = slot_minutes / 60
    counts, elapsed = np.zeros(24), 0.0
    np.testing.assert_allclose(sim.observe_now(), reference_row(sim.observe(), 0, counts, 0.0))
    rng = np.random.default_rng(0)
    for _ in range(int(24 * 12 / slot_h)):
        hour = int(sim.observe()["hour"][0])
        r = sim.step(1 if rng.random() < 0.2 else -1)
        counts[hour] += r["sessions"]
        elapsed += slot_h
        assert sim.observation.dtype == np.float32
        np.testing.assert_allclose(sim.observation,
                                   reference_row(sim.observe(), 0, counts, elapsed),
                                   rtol=1e-6, atol=1e-6)
        if r["opted_out"]:
            break
    assert counts.sum() > 0


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
