"""Style bandits: they learn the better style on synthetic bandits with a known best arm."""

from __future__ import annotations

import numpy as np
import pytest

from covercast.agents import (
    LINUCB_CONTEXT_NAMES,
    LinUCBStyleAgent,
    StaticScheduler,
    ThompsonStyleAgent,
    linucb_context,
)
from covercast.envs.observation import PROFILE_SLICE


class SyntheticStyleBandit:
    """A tiny stand-in for CoverStyle-v0: every step is a push, opened with a probability
    that depends on the style (and, with two user kinds, on the user's observed profile)."""

    def __init__(self, open_probs, obs_factory, seed=0, kinds=None):
        self.p = np.asarray(open_probs, dtype=float)          # (n_kinds, n_styles)
        if self.p.ndim == 1:
            self.p = self.p[None]
        self.rng = np.random.default_rng(seed)
        self.make = obs_factory
        self.kinds = kinds
        self.t = 0

    def observe(self, kind):
        prof = np.full(24, 0.01)
        prof[8 if kind == 0 else 20] = 1.0
        return self.make(float((12 * self.t) % 24), (self.t // 2) % 7,
                         profile=prof / prof.sum(), sessions_per_day=4.0)

    def run(self, agent, steps):
        chosen = []
        kind = 0
        obs = self.observe(kind)
        for _ in range(steps):
            a, _ = agent.predict(obs)
            opened = int(self.rng.random() < self.p[kind, a])
            self.t += 1
            next_kind = int(self.rng.integers(self.p.shape[0]))
            nxt = self.observe(next_kind)
            agent.update(obs, a, float(opened), nxt, False, {"pushed": 1, "opened": opened})
            chosen.append((kind, a))
            obs, kind = nxt, next_kind
        return np.array(chosen)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thompson_learns_the_best_style(seed, obs_factory):
    env = SyntheticStyleBandit([0.05, 0.05, 0.35, 0.05, 0.05], obs_factory, seed=seed)
    agent = ThompsonStyleAgent(mode="style", seed=seed)
    chosen = env.run(agent, 600)
    assert np.argmax(agent.posterior_mean[0]) == 2
    assert (chosen[-200:, 1] == 2).mean() > 0.8
    assert agent.n_pushes_learned + agent.n_pending == 600
    # deterministic = the posterior-mean argmax
    a, _ = agent.predict(obs_factory(), deterministic=True)
    assert a == 2


def test_thompson_action_probabilities_match_sampling(obs_factory):
    agent = ThompsonStyleAgent(mode="style", seed=3)
    agent.alpha[:] = [[3, 6, 2, 1, 4]]
    agent.beta[:] = [[20, 18, 25, 30, 22]]
    x = np.repeat(obs_factory()[None], 20_000, axis=0)
    a, _ = agent.predict(x)
    freq = np.bincount(a, minlength=5) / a.size
    probs = agent.action_probabilities(obs_factory())[0]
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-9)
    np.testing.assert_allclose(freq, probs, atol=0.015)


def test_thompson_per_user_posteriors(obs_factory):
    agent = ThompsonStyleAgent(mode="style", per_user=True, seed=0)
    x = np.stack([obs_factory()] * 2)
    agent.predict(x)
    for _ in range(40):             # row 0 always opens style 1; row 1 never opens
        agent.update(x, np.array([1, 1]), np.zeros(2), x, np.zeros(2, bool),
                     {"pushed": np.ones(2), "opened": np.array([1, 0])})
    assert agent.alpha.shape == (2, 5)
    # row 0: 40 opens; row 1: 39 failures learned, the last push still pending
    assert agent.alpha[0, 1] == 41 and agent.beta[1, 1] == 40 and agent.n_pending == 1
    with pytest.raises(ValueError, match="reset"):
        agent.predict(np.stack([obs_factory()] * 3))


@pytest.mark.parametrize("seed", [0, 1])
def test_linucb_learns_the_best_style_per_context(seed, obs_factory):
    # morning users open style 1, evening users style 3: a single best arm does not exist
    p = np.full((2, 5), 0.05)
    p[0, 1] = p[1, 3] = 0.4
    env = SyntheticStyleBandit(p, obs_factory, seed=seed)
    agent = LinUCBStyleAgent(mode="style", alpha=0.3, seed=seed)
    chosen = env.run(agent, 800)
    last = chosen[-300:]
    for kind, best in ((0, 1), (1, 3)):
        sel = last[last[:, 0] == kind, 1]
        assert (sel == best).mean() > 0.8
    assert agent.counts.sum() + agent.n_pending == 800


def test_linucb_context_is_documented(obs_factory):
    prof = np.zeros(24)
    prof[7] = 1.0
    x = obs_factory(12.0, 5, profile=prof, pushes_7d=4, opens_7d=1)[None]
    c = linucb_context(x)
    assert c.shape == (1, len(LINUCB_CONTEXT_NAMES))
    np.testing.assert_allclose(c[0, :4], [0, 1, 0, 0])
    assert c[0, LINUCB_CONTEXT_NAMES.index("weekend")] == 1
    assert c[0, LINUCB_CONTEXT_NAMES.index("open_rate_7d")] == pytest.approx(0.25)
    assert x[0, PROFILE_SLICE].sum() == pytest.approx(1.0)


def test_delayed_open_is_credited_to_the_pending_push(obs_factory):
    agent = ThompsonStyleAgent(mode="schedule", timing=StaticScheduler(), seed=0,
                               credit_window_h=24)
    x = [obs_factory(float(h)) for h in range(8, 14)]
    none = {"pushed": 0, "opened": 0}
    agent.update(x[0], 3, 0.0, x[1], False, {"pushed": 1, "opened": 0})   # push style 2
    agent.update(x[1], 0, 0.0, x[2], False, none)
    agent.update(x[2], 0, 1.0, x[3], False, {"pushed": 0, "opened": 1})   # seen late, opened
    assert agent.alpha[0, 2] == 2 and agent.beta[0, 2] == 1
    # a push never opened fails when the window passes
    agent.update(x[3], 5, 0.0, x[4], False, {"pushed": 1, "opened": 0})   # style 4
    for h in range(23):
        agent.update(obs_factory(float(h)), 0, 0.0, obs_factory(float(h + 1)), False, none)
    assert agent.beta[0, 4] == 1
    agent.update(obs_factory(23.0), 0, 0.0, obs_factory(0.0), False, none)
    assert agent.beta[0, 4] == 2
    # a newer push replaces an unopened one: the older one fails
    agent.update(x[0], 1, 0.0, x[1], False, {"pushed": 1, "opened": 0})   # style 0
    agent.update(x[1], 2, 0.0, x[2], False, {"pushed": 1, "opened": 0})   # style 1
    assert agent.beta[0, 0] == 2 and agent.beta[0, 1] == 1
    # opting out fails the pending push
    agent.update(x[2], 0, -5.0, x[3], True, {"pushed": 0, "opened": 0, "opted_out": True})
    assert agent.beta[0, 1] == 2
    assert agent.n_pushes_learned == 4


def test_blocked_push_is_not_learned(obs_factory):
    agent = ThompsonStyleAgent(mode="style", seed=0)
    agent.update(obs_factory(8.0), 2, 0.0, obs_factory(9.0), False,
                 {"pushed": 0, "opened": 0})
    agent.update(obs_factory(9.0), 2, 0.0, obs_factory(10.0), True,
                 {"pushed": 0, "opened": 0})
    assert agent.n_pushes_learned == 0


def test_bandit_uses_its_timing_agent(obs_factory):
    agent = ThompsonStyleAgent(timing=StaticScheduler(hours=(8,)), seed=0)
    a, _ = agent.predict(np.stack([obs_factory(8.0), obs_factory(9.0)]))
    assert a[0] > 0 and a[1] == 0
    probs = agent.action_probabilities(np.stack([obs_factory(8.0), obs_factory(9.0)]))
    assert probs[1, 0] == 1.0 and probs[0, 0] == 0.0
    np.testing.assert_allclose(probs[0, 1:], 0.2, atol=1e-6)   # uniform prior: each style 1/5


def test_reset_forgets_and_reseeds(obs_factory):
    env = SyntheticStyleBandit([0.05, 0.05, 0.35, 0.05, 0.05], obs_factory, seed=0)
    agent = ThompsonStyleAgent(mode="style", seed=0)
    env.run(agent, 50)
    agent.reset(7)
    assert agent.n_pushes_learned == 0 and np.all(agent.alpha == 1)
    x = np.repeat(obs_factory()[None], 50, axis=0)
    a1, _ = agent.predict(x)
    agent.reset(7)
    a2, _ = agent.predict(x)
    np.testing.assert_array_equal(a1, a2)


def test_bandit_argument_errors():
    with pytest.raises(ValueError, match="timing"):
        ThompsonStyleAgent(mode="timing")
    with pytest.raises(ValueError, match="prior"):
        ThompsonStyleAgent(prior=(0, 1))
    with pytest.raises(ValueError, match="n_styles"):
        LinUCBStyleAgent(n_styles=3, timing=StaticScheduler())
    with pytest.raises(ValueError, match="timing"):
        LinUCBStyleAgent(timing="heuristic")
    with pytest.raises(ValueError, match="ridge"):
        LinUCBStyleAgent(ridge=0)
