"""The SimPy population engine: determinism, the user model's behaviour, the log, the API."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import simpy
from scipy import stats

from covercast.covers.attributes import ATTRIBUTE_NAMES
from covercast.covers.bank import CoverBank
from covercast.simulators.logs import EVENTS, validate_log
from covercast.simulators.params import default_params
from covercast.simulators.policies import StaticSchedulePolicy, UniformRandomPolicy
from covercast.simulators.population import (
    HIDDEN_KEYS,
    OBSERVATION_KEYS,
    Population,
    PopulationParams,
    SlotOutcome,
    simulate_log,
)


def small_bank(params: PopulationParams, per_style: int = 6, seed: int = 0) -> CoverBank:
    """A tiny bank with random attributes and one-hot style probabilities."""
    rng = np.random.default_rng(seed)
    ns, nt = len(params.styles), len(params.topics)
    n = ns * per_style
    style = np.repeat(np.arange(ns), per_style)
    feats = np.concatenate([rng.standard_normal((n, len(ATTRIBUTE_NAMES))),
                            np.eye(ns)[style]], axis=1)
    return CoverBank(images=np.zeros((n, 4, 4, 3), np.uint8), style=style,
                     topic=rng.integers(0, nt, n), quality=rng.uniform(0.2, 0.9, n),
                     features=feats, styles=params.styles, topics=params.topics)


@pytest.fixture(scope="module")
def params() -> PopulationParams:
    return default_params()


@pytest.fixture(scope="module")
def bank(params) -> CoverBank:
    return small_bank(params)


def with_(params: PopulationParams, **parts) -> PopulationParams:
    """A copy of params with some sub-models replaced, e.g. with_(p, open={...})."""
    d = params.to_dict()
    for key, changes in parts.items():
        d[key] = {**d[key], **changes}
    return PopulationParams.from_dict(d)


STATIC = StaticSchedulePolicy(hours=(8, 20))


# ------------------------------------------------------------------------------- determinism
def test_same_seed_same_log_different_seed_different(params, bank):
    a = simulate_log(params, STATIC, 2, 50, 7, bank=bank)
    b = simulate_log(params, STATIC, 2, 50, 7, bank=bank)
    pd.testing.assert_frame_equal(a, b)
    c = simulate_log(params, STATIC, 2, 50, 8, bank=bank)
    assert not (len(a) == len(c) and a.equals(c))


def test_same_seed_same_actions_same_outcomes_for_any_n(params, bank):
    for n in (1, 37):
        outs = []
        for _ in range(2):
            pop = Population(params, n, bank=bank, seed=11)
            res = []
            for k in range(30):
                push = np.arange(n) if k % 5 == 0 else None
                res.append(pop.step(push=push, style=k % 5 if push is not None else None))
            outs.append(res)
        for x, y in zip(*outs, strict=True):
            for f in dataclasses.fields(SlotOutcome):
                np.testing.assert_array_equal(getattr(x, f.name), getattr(y, f.name))


def test_recording_the_log_does_not_change_outcomes(params, bank):
    def opens(record: bool) -> list[np.ndarray]:
        pop = Population(params, 200, bank=bank, seed=3, record_events=record)
        out = []
        for k in range(48):
            o = pop.step(push=np.arange(200) if k % 12 == 0 else None,
                         style=1 if k % 12 == 0 else None)
            out.append(np.stack([o.open_user, o.open_push_id]))
        return out

    for x, y in zip(opens(False), opens(True), strict=True):
        np.testing.assert_array_equal(x, y)


def test_pushes_do_not_shift_users_or_organic_sessions(params, bank):
    quiet = Population(params, 300, bank=bank, seed=5)
    busy = Population(params, 300, bank=bank, seed=5)
    for k in range(48):
        a = quiet.step()
        b = busy.step(push=np.arange(300), style=k % 5)
        np.testing.assert_array_equal(a.session_user, b.session_user)
        np.testing.assert_array_equal(a.session_count, b.session_count)
    ha, hb = quiet.hidden_state(), busy.hidden_state()
    np.testing.assert_array_equal(ha["segment"], hb["segment"])
    np.testing.assert_array_equal(ha["activity_multiplier"], hb["activity_multiplier"])
    np.testing.assert_array_equal(ha["taste"], hb["taste"])


# ------------------------------------------------------------------------------- the model
def test_opt_out_is_terminal(params, bank):
    p = with_(params, opt_out={"base_hazard": 0.05, "fatigue_coef": 0.05})
    pop = Population(p, 200, bank=bank, seed=1, record_events=True)
    blocked = 0
    for _ in range(72):
        out = pop.step(push=np.ones(200, dtype=bool), style=0)
        blocked += out.blocked_user.size
        assert not np.intersect1d(out.push_user, out.blocked_user).size
    assert blocked > 0
    log = pop.event_log()
    first_out = log[log.event == "opt_out"].groupby("user_id").timestamp.min()
    assert len(first_out) > 20
    after = log.join(first_out.rename("t_out"), on="user_id")
    later = after[(after.timestamp > after.t_out) & after.event.isin(["push", "open"])]
    assert later.empty
    # an opting-out push is not opened
    same = after[(after.timestamp == after.t_out) & (after.event == "open")]
    assert same.empty
    assert (log.event == "opt_out").groupby(log.user_id).sum().max() == 1
    assert pop.observe()["opted_out"].sum() == len(first_out)
    # organic sessions go on after opting out
    assert (after[(after.timestamp > after.t_out)].event == "session").any()


def test_fatigue_rises_with_pushes_and_halves_every_half_life(params, bank):
    p = with_(params, fatigue={"increment": 1.0, "half_life_h": 12.0},
              opt_out={"base_hazard": 0.0, "fatigue_coef": 0.0})
    pop = Population(p, 20, bank=bank, seed=0)
    pop.step(push=np.arange(10), style=0)
    pop.step(push=np.arange(10), style=0)
    f = pop.hidden_state()["fatigue"]
    # pushed at t = 0 and t = 1, evaluated at t = 2
    expected = 2.0 ** (-2 / 12) + 2.0 ** (-1 / 12)
    np.testing.assert_allclose(f[:10], expected)
    np.testing.assert_array_equal(f[10:], 0.0)
    for _ in range(12):
        pop.step()
    np.testing.assert_allclose(pop.hidden_state()["fatigue"][:10], expected / 2)


def test_fatigue_lowers_the_open_rate(params, bank):
    """Same users, same organic sessions: pushing every hour fatigues users, so a push at
    20:00 on day 2 is opened less often than in a population pushed only then."""
    def rate(every_hour: bool) -> float:
        pop = Population(with_(params, opt_out={"base_hazard": 0.0, "fatigue_coef": 0.0}),
                         3000, bank=bank, seed=2)
        opens = pushes = 0
        for k in range(48):
            last = k == 44
            out = pop.step(push=np.arange(3000) if (every_hour or last) else None,
                           style=1 if (every_hour or last) else None)
            if last:
                pushes += out.n_pushes
                opens += int((out.open_delay_h == 0).sum())
        return opens / pushes

    assert rate(every_hour=True) < 0.5 * rate(every_hour=False)


def test_pushes_raise_sessions_above_the_organic_baseline(params, bank):
    organic = Population(params, 500, bank=bank, seed=4).run(None, 3)
    pushed = Population(params, 500, bank=bank, seed=4).run(STATIC, 3)
    # organic sessions are identical (common random numbers); opens are extra pushed sessions
    np.testing.assert_array_equal(organic.sessions.to_numpy(), pushed.sessions.to_numpy())
    assert organic.opens.sum() == 0
    assert pushed.opens.sum() > 0
    total = pushed.sessions.sum() + pushed.opens.sum()
    assert total > organic.sessions.sum()


def test_stale_pushes_are_opened_less(params, bank):
    def opens(tau: float) -> tuple[int, np.ndarray]:
        p = with_(params, open={"stale_tau_h": tau})
        pop = Population(p, 2000, bank=bank, seed=9)
        n, delays = 0, []
        for k in range(48):
            out = pop.step(push=np.arange(2000) if k in (3, 27) else None,
                           style=2 if k in (3, 27) else None)
            n += out.n_opens
            delays.append(out.open_delay_h)
        return n, np.concatenate(delays)

    n_fresh, d_fresh = opens(1e6)
    n_stale, d_stale = opens(0.5)
    assert n_stale < 0.7 * n_fresh
    # delayed opens exist without staleness, and become rare with it
    assert (d_fresh > 1).mean() > 0.3
    assert (d_stale > 1).mean() < (d_fresh > 1).mean() / 2
    assert np.all(d_fresh >= 0)


def test_default_open_rate_under_static_schedule_is_a_few_percent(params):
    log = simulate_log(params, STATIC, 7, 1500, 0)
    ev = log.event.value_counts()
    rate = ev["open"] / ev["push"]
    print(f"open rate of the default population under StaticSchedulePolicy((8, 20)): "
          f"{rate:.4f}")
    assert 0.02 < rate < 0.10
    sessions_per_day = ev["session"] / 1500 / 7
    assert 3 < sessions_per_day < 8


def test_vectorised_engine_agrees_with_single_user_runs(params, bank):
    """N users in one engine vs N engines of one user: same distribution of opens and sessions
    (different random numbers, so a statistical test)."""
    n, days = 240, 2
    big = Population(params, n, bank=bank, seed=100).run(STATIC, days)
    singles = [Population(params, 1, bank=bank, seed=1000 + i).run(STATIC, days)
               for i in range(n)]
    opens_big, pushes_big = big.opens.sum(), big.pushes.sum()
    opens_single = sum(s.opens.sum() for s in singles)
    pushes_single = sum(s.pushes.sum() for s in singles)
    table = [[opens_big, pushes_big - opens_big], [opens_single, pushes_single - opens_single]]
    assert stats.chi2_contingency(table).pvalue > 1e-3, table
    sess_big = big.sessions.sum() / n
    sess_single = np.array([s.sessions.sum() for s in singles])
    # per-user session totals: compare means with a z-test using the single-run spread
    z = (sess_big - sess_single.mean()) / (sess_single.std(ddof=1) * math.sqrt(2 / n))
    assert abs(z) < 3.5, (sess_big, sess_single.mean())


# ------------------------------------------------------------------------------- SimPy engine
def test_simpy_fires_a_push_scheduled_for_a_future_time(params, bank):
    pop = Population(params, 10, bank=bank, seed=0)
    assert isinstance(pop.env, simpy.Environment)
    ids = pop.schedule_push([2, 5], at=5.5, style=3)
    assert ids.tolist() == [0, 1]
    for _ in range(5):
        out = pop.step()
        assert out.n_pushes == 0
    later = pop.schedule_push([7], at=30.25, cover=0)
    out = pop.step()
    assert (out.start_h, out.end_h) == (5.0, 6.0)
    assert out.push_user.tolist() == [2, 5]
    np.testing.assert_array_equal(out.push_time, [5.5, 5.5])
    assert pop.observe()["hours_since_push"][2] == pytest.approx(0.5)
    assert np.isinf(pop.observe()["hours_since_push"][0])
    fired = [pop.step() for _ in range(25)]
    assert [o.start_h for o in fired if o.n_pushes] == [30.0]
    assert fired[-1].push_id.tolist() == later.tolist()
    np.testing.assert_array_equal(fired[-1].push_time, [30.25])


def test_newer_push_collapses_an_unseen_one(params, bank):
    p = with_(params, open={"glance_hours": 0.0})     # never seen at once
    pop = Population(p, 5, bank=bank, seed=0)
    first = pop.schedule_push([0, 1, 2, 3, 4], at=0.0, style=0)
    second = pop.schedule_push([0, 1, 2, 3, 4], at=0.0, style=1)
    out = pop.step()
    np.testing.assert_array_equal(np.sort(out.collapsed_push_id), first)
    assert set(pop.hidden_state()["pending_push"]) <= set(second) | {-1}


def test_mid_slot_pushes_see_the_sessions_between_them(params, bank):
    """Very active users who always open: a push at 0.0 h is seen at a session before a second
    push at 0.9 h (so it does not collapse); the second is seen at a session after 0.9 h."""
    d = params.to_dict()
    for seg in d["segments"]:
        seg["activity"] = [20.0] * 168
        seg["activity_shape"] = 1e4                 # every multiplier ~ 1
        seg["open_intercept"] = 30.0
    d["open"] = {**d["open"], "glance_hours": 0.0, "stale_tau_h": 1e9}
    d["opt_out"] = {"base_hazard": 0.0, "fatigue_coef": 0.0}
    p = PopulationParams.from_dict(d)
    n = 400
    pop = Population(p, n, bank=bank, seed=0, record_events=True)
    first = pop.schedule_push(np.arange(n), at=0.0, style=0)
    second = pop.schedule_push(np.arange(n), at=0.9, style=1)
    out = pop.step()
    assert out.collapsed_push_id.size == 0
    opened_first = np.isin(out.open_push_id, first)
    assert opened_first.sum() == n
    assert np.all((out.open_delay_h[opened_first] > 0) & (out.open_time[opened_first] < 0.9))
    late = out.open_push_id[~opened_first]
    assert np.all(np.isin(late, second))
    assert np.all(out.open_time[~opened_first] > 0.9)
    # P(no session in the last 0.1 h) = exp(-2): the rest wait in the tray
    waiting = (pop.hidden_state()["pending_push"] >= 0).sum()
    assert waiting + late.size == n
    assert 0.05 * n < waiting < 0.25 * n
    # the session that showed each push is in the log, at the open's time
    log = pop.event_log()
    sess = log[log.event == "session"].groupby("user_id").timestamp.apply(set)
    opens = log[log.event == "open"]
    assert all(ts in sess[u] for u, ts in zip(opens.user_id, opens.timestamp, strict=True))
    counts = opens.groupby("user_id").size().reindex(range(n), fill_value=0).to_numpy()
    np.testing.assert_array_equal(pop.observe()["opens_24h"], counts)
    assert validate_log(log) is not None


def test_push_seen_at_a_later_session_has_a_delay(params, bank):
    p = with_(params, open={"glance_hours": 0.0})     # never seen at once
    pop = Population(p, 3000, bank=bank, seed=1)
    pop.step(push=np.arange(3000), style=0)
    delays = []
    for _ in range(24):
        out = pop.step()
        delays.append(out.open_delay_h)
        # opens happen inside the slot, and at (or after) delivery
        assert np.all((out.open_time >= out.start_h) & (out.open_time < out.end_h))
    d = np.concatenate(delays)
    assert d.size > 20 and np.all(d > 0)


def test_sessions_in_log_lie_inside_their_slot_for_slots_straddling_hours(params, bank):
    # 45-minute slots straddle hour boundaries, where segment rates change
    pop = Population(params, 400, bank=bank, seed=2, slot_minutes=45, record_events=True)
    outs = [pop.step() for _ in range(64)]
    log = pop.event_log()
    sess = log[log.event == "session"]
    hours = (sess.timestamp - pop.start).dt.total_seconds().to_numpy() / 3600
    slot = np.floor(hours / 0.75 + 1e-9).astype(int)
    counts = np.bincount(slot, minlength=64)[:64]
    np.testing.assert_array_equal(counts, [o.n_sessions for o in outs])
    assert log.timestamp.is_monotonic_increasing


def test_session_rate_does_not_depend_on_slot_length(params, bank):
    totals = {}
    for minutes in (15, 45, 120):
        pop = Population(params, 2000, bank=bank, seed=6, slot_minutes=minutes)
        totals[minutes] = pop.run(None, 2).sessions.sum() / 2000 / 2
    lo, hi = min(totals.values()), max(totals.values())
    assert hi - lo < 0.25, totals


def test_drift_moves_taste_once_a_day(params, bank):
    p = with_(params, drift={"reversion_per_day": 0.0, "sd_per_day": 0.1})
    pop = Population(p, 50, bank=bank, seed=0)
    t0 = pop.hidden_state()["taste"]
    for _ in range(23):
        pop.step()
    np.testing.assert_array_equal(pop.hidden_state()["taste"], t0)
    pop.step()
    moved = pop.hidden_state()["taste"] - t0
    assert moved.std() == pytest.approx(0.1, rel=0.2)


# ------------------------------------------------------------------------------- observations
def test_observation_windows(params, bank):
    p = with_(params, opt_out={"base_hazard": 0.0, "fatigue_coef": 0.0})
    pop = Population(p, 4, bank=bank, seed=0, start="2026-01-07T06:00:00Z")
    obs = pop.observe()
    assert set(obs) == set(OBSERVATION_KEYS)
    assert obs["hour"][0] == 6 and obs["weekday"][0] == 2 and obs["minute"][0] == 0
    pop.step(push=[0], style=0)
    for _ in range(23):
        pop.step()
    obs = pop.observe()
    assert obs["pushes_24h"].tolist() == [1, 0, 0, 0]
    assert obs["hours_since_push"][0] == pytest.approx(24.0)
    pop.step()
    obs = pop.observe()
    assert obs["pushes_24h"].tolist() == [0, 0, 0, 0]
    assert obs["pushes_7d"].tolist() == [1, 0, 0, 0]
    assert obs["hour"][0] == 7 and obs["weekday"][0] == 3
    for _ in range(24 * 6):
        pop.step()
    assert pop.observe()["pushes_7d"].tolist() == [0, 0, 0, 0]


def test_session_and_open_windows_match_the_log(params, bank):
    pop = Population(params, 300, bank=bank, seed=8, record_events=True)
    pop.run(UniformRandomPolicy(0.2), 2)
    obs = pop.observe()
    log = pop.event_log()
    recent = log[log.timestamp >= pop.timestamp - pd.Timedelta(hours=24)]
    s = recent[recent.event == "session"].groupby("user_id").size()
    np.testing.assert_array_equal(obs["sessions_24h"], s.reindex(range(300), fill_value=0))
    o = recent[recent.event == "open"]
    np.testing.assert_array_equal(obs["opens_24h"],
                                  o.groupby("user_id").size().reindex(range(300), fill_value=0))
    np.testing.assert_allclose(obs["dwell_24h"],
                               o.groupby("user_id").dwell_s.sum().reindex(range(300),
                                                                          fill_value=0.0))
    pushes = log[log.event == "push"].groupby("user_id").size().reindex(range(300), fill_value=0)
    np.testing.assert_array_equal(obs["pushes_7d"], pushes)


def test_hidden_state(params, bank):
    pop = Population(params, 30, bank=bank, seed=0)
    h = pop.hidden_state()
    assert set(h) == set(HIDDEN_KEYS)
    assert h["taste"].shape == (30, params.n_features)
    assert h["topic_affinity"].shape == (30, len(params.topics))
    assert np.all(h["activity_rate"] >= 0) and np.all(h["fatigue"] == 0)
    assert set(np.unique(h["segment"])) <= set(range(len(params.segments)))
    h["taste"][:] = 99                                  # a copy: the engine is untouched
    assert not np.any(pop.hidden_state()["taste"] == 99)


def test_slot_outcome_to_dense(params, bank):
    pop = Population(params, 500, bank=bank, seed=0)
    out = pop.step(push=np.arange(500), style=0)
    for _ in range(5):
        o = pop.step()
        if o.n_opens:
            out = o
            break
    d = out.to_dense(500)
    assert d["opens"].sum() == out.n_opens
    assert d["sessions"].sum() == out.n_sessions
    assert d["dwell_s"].sum() == pytest.approx(out.open_dwell_s.sum())
    assert d["pushes"].sum() == out.n_pushes


# ------------------------------------------------------------------------------- the log
def test_log_conforms_to_the_schema(params, bank):
    log = simulate_log(params, UniformRandomPolicy(0.1), 2, 200, 0, bank=bank)
    checked = validate_log(log)
    assert list(log.columns) == list(checked.columns)
    assert set(log.event.unique()) <= set(EVENTS)
    assert {"session", "push", "open"} <= set(log.event.unique())
    pushes = log[log.event == "push"]
    np.testing.assert_allclose(pushes.propensity, 0.1 / len(params.styles))
    assert pushes.push_id.is_unique
    # rows sorted by (timestamp, user_id, event order)
    code = log.event.map({e: i for i, e in enumerate(EVENTS)}).to_numpy()
    key = pd.DataFrame({"t": log.timestamp, "u": log.user_id, "e": code})
    assert key.equals(key.sort_values(["t", "u", "e"], kind="stable"))
    # covers of pushes have the style the policy chose; segments are the true ones
    sess = log[log.event == "session"]
    assert sess.dwell_s.gt(0).all() and sess.push_id.isna().all()
    assert log.segment.isin(params.segment_names).all()


def test_organic_only_log(params, bank):
    log = simulate_log(params, None, 1, 20, 0, bank=bank)
    assert set(log.event.unique()) == {"session"}
    validate_log(log)


# ------------------------------------------------------------------------------- bad input
def test_bad_arguments_raise_clear_errors(params, bank):
    with pytest.raises(ValueError, match="n_users"):
        Population(params, 0, bank=bank)
    with pytest.raises(ValueError, match="slot_minutes"):
        Population(params, 5, bank=bank, slot_minutes=7)
    with pytest.raises(ValueError, match="slot grid"):
        Population(params, 5, bank=bank, slot_minutes=60, start="2026-01-05T00:30:00Z")
    with pytest.raises(ValueError, match="seed"):
        Population(params, 5, bank=bank, seed=-1)
    with pytest.raises(ValueError, match="PopulationParams"):
        Population({"segments": []}, 5, bank=bank)
    other = dataclasses.replace(bank, styles=["a", "b", "c", "d", "e"])
    with pytest.raises(ValueError, match=r"styles \['a'.*population's styles \['minimal'"):
        Population(params, 5, bank=other)
    pop = Population(params, 5, bank=bank, seed=0)
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        pop.step(push=[5])
    with pytest.raises(ValueError, match="duplicate"):
        pop.step(push=[1, 1])
    with pytest.raises(ValueError, match="shape \\(5,\\)"):
        pop.step(push=np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="not both"):
        pop.step(push=[1], style=0, cover=0)
    with pytest.raises(ValueError, match="style.*\\[0, 4\\]"):
        pop.step(push=[1], style=9)
    with pytest.raises(ValueError, match="Unknown style"):
        pop.step(push=[1], style="sepia")
    with pytest.raises(ValueError, match="cover"):
        pop.step(push=[1], cover=len(bank))
    with pytest.raises(ValueError, match="propensity"):
        pop.step(push=[1], style=0, propensity=0.0)
    with pytest.raises(ValueError, match="length 3"):
        pop.step(push=[1, 2], style=[0, 1, 2])
    with pytest.raises(ValueError, match="without `push`"):
        pop.step(style=1)
    with pytest.raises(ValueError, match="in the past"):
        pop.step()
        pop.schedule_push([0], at=0.5)
    with pytest.raises(ValueError, match="days"):
        pop.run(None, 0.3)
    with pytest.raises(ValueError, match="record_events=True"):
        pop.event_log()
    with pytest.raises(ValueError, match="must return"):
        pop.run(lambda obs, rng: None, 1)
    with pytest.raises(ValueError, match="shape"):
        pop.run(lambda obs, rng: (np.ones(3, bool), np.zeros(3, int), np.ones(3)), 1)
    assert pop.now == 1.0          # nothing was pushed or advanced by the refused calls


def test_style_names_topics_and_full_length_arrays(params, bank):
    pop = Population(params, 6, bank=bank, seed=0, record_events=True)
    mask = np.array([True, False, True, False, False, True])
    out = pop.step(push=mask, style=np.array(["noir"] * 6), topic="music")
    assert out.push_user.tolist() == [0, 2, 5]
    assert np.all(bank.style[out.push_cover] == params.styles.index("noir"))
    assert np.all(out.push_topic == params.topics.index("music"))
    log = pop.event_log()
    assert (log.loc[log.event == "push", "style"] == "noir").all()
    assert (log[log.event == "push"].topic == "music").all()


def test_advance_matches_step_by_step():
    """advance(n) runs n pushless slots: the same outcomes as n calls of step(), merged."""
    from covercast.covers.procedural import default_bank

    # 200 pushes: late opens in the 30 slots after them whatever the seed draws
    a = Population(default_params(), 400, bank=default_bank(), seed=5)
    b = Population(default_params(), 400, bank=default_bank(), seed=5)
    a.step(push=np.arange(0, 400, 2), style=2)
    b.step(push=np.arange(0, 400, 2), style=2)
    out, sessions = a.advance(30)
    singles = [b.step() for _ in range(30)]
    assert sessions.shape == (30, 400)
    for k, o in enumerate(singles):
        dense = np.zeros(400, dtype=np.int64)
        dense[o.session_user] = o.session_count
        assert np.array_equal(sessions[k], dense)
    assert out.n_opens == sum(o.n_opens for o in singles) > 0
    assert np.array_equal(out.open_user, np.concatenate([o.open_user for o in singles]))
    assert (out.start_h, out.end_h) == (singles[0].start_h, singles[-1].end_h)
    assert a.last_outcome is out and a.now == b.now
    with pytest.raises(ValueError, match="n_slots"):
        a.advance(0)
