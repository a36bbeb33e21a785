"""The compiled one-user path (numba, covercast.simulators._kernel) gives bit-identical results
to the Python lean path, and switches off cleanly.

Every test runs the same seeds and actions twice, once with the kernel and once with it
switched off (the Python lean path, which tests/envs/test_lean_path.py checks against the SimPy
engine), and compares observations, rewards, infos, outcomes and hidden states bit for bit.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from dataclasses import fields

import gymnasium as gym
import numpy as np
import pytest

import covercast.envs  # noqa: F401  (registers the ids)
from covercast.covers.procedural import default_bank
from covercast.simulators import _kernel as K
from covercast.simulators.params import default_params
from covercast.simulators.population import Population

pytest.importorskip("numba")


@pytest.fixture(scope="module")
def bank():
    return default_bank()


@pytest.fixture(scope="module")
def kernel():
    """The compiled path: skipped when the user switched it off, an error when numba is
    installed and allowed but the kernel did not load (e.g. its self-check failed)."""
    impl = K.load()
    if impl is None and os.environ.get("COVERCAST_NO_NUMBA", "") not in ("", "0"):
        pytest.skip("COVERCAST_NO_NUMBA is set")
    assert impl is not None, K.disabled_reason()
    return impl


class _Off:
    """Within the block, the compiled path is off (as with numba missing)."""

    def __enter__(self):
        K.reset_for_tests(False)

    def __exit__(self, *exc):
        K.reset_for_tests(None)


def variant(**parts):
    return default_params().with_parts(**parts)


PARAMS = {
    "default": variant(),
    # pushes wait in the tray, surveys often answered, opt-outs frequent
    "tray": variant(open={"glance_hours": 0.0}, satisfaction={"survey_rate": 0.7},
                    opt_out={"base_hazard": 0.01}),
    "no_drift": variant(drift={"sd_per_day": 0.0, "reversion_per_day": 0.0}),
    "pull_only": variant(drift={"sd_per_day": 0.0, "reversion_per_day": 0.3}),
}


def env_digest(env_id: str, episodes: int, **kw) -> str:
    """Hash of every observation, reward, flag and info of random-action episodes, and of
    the hidden state and last outcome at each episode's end."""
    env = gym.make(env_id, **kw)
    h = hashlib.sha256()
    for ep in range(episodes):
        obs, info = env.reset(seed=ep)
        env.action_space.seed(ep)
        h.update(obs.tobytes() + repr(info).encode())
        done = False
        while not done:
            obs, reward, term, trunc, info = env.step(env.action_space.sample())
            assert obs.dtype == np.float32 and obs.flags.writeable
            h.update(obs.tobytes())
            h.update(repr((reward, term, trunc, sorted(info.items()))).encode())
            h.update(repr([type(v).__name__ for _, v in sorted(info.items())]).encode())
            done = term or trunc
        u = env.unwrapped
        h.update(pickle.dumps(u.hidden_state()))
        out = u.population.last_outcome
        for f in fields(out):
            h.update(np.ascontiguousarray(getattr(out, f.name)).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("env_id, kw", [
    ("covercast/CoverStyle-v0", {}),
    ("covercast/CoverStyle-v0", {"slot_minutes": 15}),
    ("covercast/CoverStyle-v0", {"push_hours": (9,)}),
    ("covercast/CoverStyle-v0", {"push_hours": (0, 7.5, 13, 21.25), "slot_minutes": 15,
                                 "params": PARAMS["tray"]}),
    ("covercast/PushTiming-v0", {}),
    ("covercast/PushTiming-v0", {"style": "random", "slot_minutes": 15,
                                 "params": PARAMS["tray"]}),
    ("covercast/PushTiming-v0", {"style": 3, "params": PARAMS["pull_only"]}),
    ("covercast/PushSchedule-v0", {}),
    ("covercast/PushSchedule-v0", {"slot_minutes": 15, "params": PARAMS["no_drift"]}),
    ("covercast/PushSchedule-v0", {"history_days": 14}),
    ("covercast/CoverStyle-v0", {"history_days": 3.5, "slot_minutes": 15}),
])
def test_envs_compiled_equal_python(kernel, env_id, kw):
    episodes = 3 if kw.get("slot_minutes") == 15 else 6
    fast = env_digest(env_id, episodes, **kw)
    with _Off():
        slow = env_digest(env_id, episodes, **kw)
    assert fast == slow


def test_cover_style_runs_compiled(kernel):
    env = gym.make("covercast/CoverStyle-v0")
    env.reset(seed=0)
    env.step(1)
    assert env.unwrapped.population._k is not None       # the kernel holds the state
    with _Off():
        env = gym.make("covercast/CoverStyle-v0")
        env.reset(seed=0)
        env.step(1)
        assert env.unwrapped.population._k is None


def test_observation_state_moves_back_and_forth(kernel):
    """The observation the kernel builds equals UserObservation's after its state is moved
    back (the Python path's), and runs that switch between the two stay identical."""
    def run(switch: bool) -> list:
        env = gym.make("covercast/CoverStyle-v0", slot_minutes=30, push_hours=(7.5, 19))
        u = env.unwrapped
        out = []
        for ep in range(3):
            obs, _ = env.reset(seed=ep)
            env.action_space.seed(ep)
            done, t = False, 0
            while not done:
                obs, reward, term, trunc, info = env.step(env.action_space.sample())
                out.append((obs.tobytes(), reward, sorted(info.items())))
                if switch and t % 5 == 2:
                    assert u._kb is not None
                    assert u._observe().tobytes() == obs.tobytes()    # Python build
                    assert u._kb is None
                    out.append(repr(u.population.observe_user()))
                    assert u.population._k is not None
                    u.hidden_state()                                  # state to Python
                    assert u.population._k is None
                done, t = term or trunc, t + 1
        return out

    fast = run(True)
    with _Off():
        slow = run(False)
    assert [x for x in fast if not isinstance(x, str)] == slow


def pop_digest(pop: Population, n: int, seed: int) -> str:
    """Hash of a random mix of every one-user call (compiled ones and the ones that move the
    state back to Python), over ``n`` calls."""
    rng = np.random.default_rng(seed)
    h = hashlib.sha256()
    spd = pop._spd

    def feed_outcome(out):
        for f in fields(out):
            h.update(np.ascontiguousarray(getattr(out, f.name)).tobytes())

    for _ in range(n):
        r = rng.random()
        if r < 0.35:
            h.update(repr(pop.step_user(int(rng.integers(-1, 5)))).encode())
        elif r < 0.55:
            h.update(repr(pop.advance_user(int(rng.integers(1, spd + 1)))).encode())
        elif r < 0.75:
            h.update(repr(pop.step_user_span(int(rng.integers(-1, 5)),
                                             int(rng.integers(0, spd + 1)))).encode())
        elif r < 0.78:
            h.update(repr(pop.advance_user(int(rng.integers(spd + 1, 3 * spd)))).encode())
        elif r < 0.81:
            feed_outcome(pop.step(push=np.zeros(1, np.int64), style=None))   # any cover
        elif r < 0.84:
            out, sessions = pop.advance(int(rng.integers(1, 20)))
            feed_outcome(out)
            h.update(sessions.tobytes())
        elif r < 0.87:
            feed_outcome(pop.last_outcome)
        elif r < 0.90:
            for v in pop.hidden_state().values():
                h.update(np.ascontiguousarray(v).tobytes())
        elif r < 0.93:
            for v in pop.observe().values():
                h.update(np.ascontiguousarray(v).tobytes())
        elif r < 0.96:
            pop = pickle.loads(pickle.dumps(pop))
        else:
            h.update(repr(pop.observe_user()).encode())
    feed_outcome(pop.last_outcome)
    # the streams where the engine takes them over (buffered draws put back)
    pop._leave_lean()
    h.update(pickle.dumps(sorted((k, v.bit_generator.state) for k, v in pop._rng.items())))
    h.update(repr((pop._sess_buf, pop._sess_buf_pos)).encode())
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(PARAMS))
@pytest.mark.parametrize("slot", [60, 15])
def test_population_compiled_equals_python(bank, kernel, name, slot):
    # long enough for several weeks of session counts and blocks of drift draws
    for seed in (0, 1):
        def make(seed=seed):
            return Population(PARAMS[name], 1, bank=bank, seed=seed, slot_minutes=slot)

        fast = pop_digest(make(), 300, seed)
        with _Off():
            slow = pop_digest(make(), 300, seed)
        assert fast == slow


def test_population_hands_over_to_the_engine(bank, kernel):
    def run():
        pop = Population(PARAMS["tray"], 1, bank=bank, seed=4)
        out = [pop.step_user_span(2, 11) for _ in range(20)]
        ids = pop.schedule_push([0], at=pop.now + 1.5, style=0)   # starts the engine
        assert not pop._lean and pop._k is None
        out += [pop.step_user(1) for _ in range(30)] + [ids.tolist()]
        return repr(out), pickle.dumps(pop.hidden_state())

    fast = run()
    with _Off():
        assert run() == fast


def test_any_cover_and_blocked_pushes(bank, kernel):
    """Pushes with a cover from the whole bank (code -2) and pushes blocked after an
    opt-out, which the environments never send, give the lean path's slot records."""
    p = variant(opt_out={"base_hazard": 0.2})
    a = Population(p, 1, bank=bank, seed=6)
    b = Population(p, 1, bank=bank, seed=6)
    for t in range(60):
        code = -2 if t % 2 else t % 5
        a._k_call(code, 0)
        a._k_out()
        b._lean_step(code)
        assert a._l_slot == b._l_slot
    assert b._lout                                     # there were blocked pushes too


def test_streams_are_seeded_as_numpy_does(kernel):
    from covercast.simulators.population import _STREAMS, _Streams

    pool: dict = {}                     # generators reused from one seed to the next
    for seed in (0, 1, 2**62 + 12345, 7, 2**100 + 3):
        ss = np.random.SeedSequence(seed)
        streams = _Streams(np.random.SeedSequence(seed), pool=pool)
        for name, child in zip(_STREAMS, ss.spawn(len(_STREAMS)), strict=True):
            assert streams[name].bit_generator.state == \
                np.random.default_rng(child).bit_generator.state
    assert set(pool) == set(_STREAMS)


def test_self_check_finds_numpy_bits(kernel):
    assert K.disabled_reason() is None
    assert kernel.lanes() in (2, 4, 8)
    assert kernel.self_check() is True


def test_switch_off_and_light_import(tmp_path):
    code = ("import sys, covercast, covercast.envs\n"
            "assert 'numba' not in sys.modules, 'numba imported by import covercast.envs'\n"
            "import gymnasium as gym\n"
            "from covercast.simulators import _kernel as K\n"
            "env = gym.make('covercast/CoverStyle-v0'); env.reset(seed=0); env.step(0)\n"
            "assert K.load() is None and 'COVERCAST_NO_NUMBA' in K.disabled_reason()\n"
            "assert env.unwrapped.population._k is None\n"
            "assert 'numba' not in sys.modules\n")
    envvars = dict(os.environ, COVERCAST_NO_NUMBA="1")
    done = subprocess.run([sys.executable, "-c", code], env=envvars, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
