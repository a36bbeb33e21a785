"""The lean one-user path of Population gives bit-identical results to the SimPy engine.

The single-user environments run on it; these tests run the same seeds and actions through the
lean path and through the engine (forced with ``_leave_lean()``), including a hand-over from one
to the other mid-run, and compare every outcome field, observation and hidden state bit for bit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
from dataclasses import fields

import numpy as np
import pytest
import simpy

from covercast.covers.procedural import default_bank
from covercast.simulators.params import default_params
from covercast.simulators.population import Population


@pytest.fixture(scope="module")
def bank():
    return default_bank()


def variant(**parts):
    return default_params().with_parts(**parts)


PARAMS = {
    "default": variant(),
    # pushes wait in the tray (seen later, at sessions), often surveyed, opt-outs frequent
    "tray": variant(open={"glance_hours": 0.0}, satisfaction={"survey_rate": 0.7},
                    opt_out={"base_hazard": 0.01}),
}


def digest(pop: Population, steps: int, seed: int, p_push: float, leave_at: int | None,
           advance: bool = False) -> str:
    """Hash of every outcome, observation and hidden state along a random run."""
    rng = np.random.default_rng(seed)
    h = hashlib.sha256()

    def feed(out):
        for f in fields(out):
            a = np.asarray(getattr(out, f.name))
            h.update(str(a.dtype).encode())
            h.update(np.ascontiguousarray(a).tobytes())

    for t in range(steps):
        if t == leave_at:
            pop._leave_lean()
        if rng.random() < p_push:
            style = int(rng.integers(-1, 5))
            feed(pop.step(push=np.zeros(1, np.int64), style=None if style < 0 else style))
        elif advance and rng.random() < 0.3:
            out, sessions = pop.advance(int(rng.integers(1, 30)))
            feed(out)
            h.update(sessions.tobytes())
        else:
            feed(pop.step())
        if t % 3 == 0:
            for v in pop.observe().values():
                h.update(np.ascontiguousarray(v).tobytes())
            for v in pop.hidden_state().values():
                h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(PARAMS))
@pytest.mark.parametrize("slot", [60, 5, 120])
def test_lean_path_equals_the_engine(bank, name, slot):
    steps = {60: 700, 5: 1500, 120: 400}[slot]
    for seed, p_push in ((0, 0.15), (1, 0.7)):
        def make(seed=seed):
            return Population(PARAMS[name], 1, bank=bank, seed=seed, slot_minutes=slot)

        engine = make()
        engine._leave_lean()
        ref = digest(engine, steps, seed, p_push, None)
        lean = make()
        assert lean._lean
        assert digest(lean, steps, seed, p_push, None) == ref
        assert lean._lean                                  # stayed lean all along
        assert digest(make(), steps, seed, p_push, leave_at=steps // 3) == ref


def busy_params():
    """Every push seen at once, opened and engaged with about even odds, no opt-outs: each
    push is a coin flip, so a wrong probability anywhere in the lean path shows."""
    p = default_params()
    segs = [dataclasses.replace(s, open_intercept=0.0) for s in p.segments]
    return dataclasses.replace(
        p, segments=segs,
        open=dataclasses.replace(p.open, glance_hours=50.0, beta_fatigue=0.0),
        opt_out=dataclasses.replace(p.opt_out, base_hazard=0.0, fatigue_coef=0.0),
        engagement=dataclasses.replace(p.engagement, like_intercept=0.0, share_intercept=0.0,
                                       comment_intercept=0.0),
        satisfaction=dataclasses.replace(p.satisfaction, survey_rate=0.5))


def test_lean_path_equals_the_engine_push_after_push(bank):
    def make():
        return Population(busy_params(), 1, bank=bank, seed=11)

    engine = make()
    engine._leave_lean()
    ref = digest(engine, 3000, 5, 1.0, None)
    assert digest(make(), 3000, 5, 1.0, None) == ref


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_advance_equals_single_steps(bank, name):
    for slot in (60, 5):
        def make(slot=slot):
            return Population(PARAMS[name], 1, bank=bank, seed=3, slot_minutes=slot)

        engine = make()
        engine._leave_lean()
        ref = digest(engine, 300, 4, 0.3, None, advance=True)
        assert digest(make(), 300, 4, 0.3, None, advance=True) == ref


def test_advance_matches_step_by_step_totals(bank):
    a = Population(default_params(), 1, bank=bank, seed=5)
    b = Population(default_params(), 1, bank=bank, seed=5)
    a.step(push=np.zeros(1, np.int64), style=2)
    b.step(push=np.zeros(1, np.int64), style=2)
    out, sessions = a.advance(30)
    singles = [b.step() for _ in range(30)]
    assert sessions[:, 0].tolist() == [int(o.session_count.sum()) for o in singles]
    assert out.n_opens == sum(o.n_opens for o in singles)
    assert (out.start_h, out.end_h) == (singles[0].start_h, singles[-1].end_h)
    assert a.last_outcome is out and a.now == b.now
    with pytest.raises(ValueError, match="n_slots"):
        a.advance(0)


def test_advance_on_a_population(bank):
    pop = Population(default_params(), 50, bank=bank, seed=0)
    pop.step(push=np.arange(50), style=1)
    out, sessions = pop.advance(12)
    assert sessions.shape == (12, 50)
    dense = np.zeros(50, dtype=np.int64)
    dense[out.session_user] = out.session_count
    assert np.array_equal(dense, sessions.sum(axis=0))


def test_lean_population_pickles_and_hands_over(bank):
    pop = Population(default_params(), 1, bank=bank, seed=8)
    digest(pop, 50, 0, 0.4, None)
    clone = pickle.loads(pickle.dumps(pop))
    assert clone._lean
    assert digest(pop, 200, 1, 0.4, None) == digest(clone, 200, 1, 0.4, None)
    # reading `env` or scheduling a push starts the engine; results do not change
    a, b = Population(default_params(), 1, bank=bank, seed=9), \
        Population(default_params(), 1, bank=bank, seed=9)
    digest(a, 40, 2, 0.4, None)
    digest(b, 40, 2, 0.4, None)
    assert isinstance(a.env, simpy.Environment) and not a._lean
    assert digest(a, 100, 3, 0.4, None) == digest(b, 100, 3, 0.4, None)
    ids = b.schedule_push([0], at=b.now + 1.5, style=0)
    assert not b._lean
    fired = [b.step() for _ in range(3)]
    assert fired[1].push_id.tolist() == ids.tolist()


def test_replace_users_from_the_lean_path(bank):
    pop = Population(default_params(), 1, bank=bank, seed=1)
    digest(pop, 60, 0, 0.5, None)
    pop.replace_users([0])
    assert not pop._lean
    assert pop.observe()["pushes_7d"][0] == 0
    digest(pop, 60, 1, 0.5, None)
    assert pop.observe()["pushes_24h"][0] >= 0


def test_lean_formulas_are_the_response_module_bit_for_bit(bank):
    """The lean open probability, fatigue, sigmoid and survey score equal
    :mod:`covercast.simulators.response` exactly, for many states (not only on average)."""
    from covercast.simulators import response as R

    p = default_params()
    pop = Population(p, 1, bank=bank, seed=2)
    rng = np.random.default_rng(0)
    for _ in range(300):
        pop._fatigue[0] = rng.gamma(1.0, 3.0) if rng.random() < 0.8 else 0.0
        pop._fatigue_t[0] = rng.uniform(0, 100)
        pop._lf, pop._lft = float(pop._fatigue[0]), float(pop._fatigue_t[0])   # the lean state
        t = pop._fatigue_t[0] + rng.uniform(0, 50)
        cover, topic = int(rng.integers(len(bank.quality))), int(rng.integers(len(p.topics)))
        delay = rng.uniform(0, 20) if rng.random() < 0.5 else 0.0
        prob, match, aff, fat = pop._lean_open_probability(cover, topic, t, delay)
        seg = pop._segment[0]
        how = pop._hour_of_week(np.array([t]))
        ref_fat = R.fatigue_at(pop._fatigue[:1], pop._fatigue_t[:1], np.array([t]),
                               p.fatigue.half_life_h)
        ref_match = np.einsum("ij,ij->i", pop._taste[[0]], pop._features[[cover]])
        ref = R.open_probability(pop._seg_intercept[[seg]], pop._rel_act_table[[seg], how],
                                 ref_match, pop._quality[[cover]], pop._topic_aff[[0], [topic]],
                                 ref_fat, np.array([delay]), p.open)
        assert (prob, match, fat) == (ref[0], ref_match[0], ref_fat[0])
        x = rng.normal(0, 5)
        assert Population._lean_sigmoid(x) == R.sigmoid(np.array([x]))[0]
    cuts = np.asarray(p.satisfaction.cutpoints)
    for latent in np.concatenate([rng.normal(0, 3, 500), cuts]):
        lean = 1 + sum(1 for cut in p.satisfaction.cutpoints if cut < latent)
        assert lean == 1 + np.searchsorted(cuts, latent, side="left")


def test_scalar_and_array_bounds_draw_the_same_integers():
    """The lean path draws a cover index with a scalar bound where the engine uses a
    one-element array bound; numpy gives the same numbers and leaves the same state."""
    for k in (1, 4, 7, 32, 160, 1000):
        a, b = np.random.default_rng(k), np.random.default_rng(k)
        x = [int(a.integers(0, np.array([k]))[0]) for _ in range(200)]
        y = [int(b.integers(0, k)) for _ in range(200)]
        assert x == y and a.random() == b.random()


@pytest.mark.parametrize("name", sorted(PARAMS))
@pytest.mark.parametrize("slot", [60, 5])
def test_step_user_and_advance_user_equal_the_engine(bank, name, slot):
    """The summaries of the one-user fast path equal the engine's outcomes, slot by slot and
    over quiet spans; the lazily built outcome equals the engine's too."""
    from covercast.simulators.population import _user_summary

    lean = Population(PARAMS[name], 1, bank=bank, seed=21, slot_minutes=slot)
    engine = Population(PARAMS[name], 1, bank=bank, seed=21, slot_minutes=slot)
    engine._leave_lean()
    rng = np.random.default_rng(2)
    for t in range(600):
        if rng.random() < 0.2:
            n = int(rng.integers(1, 40))
            got, sessions = lean.advance_user(n)
            out, ref_sessions = engine.advance(n)
            assert sessions == ref_sessions[:, 0].tolist()
        else:
            style = int(rng.integers(-1, 5))
            got = lean.step_user(style)
            out = engine.step(push=np.zeros(1, np.int64), style=style) if style >= 0 \
                else engine.step()
        assert got == _user_summary(out), t
        assert [type(x) for x in got] == [type(x) for x in _user_summary(out)]
        if t % 50 == 0:
            mine = lean.last_outcome
            for f in fields(out):
                assert np.array_equal(np.asarray(getattr(mine, f.name)),
                                      np.asarray(getattr(out, f.name))), f.name
    assert lean._lean
    assert engine.step_user(2) == _user_summary(engine.last_outcome)   # engine mode too
    with pytest.raises(ValueError, match="style"):
        lean.step_user(5)
    with pytest.raises(ValueError, match="style"):
        lean.step_user(True)
    with pytest.raises(ValueError, match="n_slots"):
        lean.advance_user(0)
    with pytest.raises(ValueError, match="one-user"):
        Population(default_params(), 2, bank=bank, seed=0).step_user(-1)


def test_lean_cover_draws_are_numpys_integers():
    """The lean path's bounded integers (Lemire on buffered 64-bit words) are numpy's own,
    and the stream is left where numpy leaves it, whatever is drawn next."""
    pop = Population(default_params(), 1, seed=0)
    rng = np.random.default_rng(5)
    for trial in range(30):
        pop.reset(trial)
        ref = np.random.default_rng(np.random.SeedSequence(trial).spawn(8)[5])  # "actions"
        bounds = rng.choice([1, 2, 3, 7, 24, 120, 1000, 2**31 + 11, 2**32 - 1],
                            size=int(rng.integers(0, 200))).tolist()
        got = [pop._lean_integer(k) for k in bounds]
        want = [int(ref.integers(0, np.array([k]))[0]) for k in bounds]
        assert got == want
        pop._lean_sync_actions()
        actions = pop._rng["actions"]
        assert actions.bit_generator.state == ref.bit_generator.state
        assert actions.integers(0, 1000, size=5).tolist() == ref.integers(0, 1000, size=5).tolist()
        assert actions.random() == ref.random()


def test_streams_are_made_lazily_and_equal_spawning():
    pop = Population(default_params(), 1, seed=17)
    assert "log" not in pop._rng and "policy" not in pop._rng
    kids = np.random.SeedSequence(17).spawn(8)
    for i, name in reversed(list(enumerate(("users", "sessions", "session_times", "responses",
                                            "drift", "actions", "policy", "log")))):
        ref = np.random.default_rng(kids[i])
        if name == "users":
            ref.random(100)          # what drawing the user took (checked below)
            continue
        assert pop._rng[name].random(3).tolist() == ref.random(3).tolist(), name
    clone = pickle.loads(pickle.dumps(pop))
    assert clone._rng["log"].random() == pop._rng["log"].random()
    # a SeedSequence of the caller's is spawned from, as before
    ss = np.random.SeedSequence(3)
    Population(default_params(), 1, seed=ss)
    assert ss.n_children_spawned == 8
    a = Population(default_params(), 4, seed=np.random.SeedSequence(3))
    b = Population(default_params(), 4, seed=3)
    assert np.array_equal(a.hidden_state()["taste"], b.hidden_state()["taste"])


@pytest.mark.parametrize("slot", [60, 5])
def test_replacing_the_user_leaves_the_session_stream_as_drawing_by_day(bank, slot):
    """One user's session counts are drawn a week at a time; replacing the user forgets the
    unused ones and leaves the stream where drawing a day at a time would have."""
    spd = 1440 // slot
    for n_steps in (0, 1, spd - 1, spd, spd + 1, 3 * spd + 5, 7 * spd, 7 * spd + 2):
        pop = Population(default_params(), 1, bank=bank, seed=8, slot_minutes=slot)
        for _ in range(n_steps):
            pop.step()
        seg, mult = pop._segment[0], pop._multiplier[0]
        pop._drop_session_buffer()
        ref = np.random.default_rng(np.random.SeedSequence(8).spawn(8)[1])   # "sessions"
        begun = n_steps + 1 if n_steps else 0      # slots whose sessions were drawn
        days = -(-begun // spd)
        for d in range(days):
            sws = (pop._week0_slot + d * spd + np.arange(spd)) % pop._slots_per_week
            ref.poisson(pop._slot_rate[seg, sws] * mult)
        assert pop._rng["sessions"].bit_generator.state == ref.bit_generator.state, n_steps


def test_env_rollouts_are_the_same_on_the_engine(bank):
    """A single-user env gives the same episode whether its population runs the lean path
    or the SimPy engine (reading ``population.env`` starts the engine)."""
    import gymnasium as gym

    import covercast  # noqa: F401

    for env_id, kwargs in (("covercast/PushSchedule-v0", {}),
                           ("covercast/CoverStyle-v0", {"params": PARAMS["tray"]}),
                           ("covercast/PushTiming-v0", {"params": PARAMS["tray"],
                                                        "slot_minutes": 30})):
        runs = []
        for switch in (None, 0, 40):
            env = gym.make(env_id, **kwargs)
            obs, _ = env.reset(seed=4)
            env.action_space.seed(4)
            seq = [obs.tobytes()]
            for t in range(150):
                if t == switch:
                    assert env.unwrapped.population.env is not None
                obs, r, te, tr, info = env.step(env.action_space.sample())
                seq.append((obs.tobytes(), r, te, tr, sorted(info.items())))
                if te or tr:
                    obs, _ = env.reset()
                    seq.append(obs.tobytes())
                    if switch is not None:
                        env.unwrapped.population.env    # noqa: B018 (the new episode too)
            runs.append(seq)
        assert runs[0] == runs[1] == runs[2], env_id


def test_user_draws_are_numpys_choice_and_gamma():
    """Drawing a user skips numpy's argument checks but not its numbers: the segment is
    ``rng.choice(n, p=...)``'s and a one-user activity multiplier ``rng.gamma(k, 1/k)``'s."""
    from covercast.simulators import response as R

    pop = Population(default_params(), 1, seed=0)
    for s in range(400):
        m = 1 + s % 6
        a, b = np.random.default_rng(s), np.random.default_rng(s)
        seg = pop._seg_cdf.searchsorted(a.random(m), side="right")
        assert np.array_equal(seg, b.choice(pop._n_seg, size=m, p=pop._seg_p))
        k = pop._seg_shape[seg[:1]]
        one = R.activity_multiplier(k, a)
        assert one.shape == (1,) and one.dtype == np.float64
        assert np.array_equal(one, b.gamma(k, 1.0 / k))
        assert a.random() == b.random()
    with pytest.raises(ValueError, match="shape"):
        R.activity_multiplier(np.array([0.0]), np.random.default_rng(0))


@pytest.mark.parametrize("days", [0, 1, 15, 16, 17, 40])
def test_lean_drift_leaves_the_drift_stream_as_drawing_by_day(bank, days):
    """The lean drift takes its draws a block of days at a time; handing over to the engine
    (or pickling) leaves the ``drift`` stream where one draw a day would have, and the taste
    and topic affinity are the engine's."""
    p = default_params()
    pop = Population(p, 1, bank=bank, seed=6)
    engine = Population(p, 1, bank=bank, seed=6)
    engine._leave_lean()
    if days:
        pop.advance_user(24 * days)
        engine.advance(24 * days)
    clone = pickle.loads(pickle.dumps(pop))
    size = p.n_features + len(p.topics)
    ref = np.random.default_rng(np.random.SeedSequence(6).spawn(8)[4])    # "drift"
    for _ in range(days):
        ref.standard_normal(size)
    for q in (pop, clone):
        q._leave_lean()
        assert q._rng["drift"].bit_generator.state == ref.bit_generator.state
        for key in ("taste", "topic_affinity"):
            assert np.array_equal(q.hidden_state()[key], engine.hidden_state()[key]), key
    # the next days drift alike on both
    pop.advance(48)
    engine.advance(48)
    assert np.array_equal(pop.hidden_state()["taste"], engine.hidden_state()["taste"])


def test_lean_slot_times_are_the_clock_sums(bank):
    """The lean path's slot start times (a table grown a week at a time) are the floats the
    slot-by-slot clock reaches, also past the table's first growth and across resets."""
    for slot in (60, 5, 7 * 1440 // 7):
        pop = Population(default_params(), 1, bank=bank, seed=1, slot_minutes=slot)
        t = 0.0
        for k in range(3 * pop._slots_per_week + 3):
            assert pop._lean_times(k)[k] == t, (slot, k)
            t += slot / 60.0
        pop.reset(2)
        pop.advance_user(np.int64(2 * pop._slots_per_week + 1))     # numpy integers too
        assert pop.now == pop._l_times[2 * pop._slots_per_week + 1]
    with pytest.raises(ValueError, match="n_slots"):
        pop.advance_user(True)
    with pytest.raises(ValueError, match="one-user"):
        Population(default_params(), 2, bank=bank, seed=0).advance_user(3)


def test_cover_style_step_is_the_push_slot_plus_the_quiet_span(bank):
    """A CoverStyle-v0 step reports the sums of step_user and advance_user over its slots (a
    Tally of the two), on a population driven alongside with the same seed."""
    import gymnasium as gym

    import covercast  # noqa: F401
    from covercast.envs.base import Tally, responses

    for params in (PARAMS["default"], PARAMS["tray"]):
        env = gym.make("covercast/CoverStyle-v0", params=params, push_hours=(7, 12, 20))
        env.reset(seed=9)
        u = env.unwrapped
        twin = Population(params, 1, bank=u.bank, seed=0)
        twin.reset(int(np.random.default_rng(np.random.SeedSequence(9)).integers(0, 2**63 - 1)))
        twin.advance_user(7)
        rng = np.random.default_rng(3)
        seen_open = 0
        for _ in range(60):
            style = int(rng.integers(0, 5))
            _, _, te, tr, info = env.step(style)
            tally = Tally()
            first = twin.step_user(style)
            tally.add(first)
            if not first[9] and info["slots"] > 1:
                tally.add(twin.advance_user(info["slots"] - 1)[0])
            want = responses(tally.summary(first[11]), style)
            got = {k: v for k, v in info.items() if k != "slots"}
            assert got == want and all(type(got[k]) is type(want[k]) for k in want)
            seen_open += info["opened"]
            if te or tr:
                break
        assert seen_open > 0
