"""Property-based tests of log validation (Hypothesis).

Whatever a careless writer does to a valid log -- drops a column, blanks a cell, writes a
timestamp no parser reads, invents an event, gives a user a fractional id, swaps two of a user's
rows, writes a negative dwell or an impossible propensity -- :func:`validate_log` must raise a
:class:`LogValidationError` that names the column and the offending row position, never crash
with another exception and never "fix" the log silently. An untouched log (columns in any order,
extra columns) validates to the same rows, in the same order, with the same index and values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the `test` extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from covercast.simulators.logs import (  # noqa: E402
    COLUMNS,
    DWELL_EVENTS,
    LogValidationError,
    validate_log,
)
from covercast.simulators.params import default_params  # noqa: E402
from covercast.simulators.policies import UniformRandomPolicy  # noqa: E402
from covercast.simulators.population import simulate_log  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    params = default_params()
    df = simulate_log(params, UniformRandomPolicy(push_prob=0.3, n_styles=len(params.styles)),
                      days=2, n_users=6, seed=3, progress=False)
    df = validate_log(df).reset_index(drop=True)
    assert {"push", "open", "session"} <= set(df["event"])
    return df


def _as_text(df: pd.DataFrame) -> pd.DataFrame:
    """The log as a CSV reader hands it over: object columns that can hold any junk."""
    out = df.astype(object)
    out["timestamp"] = [t.isoformat() for t in df["timestamp"]]  # ISO 8601, ns, +00:00
    return out


def _raises_naming(df: pd.DataFrame, column: str, rows: set[int]) -> LogValidationError:
    with pytest.raises(LogValidationError) as info:
        validate_log(df)
    err = info.value
    named = [p for p in err.problems if column in p.column]
    assert named, f"no problem names `{column}`: {err}"
    if rows:
        flagged = {r for p in err.problems for r in p.rows}
        assert flagged & rows, f"rows {sorted(rows)} not named: {err}"
    assert column in str(err)
    return err


@SETTINGS
@given(data=st.data())
def test_untouched_log_validates_to_itself(log, data):
    extra = data.draw(st.booleans())
    cols = data.draw(st.permutations(list(log.columns)))
    df = _as_text(log)[cols]
    if extra:
        df["note"] = "x"
    df.index = data.draw(st.sampled_from([df.index, df.index + 100, df.index[::-1].copy()]))
    out = validate_log(df)
    assert list(out.index) == list(df.index)
    pd.testing.assert_frame_equal(out[list(log.columns)].reset_index(drop=True), log,
                                  check_dtype=False)
    if extra:
        assert list(out.columns)[-1] == "note" and (out["note"] == "x").all()


@SETTINGS
@given(column=st.sampled_from(COLUMNS))
def test_a_dropped_column_is_named(log, column):
    err = _raises_naming(_as_text(log).drop(columns=column), column, set())
    assert "missing_columns" in err.codes


@SETTINGS
@given(data=st.data(), column=st.sampled_from(["user_id", "timestamp", "event"]),
       blank=st.sampled_from([None, np.nan, ""]))
def test_a_blank_required_cell_is_named_with_its_row(log, data, column, blank):
    i = data.draw(st.integers(0, len(log) - 1))
    df = _as_text(log)
    df.loc[i, column] = blank
    _raises_naming(df, column, {i})


@SETTINGS
@given(data=st.data(), junk=st.sampled_from(
    ["not a date", "2026-13-45T25:00:00Z", "yesterday", "12/31/2026 9pm", "2026-01-05T10:00:00",
     "NaT", "0"]))
def test_a_bad_timestamp_is_named_with_its_row(log, data, junk):
    i = data.draw(st.integers(0, len(log) - 1))
    df = _as_text(log)
    df.loc[i, "timestamp"] = junk
    _raises_naming(df, "timestamp", {i})


@SETTINGS
@given(data=st.data(), junk=st.one_of(
    st.sampled_from(["click", "PUSH", "opt-out", " open", "push;"]),
    st.text(min_size=1, max_size=8).filter(
        lambda s: s not in {"session", "push", "open", "like", "share", "comment", "survey",
                            "opt_out"})))
def test_an_unknown_event_is_named_with_its_row(log, data, junk):
    i = data.draw(st.integers(0, len(log) - 1))
    df = _as_text(log)
    df.loc[i, "event"] = junk
    _raises_naming(df, "event", {i})


@SETTINGS
@given(data=st.data(), junk=st.sampled_from(["u12", 1.5, "3.7", "one", True, "1e400"]))
def test_an_unreadable_user_id_is_named_with_its_row(log, data, junk):
    i = data.draw(st.integers(0, len(log) - 1))
    df = _as_text(log)
    df.loc[i, "user_id"] = junk
    _raises_naming(df, "user_id", {i})


@SETTINGS
@given(data=st.data())
def test_rows_out_of_order_within_a_user_are_named_not_sorted(log, data):
    user = data.draw(st.sampled_from(sorted(log["user_id"].unique())))
    pos = np.flatnonzero((log["user_id"] == user).to_numpy())
    times = log["timestamp"].to_numpy()[pos]
    pairs = [(a, b) for a in range(len(pos)) for b in range(a + 1, len(pos))
             if times[a] < times[b]]
    a, b = data.draw(st.sampled_from(pairs))
    i, j = int(pos[a]), int(pos[b])
    order = np.arange(len(log))
    order[[i, j]] = order[[j, i]]
    df = _as_text(log).iloc[order].reset_index(drop=True)
    with pytest.raises(LogValidationError) as info:
        validate_log(df)
    flagged = {r for p in info.value.problems for r in p.rows}
    assert flagged & {i, j}, str(info.value)
    assert "sort_log" in str(info.value) or "after the `push`" in str(info.value)


@SETTINGS
@given(data=st.data(), dwell=st.sampled_from([-1.0, -1e-9, np.inf, -np.inf, "long", np.nan]))
def test_a_bad_dwell_is_named_with_its_row(log, data, dwell):
    rows = np.flatnonzero(log["event"].isin(DWELL_EVENTS).to_numpy())
    i = int(data.draw(st.sampled_from(list(rows))))
    df = _as_text(log)
    df.loc[i, "dwell_s"] = dwell
    _raises_naming(df, "dwell_s", {i})


@SETTINGS
@given(data=st.data(), p=st.sampled_from([0.0, -0.2, 1.5, np.inf, np.nan, "high"]))
def test_an_impossible_propensity_is_named_with_its_row(log, data, p):
    rows = np.flatnonzero((log["event"] == "push").to_numpy())
    i = int(data.draw(st.sampled_from(list(rows))))
    df = _as_text(log)
    df.loc[i, "propensity"] = p
    _raises_naming(df, "propensity", {i})


@SETTINGS
@given(data=st.data())
def test_a_response_without_its_push_is_named(log, data):
    rows = np.flatnonzero((log["event"] == "open").to_numpy())
    i = int(data.draw(st.sampled_from(list(rows))))
    df = _as_text(log)
    df.loc[i, "push_id"] = int(log["push_id"].max()) + 1000
    _raises_naming(df, "push_id", {i})
