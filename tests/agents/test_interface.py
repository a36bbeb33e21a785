"""Every agent speaks stable-baselines3's predict: shapes, valid actions, seeds, state."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import covercast  # noqa: F401
from covercast.agents import (
    ActivityHeuristic,
    Agent,
    HeuristicState,
    HiddenStateOracle,
    LinUCBStyleAgent,
    PredictAdapter,
    RandomAgent,
    StaticScheduler,
    ThompsonStyleAgent,
    as_agent,
    hour_of_day,
)
from covercast.agents.evaluate import evaluate, evaluate_agents, evaluate_vector
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


# ======================================================================= your own policy
# Issue 16 item 2: any object with SB3's predict is an agent; Agent's public hooks.

ENV = "covercast/PushSchedule-v0"
SHORT = {"horizon_days": 2}


class EightAndTwenty:
    """A plain object, no covercast base class: push style 0 at 08:00 and 20:00 UTC (the
    untuned StaticScheduler's rule), one observation or a batch, like SB3."""

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        x = np.atleast_2d(np.asarray(obs, dtype=np.float64))
        hour = np.rint(hour_of_day(x)) % 24
        a = np.where(np.isin(hour, (8, 20)), 1, 0)
        return (int(a[0]) if np.ndim(obs) == 1 else a), state


class CoinFlip(Agent):
    """Agent's public hooks: push with probability 0.3, style 1 or 3 with equal odds."""

    default_name = "coin"

    def decide(self, x, state, episode_start, deterministic):
        n = len(x)
        push = np.zeros(n, bool) if deterministic else self.rng.random(n) < 0.3
        return push, np.where(self.rng.random(n) < 0.5, 1, 3), state

    def distribution(self, x, state):
        style = np.zeros((len(x), self.n_styles))
        style[:, [1, 3]] = 0.5
        return np.full(len(x), 0.3), style


def test_a_plain_predict_object_is_evaluated_like_the_agent_it_copies():
    plain = evaluate(EightAndTwenty(), ENV, 4, seed=3, env_kwargs=SHORT)
    static = evaluate(StaticScheduler(), ENV, 4, seed=3, env_kwargs=SHORT)
    assert (plain["agent"] == "EightAndTwenty").all()
    assert plain["pushes"].sum() > 0
    cols = [c for c in plain.columns if c != "agent"]
    pd.testing.assert_frame_equal(plain[cols], static[cols])


def test_plain_objects_in_evaluate_agents_and_the_vector_env():
    df = evaluate_agents([EightAndTwenty(), StaticScheduler()], ENV, 3, seed=5, env_kwargs=SHORT)
    assert list(df["agent"].unique()) == ["EightAndTwenty", "static"]
    a = df[df["agent"] == "EightAndTwenty"].drop(columns="agent").reset_index(drop=True)
    b = df[df["agent"] == "static"].drop(columns="agent").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    vec = evaluate_vector(EightAndTwenty(), 20, seed=1, env_kwargs={"horizon_days": 1})
    ref = evaluate_vector(StaticScheduler(), 20, seed=1, env_kwargs={"horizon_days": 1})
    pd.testing.assert_frame_equal(vec.drop(columns="agent"), ref.drop(columns="agent"))


def test_the_public_hooks_are_evaluated_and_reproducible():
    a = evaluate(CoinFlip(), ENV, 3, seed=7, env_kwargs=SHORT)
    b = evaluate(CoinFlip(), ENV, 3, seed=7, env_kwargs=SHORT)
    pd.testing.assert_frame_equal(a, b)
    rate = a["pushes"].sum() / a["length"].sum()
    assert 0.2 < rate < 0.4


def test_the_public_hooks_are_logged_for_ope():
    from covercast.envs import make
    from covercast.ope import collect, evaluation_probabilities

    env = make(ENV, horizon_days=1)
    data = collect(env, CoinFlip(), 3, seed=0)
    f = data.frame
    push = f["action"] > 0
    np.testing.assert_allclose(f.loc[~push, "pscore"], 0.7)
    np.testing.assert_allclose(f.loc[push, "pscore"], 0.15)
    assert set(f.loc[push, "action"]) <= {2, 4}
    probs = evaluation_probabilities(CoinFlip(), data)
    np.testing.assert_allclose(probs[:, [0, 2, 4]], np.tile([0.7, 0.15, 0.15], (len(f), 1)))


def test_ope_takes_a_predict_object_with_probabilities_or_declared_deterministic():
    from covercast.envs import make
    from covercast.ope import EpsilonGreedyAgent, collect

    class WithProbs(EightAndTwenty):
        """Half the time the rule's action, half the time a uniform one; its own rng."""

        def reset(self, seed):
            self.rng = np.random.default_rng(seed)

        def action_probabilities(self, obs, state=None):
            a, _ = EightAndTwenty.predict(self, np.atleast_2d(obs))
            return np.eye(6)[a] * 0.5 + 0.5 / 6

        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            if deterministic:
                return EightAndTwenty.predict(self, obs, state)
            p = self.action_probabilities(obs)
            a = np.array([self.rng.choice(6, p=row) for row in p])
            return (int(a[0]) if np.ndim(obs) == 1 else a), state

    env = make(ENV, horizon_days=1)
    data = collect(env, WithProbs(), 2, seed=0)
    assert set(np.round(data.frame["pscore"], 6)) <= {round(0.5 + 0.5 / 6, 6), round(0.5 / 6, 6)}
    det = as_agent(EightAndTwenty(), env, deterministic=True)
    logged = collect(env, EpsilonGreedyAgent(det, epsilon=0.2), 2, seed=0)
    assert logged.frame["pscore"].min() == pytest.approx(0.2 / 6)
    assert logged.frame["pscore"].max() == pytest.approx(0.8 + 0.2 / 6)


def test_errors_for_objects_that_are_no_policy(random_obs_factory):
    from covercast.envs import make
    from covercast.ope import collect

    with pytest.raises(ValueError, match="predict"):
        evaluate(object(), ENV, 1, seed=0, env_kwargs=SHORT)
    with pytest.raises(ValueError, match="predict"):
        evaluate_agents({"x": 3}, ENV, 1, seed=0, env_kwargs=SHORT)
    with pytest.raises(ValueError, match="predict"):
        as_agent("not a policy")
    env = make(ENV, horizon_days=1)
    with pytest.raises(ValueError, match="has none: .*action_probabilities"):
        collect(env, EightAndTwenty(), 1, seed=0)

    class Nothing(Agent):
        pass

    with pytest.raises(TypeError, match="must override decide"):
        Nothing()

    class DecideOnly(Agent):
        def decide(self, x, state, episode_start, deterministic):
            return np.ones(len(x), bool), np.zeros(len(x), int), state

    with pytest.raises(NotImplementedError, match="override distribution"):
        DecideOnly().action_probabilities(random_obs_factory(2))
    with pytest.raises(ValueError, match="has none"):
        collect(env, DecideOnly(), 1, seed=0)


def test_bad_answers_from_a_policy_are_named(random_obs_factory):
    class TooMany:
        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            return np.zeros(3, dtype=np.int64), state

    class OutOfRange:
        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            return 9, state

    class NoState:
        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            return 0

    class WrongShape(Agent):
        def decide(self, x, state, episode_start, deterministic):
            return np.ones(len(x) + 1, bool), 0, state

    with pytest.raises(ValueError, match="3 actions for one observation"):
        evaluate(TooMany(), ENV, 1, seed=0, env_kwargs=SHORT)
    with pytest.raises(ValueError, match=r"actions in \[9, 9\]"):
        evaluate(OutOfRange(), ENV, 1, seed=0, env_kwargs=SHORT)
    with pytest.raises(ValueError, match=r"return \(actions, state\)"):
        evaluate(NoState(), ENV, 1, seed=0, env_kwargs=SHORT)
    with pytest.raises(ValueError, match="decide returned `push` of shape"):
        WrongShape().predict(random_obs_factory(2))
    with pytest.raises(ValueError, match="already a covercast Agent"):
        as_agent(StaticScheduler(), name="x")


def test_adapter_layout_forwarding_and_probabilities(random_obs_factory):
    from covercast.envs import make

    env = make("covercast/PushTiming-v0", horizon_days=1)
    calls = []

    class Hooks(EightAndTwenty):
        learns = True

        def update(self, *args):
            calls.append("update")

        def reset(self, seed):
            calls.append(("reset", type(seed).__name__))

        def attach(self, env):
            calls.append("attach")

    agent = as_agent(Hooks(), env, name="mine")
    assert isinstance(agent, PredictAdapter) and agent.mode == "timing"
    assert agent.n_actions == 2 and agent.name == "mine" and agent.learns
    df = evaluate(agent, env, 1, seed=0)
    assert df.attrs["learning"] == "continual"
    assert calls[:2] == ["attach", ("reset", "SeedSequence")] and "update" in calls
    x = random_obs_factory(5)
    det = as_agent(EightAndTwenty(), deterministic=True)
    p = det.action_probabilities(x)
    a, _ = det.predict(x)
    np.testing.assert_array_equal(p, np.eye(6)[a])
    assert det.config()["policy"] == "EightAndTwenty"


def test_old_private_hooks_still_work_both_ways(random_obs_factory):
    class Old(Agent):
        def _decide(self, x, state, episode_start, deterministic):
            return np.ones(len(x), bool), np.full(len(x), 2), state

        def _distribution(self, x, state):
            return np.ones(len(x)), np.eye(self.n_styles)[np.full(len(x), 2)]

    x = random_obs_factory(4)
    old = Old()
    push, style, _ = old.decide(x, None, np.zeros(4, bool), False)
    assert push.all() and (style == 2).all()
    np.testing.assert_allclose(old.action_probabilities(x)[:, 3], 1.0)
    # a class with the public hooks works where the old names are called (a bandit's timing)
    bandit = ThompsonStyleAgent(timing=CoinFlip(seed=0), seed=0)
    bandit.reset(0)
    p = bandit.action_probabilities(x)
    np.testing.assert_allclose(p[:, 0], 0.7)
    df = evaluate(ThompsonStyleAgent(timing=CoinFlip()), ENV, 2, seed=0, env_kwargs=SHORT)
    assert df["pushes"].sum() > 0
