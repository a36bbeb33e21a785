"""The slot's active-user bookkeeping of Population against dense references."""

import numpy as np

from covercast.simulators.params import default_params
from covercast.simulators.population import Population


def _dense_active(pop: Population) -> np.ndarray:
    mask = np.zeros(pop.n_users, dtype=bool)
    mask[pop._act_users] = True
    return mask


def test_replace_users_keeps_active_set_sorted_and_consistent():
    pop = Population(default_params(), 400, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(12):
        pop.step(push=rng.random(400) < 0.5, style=0)
        before = dict(zip(pop._act_users.tolist(),
                          zip(pop._act_counts.tolist(), pop._act_j.tolist(),
                              pop._act_last.tolist(), strict=True), strict=True))
        gone = np.sort(rng.choice(400, size=int(rng.integers(1, 60)), replace=False))
        pop.replace_users(gone)
        act = pop._act_users
        assert np.all(np.diff(act) > 0)                         # sorted, unique
        assert np.all(pop._act_counts > 0)
        assert act.size == pop._act_counts.size == pop._act_j.size == pop._act_last.size
        replaced = np.isin(act, gone)
        # replaced users start the slot afresh; the others keep their state untouched
        assert np.all(pop._act_j[replaced] == 0) and np.all(pop._act_last[replaced] == 0.0)
        for u, c, j, last in zip(act[~replaced].tolist(), pop._act_counts[~replaced].tolist(),
                                 pop._act_j[~replaced].tolist(),
                                 pop._act_last[~replaced].tolist(), strict=True):
            assert before[u] == (c, j, last)
        old_kept = [u for u in before if u not in set(gone.tolist())]
        assert set(act[~replaced].tolist()) == set(old_kept)
        # the cached dense mask follows the new active set
        assert np.array_equal(pop._active_mask(), _dense_active(pop))


def test_first_session_after_ignores_inactive_users():
    pop = Population(default_params(), 300, seed=5)
    pop.step()
    active = _dense_active(pop)
    users = np.arange(300)
    t = pop._first_session_after(users, np.full(300, pop.now - 1.0))
    assert np.all(np.isinf(t[~active]))
    assert np.all(np.isfinite(t[active]))                    # every active user has a session
    assert np.all((t[active] >= pop.now) & (t[active] <= pop.now + pop.slot_hours))
