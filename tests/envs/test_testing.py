"""covercast.testing.check_env passes good environments and catches broken ones."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import covercast  # noqa: F401
from covercast.envs import PushScheduleEnv, make_vec
from covercast.testing import EnvCheckError, check_env

pytestmark = pytest.mark.filterwarnings("ignore:.*Box observation space maximum.*")


class _Bonus(gym.Wrapper):
    """Adds a constant to the reward: the reward no longer follows from the responses."""

    def step(self, action):
        obs, r, te, tr, info = self.env.step(action)
        return obs, r + 0.5, te, tr, info


class _Bloat(gym.ObservationWrapper):
    """Scales the observation: the profile no longer sums to 1, the hour leaves [-1, 1]."""

    def observation(self, obs):
        return (obs * 3).astype(np.float32)


class _Unseeded(gym.Wrapper):
    """Ignores the seed: two same-seed rollouts differ."""

    def reset(self, *, seed=None, options=None):
        return self.env.reset(seed=None, options=options)


class _Immortal(gym.Wrapper):
    """Hides opt-outs: the episode does not terminate."""

    def step(self, action):
        obs, r, te, tr, info = self.env.step(action)
        return obs, r, False, tr, info


def _env(**kw):
    return gym.make("covercast/PushSchedule-v0", disable_env_checker=True, **kw)


def test_good_envs_pass():
    check_env(_env(), n_steps=100)
    check_env(make_vec(16, horizon_days=1), n_steps=40)


@pytest.mark.parametrize("wrapper,match", [
    (_Bonus, "differs from reward_fn"),
    (_Bloat, "observation"),
    (_Unseeded, "Same-seed rollouts differ"),
])
def test_broken_envs_are_caught(wrapper, match):
    with pytest.raises(EnvCheckError, match=match):
        check_env(wrapper(_env()), n_steps=100, skip_gymnasium=True)


def test_a_hidden_opt_out_is_caught():
    import dataclasses

    from covercast.simulators.params import default_params

    p = default_params()
    p = dataclasses.replace(p, opt_out=dataclasses.replace(p.opt_out, base_hazard=5.0))
    with pytest.raises(EnvCheckError, match="terminated"):
        check_env(_Immortal(_env(params=p)), n_steps=50, skip_gymnasium=True)


def test_unwrapped_env_and_bad_arguments():
    check_env(PushScheduleEnv(), n_steps=30)
    with pytest.raises(ValueError, match="n_steps"):
        check_env(PushScheduleEnv(), n_steps=0)
