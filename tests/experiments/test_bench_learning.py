"""The learning-reliability benchmarks: the task, one tiny run of each kind, the reports."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("torch")

from covercast.experiments.bench_learning import (  # noqa: E402
    main,
    one_active_hour_params,
    summary,
    train_on_population,
    write_population_report,
    write_report,
)


def test_one_active_hour_population_is_active_at_one_hour_only():
    p = one_active_hour_params(9)
    act = p.segments[0].activity
    assert [h for h, a in enumerate(act[:24]) if a > 0] == [9] and len(p.segments) == 1
    with pytest.raises(ValueError, match="hour"):
        one_active_hour_params(24)


def test_population_run_and_report(tmp_path):
    row = train_on_population("high-fatigue-v1", 3, steps=1, users=6, horizon_days=1.0,
                              history_days=1.0)
    assert row["population"] == "high-fatigue-v1" and row["seed"] == 3
    assert row["steps"] == 64 * 168                        # one iteration of the default env
    assert row["collapse"] in ("", "never-push", "always-push")
    assert row["return_minus_control"] == pytest.approx(row["gru_return"]
                                                         - row["control_return"])
    again = train_on_population("high-fatigue-v1", 3, steps=1, users=6, horizon_days=1.0,
                                history_days=1.0)
    # same seed, same row (NaN-aware: a 6-user run may have no opens, so no lift)
    assert pd.Series({k: v for k, v in again.items() if k != "seconds"}, dtype=object).equals(
        pd.Series({k: v for k, v in row.items() if k != "seconds"}, dtype=object))
    df = pd.DataFrame([{**row, "collapse": ""}, {**row, "seed": 4, "collapse": "never-push"}])
    text = write_population_report(df, tmp_path, "cmd").read_text()
    assert "| high-fatigue-v1 | test | 2 | 1 |" in text
    assert (tmp_path / "populations.csv").exists()


def test_one_hour_report_counts_seeds_at_the_bar(tmp_path):
    df = pd.DataFrame({"variant": ["default"] * 3 + ["joint-entropy"] * 2,
                       "seed": [0, 1, 2, 0, 1], "ratio": [1.0, 0.95, 0.5, 0.0, 1.0],
                       "pushes": [2.0, 2.0, 1.0, 0.0, 2.0],
                       "collapse": ["", "", "", "never-push", ""],
                       "seconds": [1.0] * 5})
    s = summary(df).set_index("variant")
    assert s.loc["default", "at_least_0_9"] == 2 and s.loc["joint-entropy", "collapsed"] == 1
    text = write_report(df, tmp_path, "cmd").read_text()
    assert "| default | 3 | 2 |" in text and "0: 0.00/0.0 (never-push)" in text
    with pytest.raises(SystemExit):
        main(["one-hour", "--variants", "nope"])
