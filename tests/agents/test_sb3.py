"""The stable-baselines3 adapters: the vec-env bridge, training on the covercast envs, predict
with state across episode boundaries, save/load."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from covercast.agents.gru_ppo import GRUPPOConfig, make_train_env  # noqa: E402
from covercast.agents.sb3 import SB3Agent, SB3VecEnv, train_sb3  # noqa: E402
from covercast.envs.observation import OBS_DIM  # noqa: E402


def tiny(env_id: str = "covercast/PopulationVector-v0") -> GRUPPOConfig:
    return GRUPPOConfig(env_id=env_id, num_envs=4, horizon_days=1, total_steps=4 * 32 * 2,
                        num_steps=32, num_minibatches=2, update_epochs=1, tensorboard=False)


def test_vec_env_bridge_reports_ends_like_sb3():
    venv = SB3VecEnv(make_train_env(tiny()), seed=0)
    obs = venv.reset()
    assert obs.shape == (4, OBS_DIM) and obs.dtype == np.float32
    ended = 0
    for _ in range(24):
        venv.step_async(np.zeros(4, dtype=np.int64))
        obs, r, dones, infos = venv.step_wait()
        for i in np.flatnonzero(dones):
            ended += 1
            assert infos[i]["terminal_observation"].shape == (OBS_DIM,)
            assert infos[i]["episode"]["l"] == 24 and infos[i]["TimeLimit.truncated"]
    assert ended == 4            # 1 day of hourly slots, nobody pushed: all truncated at 24


def test_vec_env_bridge_refuses_next_step_autoreset():
    import gymnasium as gym

    from covercast.envs.registration import make
    env = gym.vector.SyncVectorEnv([lambda: make("covercast/PushTiming-v0", horizon_days=1)])
    with pytest.raises(ValueError, match="same-step"):
        SB3VecEnv(env)


@pytest.mark.parametrize("algo", ["ppo", "recurrent-ppo"])
@pytest.mark.parametrize("env_id", ["covercast/PopulationVector-v0", "covercast/PushTiming-v0"])
def test_train_predict_save_load(algo, env_id, tmp_path):
    agent = train_sb3(algo, tiny(env_id), progress=False, out=tmp_path)
    with open(tmp_path / "progress.csv") as f:      # SB3's training log, in the run folder
        assert "time/total_timesteps" in f.readline()
    n_actions = 6 if "Population" in env_id else 2
    assert agent.n_actions == n_actions
    obs = np.random.default_rng(0).random((3, OBS_DIM)).astype(np.float32)
    a, s = agent.predict(obs, deterministic=True)
    assert a.shape == (3,) and ((a >= 0) & (a < n_actions)).all()
    a2, s2 = agent.predict(obs, s, episode_start=np.array([True, False, False]))
    p = agent.action_probabilities(obs, s)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    if algo == "ppo":      # the stacked history: newest observation last, reset where starting
        assert s.shape == (3, 4 * OBS_DIM)
        np.testing.assert_array_equal(s2[0, :-OBS_DIM], 0.0)
        np.testing.assert_array_equal(s2[1, -2 * OBS_DIM:-OBS_DIM], obs[1])
    else:                  # the LSTM state (h, c)
        assert isinstance(s, tuple) and s[0].shape[1] == 3
    with pytest.raises(ValueError, match="cloudpickle.*trust_pickle=True"):
        SB3Agent.load(tmp_path, seed=0)             # model.zip is a pickle: trust is explicit
    loaded = SB3Agent.load(tmp_path, seed=0, trust_pickle=True)
    np.testing.assert_allclose(loaded.action_probabilities(obs, s), p, rtol=1e-6)
    with pytest.raises(ValueError, match="algo"):
        train_sb3("a2c", tiny())


@pytest.mark.parametrize("algo", ["ppo", "recurrent-ppo"])
def test_initial_push_prob_and_callback(algo, tmp_path, monkeypatch):
    from stable_baselines3.common.callbacks import BaseCallback

    rollouts: list[int] = []

    class Count(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            rollouts.append(int(self.model.num_timesteps))

    cfg = tiny()
    cfg.learning_rate = 1e-12          # keep the initial distribution (almost) as set
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    agent = train_sb3(algo, cfg, progress=False, callback=Count())
    assert list(tmp_path.iterdir()) == []     # no SB3-<date> folder left in the temp dir
    assert rollouts == [4 * 32, 4 * 32 * 2]
    obs = np.random.default_rng(0).normal(size=(64, OBS_DIM)).astype(np.float32)
    probs = agent.action_probabilities(obs)
    assert probs.shape == (64, 6)
    np.testing.assert_allclose(probs[:, 0], 1 - cfg.initial_push_prob, atol=0.02)
    np.testing.assert_allclose(probs[:, 1:], cfg.initial_push_prob / 5, atol=0.01)
    cfg.initial_push_prob = None       # SB3's own start: uniform over the six actions
    probs = train_sb3(algo, cfg, progress=False).action_probabilities(obs)
    np.testing.assert_allclose(probs, 1 / 6, atol=0.03)
