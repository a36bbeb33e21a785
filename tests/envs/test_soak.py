"""The soak benchmark's checks catch what they claim to catch, on a tiny run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from covercast.experiments import soak as soak_module
from covercast.experiments.soak import VECTOR_ID, _count_nonfinite, soak


def test_nonfinite_counter_sees_nested_values_and_respects_gymnasium_masks():
    assert _count_nonfinite({"a": 1.0, "b": [np.nan, 2], "c": {"d": np.array([np.inf, 0.0])}}) == 2
    assert _count_nonfinite({"x": np.array([np.nan, 1.0]), "_x": np.array([False, True])}) == 0
    assert _count_nonfinite({"x": np.array([np.nan, 1.0]), "_x": np.array([True, True])}) == 1
    assert _count_nonfinite({"s": "nan", "flag": True, "none": None, "i": np.arange(3)}) == 0


def test_tiny_soak_is_clean_deterministic_and_writes_its_report(tmp_path):
    df = soak(6000, n_users=40, generation_steps=0, spot_steps=60, seed=3, out=tmp_path,
              progress=False)
    assert set(df["env"]) == {"PushTiming-v0", "CoverStyle-v0", "PushSchedule-v0",
                              f"{VECTOR_ID} (N=40)"}
    assert (df["nonfinite"] == 0).all() and df["deterministic"].all()
    assert df["steps"].sum() >= 5900 and (df["episodes"] >= 0).all()
    saved = pd.read_csv(tmp_path / "soak.csv")
    assert list(saved["env"]) == list(df["env"])
    text = (tmp_path / "soak.md").read_text()
    assert "non-finite values (obs, rewards, infos): **0**" in text and "| yes |" in text


def test_soak_reports_a_planted_nan_and_a_nondeterministic_env(monkeypatch, tmp_path):
    real = soak_module._make

    class Leaky:
        """Wraps an env: NaN in one info value, and a reward that ignores the seed."""

        def __init__(self, env):
            self.env, self.action_space = env, env.action_space
            self.rng = np.random.default_rng()

        def step(self, action):
            obs, r, te, tr, info = self.env.step(action)
            return obs, r + self.rng.random(), te, tr, {**info, "dwell_s": float("nan")}

        def reset(self, **kw):
            return self.env.reset(**kw)

        def close(self):
            self.env.close()

    monkeypatch.setattr(soak_module, "_make", lambda env_id, seed: Leaky(real(env_id, seed)))
    df = soak(300, generation_steps=0, spot_steps=30, env_ids=["covercast/PushTiming-v0"],
              progress=False, out=tmp_path)
    assert int(df["nonfinite_info"].iloc[0]) == 300 and not bool(df["deterministic"].iloc[0])
    assert "NOT every env" in (tmp_path / "soak.md").read_text()


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="`steps`"):
        soak(0, progress=False)
    with pytest.raises(ValueError, match="Unknown env ids"):
        soak(10, env_ids=["covercast/Nope-v0"], progress=False)


def test_bench_soak_command_passes_its_options_and_fails_on_a_dirty_run(monkeypatch, tmp_path,
                                                                        capsys):
    from covercast.experiments import cli

    seen = {}

    def fake(steps, **kw):
        seen.update(steps=steps, **kw)
        return pd.DataFrame([{"env": "PushTiming-v0", "steps": steps, "episodes": 1,
                              "seconds": 1.0, "nonfinite_obs": 0, "nonfinite_reward": 0,
                              "nonfinite_info": kw["seed"], "rss_warm_mib": 1.0,
                              "rss_end_mib": 1.0, "deterministic": True, "steps_per_s": 1.0,
                              "rss_growth_mib": 0.0, "rss_growth_mib_per_m_steps": 0.0,
                              "nonfinite": kw["seed"]}])

    monkeypatch.setattr(soak_module, "soak", fake)
    out = tmp_path / "soak"
    assert cli.main(["bench", "soak", "--n-users", "30", "--out", str(out), "--quiet"]) == 0
    assert seen["steps"] == soak_module.DEFAULT_SOAK_STEPS and seen["n_users"] == 30
    assert seen["out"] == str(out) and seen["progress"] is False
    assert cli.main(["bench", "soak", "--steps", "500", "--seed", "2", "--quiet"]) == 1
    assert seen["steps"] == 500 and seen["out"] == "runs/soak"
    assert "PushTiming-v0" in capsys.readouterr().out
