"""The environment benchmark runs end to end with tiny sizes (figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from covercast.experiments.bench_envs import bench_envs, format_env_table

ROOT = Path(__file__).resolve().parents[2]


def test_bench_envs_table(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    df = bench_envs(steps=60, n_users=30, vector_steps=3, repeats=1, include_recogym=False,
                    out=out)
    assert list(df["env"]) == ["CartPole-v1", "covercast/PushTiming-v0",
                               "covercast/CoverStyle-v0", "covercast/PushSchedule-v0",
                               "PopulationVectorEnv (N=30)"]
    assert (df["median"] > 0).all() and (df["best"] >= df["median"]).all()
    single = df[df["kind"] == "single"]
    assert single["vs_cartpole"].notna().all() and single["vs_recogym"].isna().all()
    assert df.loc[df["kind"] == "vector", "target"].iloc[0] == 10_000_000
    assert pd.read_csv(out).shape[0] == len(df)
    printed = capsys.readouterr().out
    assert "x RecoGym" in printed and "RecoGym is not installed" in printed
    assert format_env_table(df) in printed


@pytest.mark.parametrize("kwargs,match", [({"steps": 0}, "steps"), ({"repeats": 0}, "repeats"),
                                          ({"n_users": 1.5}, "n_users")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bench_envs(include_recogym=False, verbose=False, **kwargs)


def test_benchmark_script_runs(tmp_path):
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_envs.py"), "--steps", "40",
         "--n-users", "20", "--vector-steps", "2", "--repeats", "1", "--no-recogym", "--out",
         str(tmp_path / "b.csv")], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "covercast/PushSchedule-v0" in res.stdout and (tmp_path / "b.csv").exists()


def test_recogym_from_the_bench_extra_imports_and_steps():
    """With the bench extra (`make bench`), RecoGym imports through covercast's helper and its
    random agent steps; without it, the skip says how to install it."""
    import importlib.util

    from covercast.experiments.bench_envs import (
        RECOGYM_INSTALL,
        import_recogym,
        recogym_steps_per_s,
    )

    if importlib.util.find_spec("recogym") is None:
        assert import_recogym() is None
        pytest.skip(f"RecoGym is not installed (the bench extra: `{RECOGYM_INSTALL}`)")
    _, RecoEnv1, RandomAgent, random_args = import_recogym()
    assert callable(RecoEnv1) and callable(RandomAgent) and isinstance(random_args, dict)
    assert recogym_steps_per_s(200, seed=0) > 0


def test_a_broken_recogym_install_names_the_missing_package(monkeypatch):
    import builtins
    import importlib.util

    from covercast.experiments import bench_envs

    if importlib.util.find_spec("recogym") is None:
        pytest.skip("RecoGym is not installed (the bench extra: "
                    f"`{bench_envs.RECOGYM_INSTALL}`)")
    real_import = builtins.__import__

    def no_gym(name, *args, **kwargs):
        if name == "recogym" or name.startswith("recogym."):
            raise ImportError("No module named 'gym'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gym)
    with pytest.raises(ImportError, match=r"RecoGym is installed but does not import \(No "
                                          r"module named 'gym'\); install what it needs with "
                                          r"`pip install -e \"\.\[bench\]\""):
        bench_envs.import_recogym()
