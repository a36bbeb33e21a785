"""Every agent speaks stable-baselines3's predict: shapes, valid actions, seeds, state."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import covercast  # noqa: F401
from covercast.agents import (
    ActivityHeuristic,
    Agent,
    HeuristicState,
    HiddenStateOracle,
    LinUCBStyleAgent,
    RandomAgent,
    StaticScheduler,
    ThompsonStyleAgent,
)
from covercast.envs import make_vec

N = 6

FACTORIES = {
    "random": (RandomAgent, ("schedule", "timing", "style")),
    "static": (StaticScheduler, ("schedule", "timing", "style")),
    "heuristic": (ActivityHeuristic, ("schedule", "timing", "style")),
    "thompson": (ThompsonStyleAgent, ("schedule", "style")),
    "linucb": (LinUCBStyleAgent, ("schedule", "style")),
}
CASES = [(name, mode) for name, (_, modes) in FACTORIES.items() for mode in modes]


def _build(name: str, mode: str, seed: int = 0) -> Agent:
    return FACTORIES[name][0](mode=mode, seed=seed)


@pytest.fixture(scope="module")
def vec_env():
    env = make_vec(N, horizon_days=1)
    env.reset(seed=0)
    yield env
    env.close()


@pytest.mark.parametrize("name,mode", CASES)
def test_single_and_batched_predictions(name, mode, random_obs_factory):
    agent = _build(name, mode)
    x = random_obs_factory(N, seed=1)
    a1, _ = agent.predict(x[0])
    assert isinstance(a1, int) and 0 <= a1 < agent.n_actions
    a, _ = _build(name, mode).predict(x)
    assert isinstance(a, np.ndarray) and a.shape == (N,) and a.dtype == np.int64
    assert a.min() >= 0 and a.max() < agent.n_actions
    # float64 and float32 observations give the same decisions
    b, _ = _build(name, mode).predict(x.astype(np.float64))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name,mode", CASES)
def test_same_seed_same_actions(name, mode, random_obs_factory):
    x = random_obs_factory(50, seed=2)
    runs = []
    for _ in range(2):
        agent = _build(name, mode, seed=11)
        state, acts = None, []
        for t in range(5):
            a, state = agent.predict(x, state, episode_start=t == 0)
            acts.append(a)
        runs.append(np.stack(acts))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_different_seeds_differ(random_obs_factory):
    x = random_obs_factory(200, seed=3)
    a, _ = RandomAgent(push_prob=0.5, seed=1).predict(x)
    b, _ = RandomAgent(push_prob=0.5, seed=2).predict(x)
    assert (a != b).any()


@pytest.mark.parametrize("agent", [
    RandomAgent(seed=0), StaticScheduler(),
    ThompsonStyleAgent(timing=StaticScheduler(), seed=0),
    LinUCBStyleAgent(timing=StaticScheduler(), seed=0),
    ThompsonStyleAgent(mode="style", seed=0)], ids=lambda a: f"{a.name}-{a.mode}")
def test_state_passes_through_stateless_agents(agent, random_obs_factory):
    token = object()
    _, state = agent.predict(random_obs_factory(N), state=token)
    assert state is token
    _, state = agent.predict(random_obs_factory(N)[0])
    assert state is None


def test_heuristic_state_round_trip(random_obs_factory):
    agent = ActivityHeuristic()
    _, st = agent.predict(random_obs_factory(N))
    assert isinstance(st, HeuristicState) and st.pushes_today.shape == (N,)
    _, st2 = agent.predict(random_obs_factory(N), st)
    assert isinstance(st2, HeuristicState)
    # the bandits carry their timing agent's state
    _, st3 = ThompsonStyleAgent(seed=0).predict(random_obs_factory(N))
    assert isinstance(st3, HeuristicState)


@pytest.mark.parametrize("name,mode", CASES)
def test_action_probabilities(name, mode, random_obs_factory):
    agent = _build(name, mode)
    x = random_obs_factory(N, seed=4)
    probs = agent.action_probabilities(x)
    assert probs.shape == (N, agent.n_actions)
    assert np.all(probs >= -1e-12)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    a, _ = _build(name, mode).predict(x)
    assert np.all(probs[np.arange(N), a] > 0)       # what it does has positive probability


def test_random_agent_probabilities_are_exact(random_obs_factory):
    agent = RandomAgent(push_prob=0.25, style_probs=[0.1, 0.2, 0.3, 0.4, 0.0])
    pr = agent.action_probabilities(random_obs_factory(2))
    np.testing.assert_allclose(pr[0], [0.75, 0.025, 0.05, 0.075, 0.1, 0.0])


@pytest.mark.parametrize("mode", ["schedule", "style"])
def test_oracle_interface_on_the_vector_env(mode, vec_env):
    agent = HiddenStateOracle(mode=mode, env=vec_env)
    obs = vec_env.unwrapped._observe()
    a, st = agent.predict(obs, state="s")
    assert a.shape == (N,) and st == "s"
    assert a.min() >= 0 and a.max() < agent.n_actions
    probs = agent.action_probabilities(obs)
    np.testing.assert_array_equal(np.argmax(probs, axis=1), a)
    b, _ = HiddenStateOracle(mode=mode, env=vec_env).predict(obs, deterministic=True)
    np.testing.assert_array_equal(a, b)


def test_update_is_a_no_op_for_fixed_agents(random_obs_factory):
    x = random_obs_factory(N)
    for agent in (RandomAgent(seed=0), StaticScheduler(), ActivityHeuristic()):
        assert not agent.learns
        before = agent.action_probabilities(x)
        agent.update(x, np.zeros(N, dtype=np.int64), np.ones(N), x, np.zeros(N, bool),
                     {"pushed": np.zeros(N), "opened": np.ones(N)})
        np.testing.assert_array_equal(before, agent.action_probabilities(x))


def test_agents_do_not_import_torch():
    code = ("import sys\n"
            "import covercast.agents, covercast.agents.evaluate, covercast.experiments.evaluate, "
            "covercast.experiments.stats\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
