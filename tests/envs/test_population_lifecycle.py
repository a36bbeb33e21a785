"""Population.reset, Population.replace_users and pickling (what the environments rely on)."""

from __future__ import annotations

import pickle
from dataclasses import fields

import numpy as np
import pytest

from covercast.covers.procedural import default_bank
from covercast.simulators.params import default_params
from covercast.simulators.population import Population


@pytest.fixture(scope="module")
def params():
    return default_params()


@pytest.fixture(scope="module")
def bank():
    return default_bank()


def drive(pop: Population, steps: int, seed: int, p_push: float = 0.3) -> list:
    """Random pushes; returns every outcome field and observation, for equality checks."""
    rng = np.random.default_rng(seed)
    trace = []
    for _ in range(steps):
        mask = rng.random(pop.n_users) < p_push
        out = pop.step(push=mask, style=rng.integers(0, 5, pop.n_users))
        trace.append([np.asarray(getattr(out, f.name)).copy() for f in fields(out)])
        trace.append([v.copy() for v in pop.observe().values()])
    return trace


def same(a, b) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


@pytest.mark.parametrize("n,slot", [(1, 60), (40, 15)])
def test_reset_equals_a_fresh_population(params, bank, n, slot):
    pop = Population(params, n, bank=bank, seed=5, slot_minutes=slot)
    drive(pop, 30, 0)
    pop.schedule_push([0], at=pop.now + 3.0, style=1)   # dropped by reset
    pop.reset(9)
    fresh = Population(params, n, bank=bank, seed=9, slot_minutes=slot)
    assert pop.now == 0.0 and pop.n_pushes_scheduled == 0
    assert same(drive(pop, 60, 1), drive(fresh, 60, 1))


def test_pickle_between_slots_continues_identically(params, bank):
    pop = Population(params, 30, bank=bank, seed=2)
    drive(pop, 40, 3)
    pop.schedule_push([1, 4], at=pop.now + 2.5, style=2)
    pop.schedule_push([4], at=pop.now + 2.5, style=0)     # same instant: order matters
    pop.schedule_push([7], at=pop.now + 30.0, cover=3)
    clone = pickle.loads(pickle.dumps(pop))
    assert clone.now == pop.now
    assert same(drive(pop, 60, 4), drive(clone, 60, 4))


def test_pickle_before_the_first_slot(params, bank):
    pop = Population(params, 10, bank=bank, seed=2)
    pop.schedule_push([3], at=0.0, style=1)
    clone = pickle.loads(pickle.dumps(pop))
    assert same(drive(pop, 30, 5), drive(clone, 30, 5))


def test_replaced_users_start_without_history(params, bank):
    pop = Population(params, 200, bank=bank, seed=1)
    drive(pop, 50, 0, p_push=0.5)
    before = pop.hidden_state()
    idx = np.arange(0, 200, 3)
    pop.replace_users(idx)
    obs, hid = pop.observe(), pop.hidden_state()
    for k in ("pushes_24h", "pushes_7d", "opens_24h", "opens_7d", "dwell_24h", "dwell_7d",
              "sessions_24h"):
        assert np.all(obs[k][idx] == 0), k
    assert np.all(np.isinf(obs["hours_since_push"][idx]))
    assert np.all(hid["fatigue"][idx] == 0) and not hid["opted_out"][idx].any()
    assert np.all(hid["pending_push"][idx] == -1)
    assert not np.allclose(hid["taste"][idx], before["taste"][idx])
    keep = np.setdiff1d(np.arange(200), idx)
    assert np.array_equal(hid["taste"][keep], before["taste"][keep])
    assert np.array_equal(obs["pushes_7d"][keep], pop.observe()["pushes_7d"][keep])


def test_windows_stay_exact_across_replacements(params, bank):
    """Rolling counters equal a brute-force recount of each user's slots since it was born."""
    n = 120
    pop = Population(params, n, bank=bank, seed=7)
    rng = np.random.default_rng(0)
    born = np.zeros(n)
    history = []                                   # (start_h, dense outcome)
    for t in range(24 * 9):
        out = pop.step(push=rng.random(n) < 0.4, style=rng.integers(0, 5, n))
        history.append((out.start_h, out.to_dense(n)))
        if t % 5 == 0:
            idx = rng.choice(n, size=7, replace=False)
            pop.replace_users(idx)
            born[idx] = pop.now
        if t % 11 == 0 or t > 24 * 8:
            now = pop.now
            obs = pop.observe()
            for key, dense_key, hours in (("pushes_24h", "pushes", 24), ("pushes_7d", "pushes", 168),
                                          ("opens_7d", "opens", 168),
                                          ("sessions_24h", "sessions", 24),
                                          ("dwell_7d", "dwell_s", 168)):
                expect = np.zeros(n)
                for start, d in history:
                    if start >= now - hours - 1e-9:
                        expect += np.where(born <= start + 1e-9, d[dense_key], 0)
                assert np.allclose(obs[key], expect), (t, key)


def test_replacement_redraws_the_coming_slot_sessions(params, bank):
    pop = Population(params, 2000, bank=bank, seed=3)
    drive(pop, 5, 0, p_push=0.0)
    pop.replace_users(np.arange(1000))
    act = pop._act_users
    assert np.all(np.diff(act) > 0)                # still sorted and unique
    assert act.size == pop._act_counts.size == pop._act_j.size == pop._act_last.size
    out = pop.step()
    assert out.session_user.size > 0


def test_replace_users_errors(params, bank):
    pop = Population(params, 10, bank=bank, seed=0)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 9\]"):
        pop.replace_users([10])
    with pytest.raises(ValueError, match="duplicate"):
        pop.replace_users([1, 1])
    pop.schedule_push([2], at=5.0, style=0)
    with pytest.raises(ValueError, match="scheduled"):
        pop.replace_users([2, 3])
    pop.replace_users([3])                         # others are fine
    rec = Population(params, 10, bank=bank, seed=0, record_events=True)
    with pytest.raises(ValueError, match="record_events"):
        rec.replace_users([0])
