"""The vector env's split and scaling benchmark: workloads, the split's arithmetic, errors
(figures are not asserted)."""

from __future__ import annotations

import numpy as np
import pytest

from covercast.envs import PopulationVectorEnv
from covercast.experiments import bench_vector as bv


def test_schedule_workload_pushes_everybody_at_8_and_20_only():
    env = PopulationVectorEnv(5)
    env.reset(seed=0)
    acts = bv._actions(env, "schedule", 72, seed=0)
    pushed_hours = [i % 24 for i, a in enumerate(acts) if (a > 0).any()]
    assert pushed_hours == [8, 20] * 3
    assert all((a > 0).all() and a.max() <= env.n_styles for a in acts if (a > 0).any())
    rand = bv._actions(env, "random", 40, seed=0)
    assert all(a.shape == (5,) and a.dtype == np.int64 for a in rand)
    with pytest.raises(ValueError, match=r"`workload` must be one of \('random', 'schedule'\)"):
        bv._actions(env, "greedy", 3, seed=0)


def test_split_parts_add_up_to_the_step():
    df = bv.vector_split((40,), steps=4, repeats=1, verbose=False)
    assert list(df["workload"]) == ["random", "schedule"]
    total = df["engine_ms"] + df["env_layer_ms"]
    np.testing.assert_allclose(total, df["step_ms"], rtol=1e-9)
    parts = df[[f"{p}_ms" for p in (*bv.PARTS, "rest")]].sum(axis=1)
    np.testing.assert_allclose(parts, df["env_layer_ms"], rtol=1e-9)
    assert (df[[f"{p}_ms" for p in bv.PARTS]] >= 0).all().all()
    assert (df["observation_ms"] > 0).all()          # the builder was timed
    assert "| 40 | random |" in bv.format_split(df) and "| 40 | schedule |" in bv.format_parts(df)


def test_split_restores_the_methods_it_times():
    from covercast.simulators.population import Population

    before = Population.step
    bv.vector_split((10,), steps=2, repeats=1, workloads=("random",), verbose=False)
    assert Population.step is before


@pytest.mark.parametrize("call,match", [
    (lambda: bv.vector_split((), verbose=False), "`ns` must be a non-empty list"),
    (lambda: bv.vector_split((10,), workloads=("idle",), verbose=False),
     "`workloads` must be among"),
    (lambda: bv.vector_split((10,), repeats=0, verbose=False), "`repeats` must be a positive"),
    (lambda: bv.scaling((0,), verbose=False), "`ns` must be a non-empty list"),
    (lambda: bv.scaling((10,), workload="idle", verbose=False), "`workload` must be one of"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_compare_runs_both_checkouts_and_reports_speed_ups():
    """--baseline: a tiny side-by-side run (this checkout against itself) gives a before and
    an after row per size and workload, and the table's speed-up is before / after."""
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(bv.__file__))))
    df = bv.compare(root, [50], steps=2, workloads=["schedule"], repeats=1)
    assert df.code.tolist() == ["before", "after"]
    assert (df.step_ms > 0).all() and (df.engine_ms > 0).all()
    table = bv.format_compare(df)
    b, a = df.step_ms
    assert f"{b / a:.2f}x" in table.splitlines()[-1]
    with pytest.raises(RuntimeError, match="split run"):
        bv.compare("/nonexistent-checkout", [50], steps=2, workloads=["schedule"], repeats=1)
