"""The one-user stepper (covercast.simulators.user): seeded determinism within it, and the same
distribution of outcomes as the SimPy population engine under the same pushes.

The two engines draw from different streams, so they are compared as samples: per-user totals
(opens, dwell, likes, surveys, survey scores, opt-outs, sessions) with Welch's t-test and the
opens by slot with a chi-square test of homogeneity. Every comparison is deterministic (fixed
seeds); the power checks plant a difference in the population engine (a response model that
changes one response) and require the same tests to reject.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import stats

from covercast.covers.procedural import default_bank
from covercast.simulators import response as R
from covercast.simulators.params import default_params
from covercast.simulators.population import Population
from covercast.simulators.user import SUMMARY_KEYS, UserSimulator

#: A population with frequent opt-outs and surveys, so that every outcome has counts to test.
PARAMS = default_params().with_parts(opt_out={"base_hazard": 0.01},
                                     satisfaction={"survey_rate": 0.5})
N_USERS = 5000
N_SLOTS = 48
KEYS = ("opened", "dwell_s", "likes", "surveys", "sat_sum", "opted_out", "sessions")
ALPHA = 1e-3


def schedule(kind: str) -> list[int]:
    """The style pushed at each slot (-1: none), as each single-user env pushes: PushTiming
    (one style, every third slot), CoverStyle (two push hours, styles in turn), PushSchedule
    (any style, any slot: a fixed random sequence)."""
    if kind == "timing":
        return [0 if s % 3 == 0 else -1 for s in range(N_SLOTS)]
    if kind == "cover_style":
        return [(s // 12) % 5 if s % 24 in (8, 20) else -1 for s in range(N_SLOTS)]
    rng = np.random.default_rng(7)
    return [int(a) - 1 for a in rng.integers(0, 6, N_SLOTS) * (rng.random(N_SLOTS) < 0.4)]


def run_stepper(plan: list[int]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-user totals and opens by slot of ``N_USERS`` episodes of the one-user stepper."""
    sim = UserSimulator(PARAMS, default_bank())
    totals = {k: np.zeros(N_USERS) for k in KEYS}
    by_slot = np.zeros(N_SLOTS)
    for i in range(N_USERS):
        sim.reset(10_000 + i)
        for s, style in enumerate(plan):
            r = sim.step(style)
            for k in KEYS:
                totals[k][i] += r[k] if k != "sat_sum" else r.get("satisfaction", 0.0) * \
                    r["surveys"]
            by_slot[s] += r["opened"]       # (after an opt-out: blocked pushes, sessions)
    return totals, by_slot


def run_population(plan: list[int], response: R.ResponseModel | None = None,
                   params=PARAMS) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The same for ``N_USERS`` users of one SimPy population."""
    pop = Population(params, N_USERS, bank=default_bank(), seed=3, response=response)
    totals = {k: np.zeros(N_USERS) for k in KEYS}
    by_slot = np.zeros(N_SLOTS)
    for s, style in enumerate(plan):
        out = pop.step(push=np.ones(N_USERS, bool), style=style) if style >= 0 else pop.step()
        u = out.open_user
        np.add.at(totals["opened"], u, 1)
        np.add.at(totals["dwell_s"], u, out.open_dwell_s)
        np.add.at(totals["likes"], u, out.open_like)
        surveyed = out.open_satisfaction > 0
        np.add.at(totals["surveys"], u[surveyed], 1)
        np.add.at(totals["sat_sum"], u[surveyed], out.open_satisfaction[surveyed])
        totals["opted_out"][out.opt_out_user] = 1
        np.add.at(totals["sessions"], out.session_user, out.session_count)
        by_slot[s] += u.size
    return totals, by_slot


def p_values(a: tuple, b: tuple) -> dict[str, float]:
    """Two-sample p-values: Welch's t-test on each per-user total, chi-square homogeneity of
    the opens by time of day (the slots' opens in four six-hour blocks)."""
    out = {k: float(stats.ttest_ind(a[0][k], b[0][k], equal_var=False).pvalue) for k in KEYS}
    block = (np.arange(N_SLOTS) % 24) // 6
    table = np.stack([np.bincount(block, weights=x, minlength=4) for x in (a[1], b[1])])
    out["opens_by_slot"] = float(stats.chi2_contingency(table)[1])
    return out


@pytest.fixture(scope="module", params=["timing", "cover_style", "schedule"])
def both(request):
    plan = schedule(request.param)
    return plan, run_stepper(plan), run_population(plan)


def test_the_stepper_and_the_population_engine_agree_in_distribution(both):
    plan, stepper, population = both
    assert stepper[0]["opened"].sum() > 200 and stepper[0]["opted_out"].sum() > 30
    assert stepper[0]["surveys"].sum() > 100
    p = p_values(stepper, population)
    assert min(p.values()) > ALPHA, p


def _scaled_open(intercept, rel_activity, match, quality, topic_affinity, fatigue, delay_h,
                 open_model):
    return 0.75 * R.open_probability(intercept, rel_activity, match, quality, topic_affinity,
                                    fatigue, delay_h, open_model)


def _timed_open(intercept, rel_activity, match, quality, topic_affinity, fatigue, delay_h,
                open_model):
    return np.where(rel_activity > 0.0, 1.0, 0.3) * R.open_probability(
        intercept, rel_activity, match, quality, topic_affinity, fatigue, delay_h, open_model)


def _scaled_survey(rel, dwell_s, fatigue, model):
    return 0.75 * R.survey_probability(rel, dwell_s, fatigue, model)


@pytest.mark.parametrize("planted, hit", [
    ("open", ("opened",)),
    ("timing", ("opens_by_slot",)),
    ("opt_out", ("opted_out",)),
    ("survey", ("surveys",)),
])
def test_the_tests_detect_a_planted_difference(both, planted, hit):
    """Power: the same comparison rejects when the population engine answers differently
    (opens and surveys 25 % less likely, opt-outs at a 1.6x base hazard, opens 70 % less likely
    in the user's less active hours only: a difference in the opens' timing)."""
    plan, stepper, _ = both
    params, response = PARAMS, None
    if planted == "open":
        response = R.ResponseModel(open_probability=_scaled_open)
    elif planted == "timing":
        response = R.ResponseModel(open_probability=_timed_open)
    elif planted == "survey":
        response = R.ResponseModel(survey_probability=_scaled_survey)
    else:
        params = PARAMS.with_parts(opt_out={"base_hazard": 0.016})
    p = p_values(stepper, run_population(plan, response, params))
    for key in hit:
        assert p[key] < ALPHA, (key, p)


def test_same_seed_same_actions_same_outcomes():
    plan = schedule("schedule")

    def go(seed: int) -> list:
        sim = UserSimulator(PARAMS, default_bank(), slot_minutes=30)
        sim.reset(seed)
        out = [sim.observe_now()]
        for style in plan * 4:
            r = sim.step(style)
            out.append((sorted(r.items()), sim.observation.copy(), sim.hidden_state()["taste"]))
        return out

    a, b, c = go(5), go(5), go(6)
    assert all(np.array_equal(x[1], y[1]) and x[0] == y[0] for x, y in zip(a[1:], b[1:],
                                                                             strict=True))
    assert any(x[0] != y[0] for x, y in zip(a[1:], c[1:], strict=True))


def test_the_same_seed_gives_the_same_sessions_and_drift_whatever_the_pushes():
    """Common random numbers: session counts and taste drift have streams of their own."""
    def go(plan: list[int]) -> tuple[list[int], np.ndarray]:
        sim = UserSimulator(PARAMS.with_parts(opt_out={"base_hazard": 0.0}), default_bank())
        sim.reset(11)
        counts = [sim.step(style)["sessions"] for style in plan]
        return counts, sim.hidden_state()["taste"]

    quiet, busy = go([-1] * 96), go([s % 5 for s in range(96)])
    assert quiet[0] == busy[0] and sum(quiet[0]) > 0
    assert np.array_equal(quiet[1], busy[1])


def test_a_span_equals_its_slots_summed_and_stops_at_an_opt_out():
    sim, other = UserSimulator(PARAMS, default_bank()), UserSimulator(PARAMS, default_bank())
    for seed in range(40):
        sim.reset(seed)
        other.reset(seed)
        r = sim.step(2, 10)
        n = sim.last_counts
        total = {k: 0 for k in ("pushed", "opened", "sessions", "likes", "surveys")}
        slots = 0
        for j in range(10):
            q = other.step(2 if j == 0 else -1)
            slots += 1
            for k in total:
                total[k] += q[k]
            if q["opted_out"]:
                break
        assert n["slots"] == slots and all(r[k] == total[k] for k in total)
        assert np.array_equal(sim.observation, other.observation)


def test_the_user_is_drawn_as_the_population_draws_users():
    """Segments and activity multipliers of many reset users match a population's users."""
    sim = UserSimulator(PARAMS, default_bank())
    seg, mult = [], []
    for i in range(3000):
        sim.reset(i)
        h = sim.hidden_state()
        seg.append(int(h["segment"][0]))
        mult.append(float(h["activity_multiplier"][0]))
    pop = Population(PARAMS, 3000, bank=default_bank(), seed=1).hidden_state()
    counts = np.stack([np.bincount(seg, minlength=len(PARAMS.segments)),
                       np.bincount(pop["segment"], minlength=len(PARAMS.segments))])
    assert stats.chi2_contingency(counts)[1] > ALPHA
    assert stats.ks_2samp(mult, pop["activity_multiplier"]).pvalue > ALPHA


def test_pickled_stepper_continues_identically():
    sim = UserSimulator(PARAMS, default_bank())
    sim.reset(2)
    for _ in range(30):
        sim.step(1)
    clone = pickle.loads(pickle.dumps(sim))
    for _ in range(30):
        assert sim.step(0) == clone.step(0)
    sim.reset(9)
    clone.reset(9)
    assert sim.step(3, 5) == clone.step(3, 5)


def test_summary_keys_and_errors():
    assert SUMMARY_KEYS[-1] == "slots"
    sim = UserSimulator(PARAMS, default_bank())
    with pytest.raises(RuntimeError, match="reset"):
        sim.step(0)
    with pytest.raises(ValueError, match="ResponseModel"):
        UserSimulator(PARAMS, default_bank(), response=object())


def test_the_windows_count_the_last_24_hours_and_7_days():
    sim = UserSimulator(PARAMS.with_parts(opt_out={"base_hazard": 0.0}), default_bank())
    sim.reset(4)
    sessions = [sim.step(0 if s == 0 else -1)["sessions"] for s in range(200)]
    # replay: after slot s, the 24 h window holds slots s-23..s, the 7 d window s-167..s
    sim.reset(4)
    for s in range(200):
        sim.step(0 if s == 0 else -1)
        obs = sim.observe()
        assert obs["pushes_24h"][0] == (1 if s < 24 else 0)
        assert obs["pushes_7d"][0] == (1 if s < 168 else 0)
        assert obs["sessions_24h"][0] == sum(sessions[max(0, s - 23):s + 1])


def test_pushes_after_an_opt_out_are_blocked_and_sessions_go_on():
    sure = PARAMS.with_parts(opt_out={"base_hazard": 50.0})
    sim = UserSimulator(sure, default_bank())
    sim.reset(1)
    first = sim.step(3, 5)
    assert first["pushed"] == 1 and first["opted_out"] and sim.slots_run == 1
    assert first["opened"] == 0 and sim.hidden_state()["opted_out"][0]
    sessions = 0
    for _ in range(48):
        r = sim.step(3)
        assert r["pushed"] == 0 and r["blocked"] == 1 and not r["opted_out"]
        assert r["opened"] == 0 and r["cover"] == -1
        sessions += r["sessions"]
    assert sessions > 0


def test_numba_is_imported_on_first_use_only():
    import subprocess
    import sys

    code = ("import sys, covercast, covercast.envs, covercast.simulators.user\n"
            "assert 'numba' not in sys.modules, 'numba imported by import covercast.envs'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


_ON_DISK = """
import sys
import covercast.simulators.user as U
from covercast.covers.procedural import default_bank
from covercast.simulators.params import default_params
sim = U.UserSimulator(default_params(), default_bank(), slot_minutes=60)
sim.reset(seed=1)
sim.step(0)
(run,) = U._COMPILED.values()
print(sum(run.stats.cache_hits.values()), sum(run.stats.cache_misses.values()))
"""


def test_the_step_function_is_compiled_once_and_loaded_from_disk_by_the_next_process(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    counts = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _ON_DISK], capture_output=True, text=True,
                              timeout=600, env=env)
        assert done.returncode == 0, done.stderr
        counts.append(tuple(int(x) for x in done.stdout.split()))
    assert counts == [(0, 1), (1, 0)]          # (cache hits, misses): compiled, then loaded
    assert list(tmp_path.rglob("_user_kernel.make.locals.run-*.nbi"))


def _scaled(scale):
    def open_probability(x):
        return x * scale
    return open_probability


def _times_two(x):
    return 2.0 * x


def test_the_cache_key_follows_the_code_and_the_constants_compiled_in():
    from covercast.simulators._user_kernel import cache_on_disk, code_digest

    a = code_digest([_scaled(0.5)], "layout")
    assert a == code_digest([_scaled(0.5)], "layout")
    assert a != code_digest([_scaled(0.25)], "layout")       # a closure's constant
    assert a != code_digest([_scaled(0.5)], "other layout")
    assert a != code_digest([_times_two], "layout")
    assert code_digest([_scaled(object())]) is None          # unknown: not cached
    assert cache_on_disk(object(), None) is False
