"""The vector collector: the per-decision form of ``collect``, exact propensities, and the
same distribution as the single-user collector (two-sample tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from covercast.agents import ActivityHeuristic, StaticScheduler
from covercast.envs import OBS_INDEX, make, make_vec
from covercast.ope.data import (
    EpsilonGreedyAgent,
    SoftmaxAgent,
    collect,
    collect_vector,
    evaluation_probabilities,
)

HORIZON_DAYS = 1.0
STEPS = 24


def _softmax_heuristic() -> SoftmaxAgent:
    return SoftmaxAgent(ActivityHeuristic(), 2.0)


@pytest.fixture(scope="module")
def small():
    env = make_vec(16, horizon_days=HORIZON_DAYS)
    data = collect_vector(env, _softmax_heuristic(), 40, seed=3)   # 3 rounds, the last partial
    yield env, data
    env.close()


def test_form_matches_collect_and_is_whole_episodes(small) -> None:
    env, data = small
    single_env = make("covercast/PushSchedule-v0", horizon_days=HORIZON_DAYS)
    single = collect(single_env, _softmax_heuristic(), 2, seed=3)
    single_env.close()
    f = data.frame
    assert list(f.columns) == list(single.frame.columns)
    assert f.dtypes.equals(single.frame.dtypes)
    assert data.n_actions == single.n_actions and data.metadata["collector"] == "vector"
    ep = f["episode"].to_numpy()
    assert np.array_equal(np.unique(ep), np.arange(40))
    assert np.all(np.diff(ep) >= 0)                                  # contiguous, in order
    steps = f.groupby("episode")["step"].agg(list)
    assert all(s == list(range(len(s))) for s in steps)
    last = f.groupby("episode").tail(1)
    assert (last["terminated"] ^ last["truncated"]).all()           # exactly one end, at the end
    assert int(f["terminated"].sum() + f["truncated"].sum()) == 40
    assert (last.loc[last["truncated"], "step"] == STEPS - 1).all()
    # every episode starts at the environment's start: Monday 00:00, no history
    first = f[f["step"] == 0]
    assert np.allclose(first["obs_00"], 0.0, atol=1e-6) and np.allclose(first["obs_01"], 1.0)
    assert (first[f"obs_{OBS_INDEX['pushes_24h']:02d}"] == 0).all()
    # the pushes and the raw responses agree with the actions
    assert ((f["action"] > 0) == (f["pushed"] > 0)).all()
    assert (f.loc[f["action"] > 0, "style"] == f.loc[f["action"] > 0, "action"] - 1).all()


def test_propensities_are_exact_and_collection_is_seeded(small) -> None:
    env, data = small
    probs = evaluation_probabilities(_softmax_heuristic(), data)
    a = data.frame["action"].to_numpy()
    np.testing.assert_allclose(data.frame["pscore"], probs[np.arange(len(a)), a], rtol=1e-12)
    again = collect_vector(env, _softmax_heuristic(), 40, seed=3)
    assert again.frame.equals(data.frame)
    other = collect_vector(env, _softmax_heuristic(), 40, seed=4)
    assert not other.frame["action"].equals(data.frame["action"])


def test_bad_arguments(small) -> None:
    env, _ = small
    single_env = make("covercast/PushSchedule-v0", horizon_days=HORIZON_DAYS)
    with pytest.raises(ValueError, match="PopulationVectorEnv"):
        collect_vector(single_env, _softmax_heuristic(), 4, seed=0)
    single_env.close()
    budget = make_vec(4, horizon_days=HORIZON_DAYS, daily_budget=2)
    with pytest.raises(ValueError, match="daily_budget"):
        collect_vector(budget, _softmax_heuristic(), 4, seed=0)
    budget.close()
    with pytest.raises(ValueError, match="episodes"):
        collect_vector(env, _softmax_heuristic(), 0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        collect_vector(env, _softmax_heuristic(), 4, seed=None)
    with pytest.raises(ValueError, match="mode"):
        collect_vector(env, EpsilonGreedyAgent(StaticScheduler(mode="timing"), 0.5), 4, seed=0)


def _per_episode(frame: pd.DataFrame) -> pd.DataFrame:
    g = frame.groupby("episode")
    return pd.DataFrame({
        "return": g["reward"].sum(), "length": g.size(), "pushes": g["pushed"].sum(),
        "opens": g["opened"].sum(), "sessions": g["sessions"].sum(),
        "log_pscore": g["pscore"].agg(lambda p: np.log(p).sum()),
        "h_since_open": g[f"obs_{OBS_INDEX['log_h_since_open']:02d}"].mean(),
        "sessions_24h": g[f"obs_{OBS_INDEX['sessions_24h']:02d}"].mean()})


def _p_values(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, float]:
    """Two-sample p-values: Welch's t on per-episode statistics, KS on the returns, and a
    chi-square test of the (step, action) counts."""
    ea, eb = _per_episode(a), _per_episode(b)
    out = {c: float(stats.ttest_ind(ea[c], eb[c], equal_var=False).pvalue) for c in ea}
    out["return_ks"] = float(stats.ks_2samp(ea["return"], eb["return"]).pvalue)
    cells = pd.concat([a.assign(src=0), b.assign(src=1)])
    table = pd.crosstab(cells["src"], cells["step"] * 10 + cells["action"])
    table = table.loc[:, table.min(axis=0) >= 5]       # chi-square needs populated cells
    out["step_action_chi2"] = float(stats.chi2_contingency(table.to_numpy()).pvalue)
    return out


def test_vector_collector_has_the_single_env_distribution() -> None:
    """Same logging policy on the single-user env and on the vector env: no statistic differs
    (Bonferroni at 0.1 % over all tests); a different policy is told apart at once."""
    env = make("covercast/PushSchedule-v0", horizon_days=HORIZON_DAYS)
    venv = make_vec(2400, horizon_days=HORIZON_DAYS)
    try:
        single = collect(env, EpsilonGreedyAgent(StaticScheduler(), 0.5), 240, seed=11).frame
        vector = collect_vector(venv, EpsilonGreedyAgent(StaticScheduler(), 0.5), 2400,
                                seed=12).frame
        p = _p_values(single, vector)
        alpha = 1e-3 / len(p)
        assert min(p.values()) > alpha, p
        # the same tests see a change of the logging policy (power check)
        other = collect(env, EpsilonGreedyAgent(StaticScheduler(), 0.35), 240, seed=13).frame
        q = _p_values(other, vector)
        assert q["pushes"] < 1e-6 and q["step_action_chi2"] < 1e-6, q
    finally:
        env.close()
        venv.close()
