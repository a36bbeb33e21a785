"""oracle >= heuristic >= random in expected reward on PushSchedule-v0, as statistical tests.

Per-episode returns are noisy: an opt-out costs 5 (the default ``w_optout``) and happens to
5-10 % of users in 14 days, and opens are rare, so a return's standard deviation is 2.5-3 for
the deployable agents and about 6 for the oracle. The gaps measured on the default population
(seed sweep, 14-day episodes): random about 1.1, heuristic about 1.8-2.0, oracle about 6-9.

* heuristic vs random (gap about 0.7): 2,000 users per agent on the population vector entry
  point of ``covercast/PushSchedule-v0`` (the same per-user dynamics, one engine, about a
  second per agent); the standard error of the difference is about 0.09, so the gap is about
  8 standard errors;
* oracle vs heuristic and oracle vs random: 50 single-user episodes each
  (``gym.make("covercast/PushSchedule-v0")``), same seeds, so the same users; the gap is
  about 6 standard errors.

Each comparison must pass two checks: the 95 % t-intervals of the two means do not overlap, and
Welch's test rejects equality with the difference's 95 % interval above zero.
"""

from __future__ import annotations

import pandas as pd

import covercast  # noqa: F401
from covercast.agents import ActivityHeuristic, HiddenStateOracle, RandomAgent
from covercast.experiments.evaluate import evaluate_agents, evaluate_vector
from covercast.experiments.stats import summarize, welch_test


def _assert_better(df: pd.DataFrame, better: str, worse: str, p_max: float) -> None:
    s = summarize(df, metrics=["return"]).set_index("agent")
    assert s.loc[better, "ci_low"] > s.loc[worse, "ci_high"], s
    t = welch_test(df.loc[df["agent"] == better, "return"],
                   df.loc[df["agent"] == worse, "return"])
    assert t["ci_low"] > 0 and t["p"] < p_max, t


def test_heuristic_beats_random_on_the_population():
    df = pd.concat([evaluate_vector(RandomAgent(), 2000, seed=101),
                    evaluate_vector(ActivityHeuristic(), 2000, seed=101)], ignore_index=True)
    assert (df.groupby("agent")["length"].max() == 336).all()
    _assert_better(df, "heuristic", "random", p_max=1e-5)


def test_oracle_beats_heuristic_and_random_on_single_user_episodes():
    agents = {"random": RandomAgent(), "heuristic": ActivityHeuristic(),
              "oracle": HiddenStateOracle()}
    df = evaluate_agents(agents, "covercast/PushSchedule-v0", episodes=50, seed=202)
    _assert_better(df, "oracle", "heuristic", p_max=1e-4)
    _assert_better(df, "oracle", "random", p_max=1e-4)
