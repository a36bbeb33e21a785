"""Every scheduling environment takes ``bank=`` by name (procedural, diffusion, vae-iat,
dcgan) or path, through ``gym.make`` too; ``bank_switch`` changes the covers mid-episode."""

import gymnasium as gym
import numpy as np
import pytest

import covercast  # noqa: F401  (registers the ids)
from covercast.covers.procedural import procedural_bank
from covercast.envs import ENV_IDS, PushScheduleEnv, make_vec

NAMES = ("procedural", "diffusion", "vae-iat", "dcgan")


def _run(env, steps=30, seed=0):
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for t in range(steps):
        obs, r, term, trunc, info = env.step(env.action_space.sample() if t % 3 else 1)
        total += r
        if term or trunc:
            break
    return total


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_env_takes_every_bank_by_name(small_named_banks, env_id, name):
    kw = {"style": 1} if env_id == "covercast/PushTiming-v0" else {}
    env = gym.make(env_id, bank=name, horizon_days=2, **kw)
    env.action_space.seed(0)
    bank = env.unwrapped.bank
    assert bank.generator == name
    assert len(bank) == (120 if name == "procedural" else 30)
    assert np.isfinite(_run(env))


@pytest.mark.parametrize("name", NAMES)
def test_the_vector_env_takes_every_bank_by_name(small_named_banks, name):
    env = make_vec(8, bank=name, horizon_days=1)
    assert env.unwrapped.bank.generator == name
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.full(8, 2))


def test_a_bank_path_and_a_bad_name(tmp_path):
    path = procedural_bank(2, seed=5).save(tmp_path / "b.npz")
    env = PushScheduleEnv(bank=str(path))
    assert len(env.bank) == 2 * 5 * 6
    with pytest.raises(ValueError, match=r"Unknown bank 'diffusoin': not one of \['procedural', "
                                         r"'diffusion', 'vae-iat', 'dcgan'\]"):
        gym.make("covercast/PushSchedule-v0", bank="diffusoin")
    with pytest.raises(FileNotFoundError, match="No cover bank"):
        PushScheduleEnv(bank=tmp_path / "missing.npz")


def test_same_name_same_covers_same_episode(small_named_banks):
    a = gym.make("covercast/PushSchedule-v0", bank="vae-iat", horizon_days=2)
    b = gym.make("covercast/PushSchedule-v0", bank="vae-iat", horizon_days=2)
    assert np.array_equal(a.unwrapped.bank.images, b.unwrapped.bank.images)
    a.action_space.seed(3)
    b.action_space.seed(3)
    assert _run(a, 48, seed=4) == _run(b, 48, seed=4)


# ------------------------------------------------------------------------------ bank_switch
def _trace(env, actions, seed):
    env.reset(seed=seed)
    out = []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs.copy(), r, info["cover"], info["opened"]))
        if term:
            break
    return out


def test_bank_switch_keeps_the_user_and_changes_the_covers(tmp_path):
    other = procedural_bank(1, seed=9)                   # 30 covers, other images
    actions = [1 + (t % 5) if t % 4 == 0 else 0 for t in range(96)]
    plain = PushScheduleEnv(horizon_days=4)
    switched = PushScheduleEnv(horizon_days=4, bank_switch=(48, other))
    base = switched.bank
    a, b = _trace(plain, actions, 1), _trace(switched, actions, 1)
    # identical up to the switch (the same user, the same stream)
    assert len(a) == len(b) == 96
    for x, y in zip(a[:48], b[:48], strict=True):
        assert np.array_equal(x[0], y[0]) and x[1:] == y[1:]
    assert switched.bank is other
    pushed = [c for (_, _, c, _) in b[48:] if c >= 0]
    assert pushed and max(pushed) < len(other)
    # the clock and the user carried on: the observation of hour 48 continues
    assert switched.population.now == pytest.approx(plain.population.now)
    # reset starts on the first bank again, and the same seed gives the same episode
    switched.reset(seed=1)
    assert switched.bank is base
    again = _trace(switched, actions, 1)
    assert len(again) == len(b)
    for x, y in zip(again, b, strict=True):
        assert np.array_equal(x[0], y[0]) and x[1:] == y[1:]


def test_bank_switch_is_checked():
    with pytest.raises(ValueError, match="pair"):
        PushScheduleEnv(bank_switch=5)
    with pytest.raises(ValueError, match=">= 1"):
        PushScheduleEnv(bank_switch=(0, "procedural"))
    with pytest.raises(ValueError, match="Unknown bank"):
        PushScheduleEnv(bank_switch=(3, "gan"))
